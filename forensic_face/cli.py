"""The ``forensic-face`` command line (contract: shared/CLI.md).

Exit codes: 0 success, 2 bad usage (argparse), 1 a failure explained in one line on stderr
(a traceback only with ``--debug``). Heavy imports happen inside the command handlers so that
``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from forensic_face import __version__
from forensic_face.core.errors import CancelledError, ForensicFaceError


def _cmd_bench(args: argparse.Namespace) -> int:
    from forensic_face.bench import format_report, run_bench

    report = run_bench(repeats=args.repeats, fps=args.fps)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from forensic_face.demo import run_demo

    summary = run_demo(args.out)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for line in summary["lines"]:
            print(line)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forensic-face",
        description="Face reconstruction and recognition from degraded CCTV frames and their audio.",
    )
    parser.add_argument("--version", action="version", version=f"forensic-face {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("demo", help="build the bundled demo case, analyse it, print what was produced")
    p.add_argument("--out", default="forensic-face-demo", help="output folder (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="machine-readable summary on stdout")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("bench", help="per-stage latency of the perception engine on this machine")
    p.add_argument("--repeats", type=int, default=15,
                   help="timed runs per stage after a warm-up (default: %(default)s)")
    p.add_argument("--fps", type=float, default=25.0, help="video frame rate for audio features (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="machine-readable figures on stdout")
    p.set_defaults(func=_cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except CancelledError:
        print("forensic-face: cancelled", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("forensic-face: interrupted", file=sys.stderr)
        return 130
    except ForensicFaceError as exc:
        if args.debug:
            raise
        print(f"forensic-face: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the CLI contract: one line, no traceback without --debug
        if args.debug:
            raise
        print(f"forensic-face: internal error: {type(exc).__name__}: {exc} (run with --debug for details)",
              file=sys.stderr)
        return 1
