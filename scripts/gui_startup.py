"""GUI start-up time: from launching `forensic-face gui` to its first window painted, warm (N runs).

    xvfb-run -a env QT_QPA_PLATFORM=xcb .venv/bin/python scripts/gui_startup.py --runs 5
    xvfb-run -a env QT_QPA_PLATFORM=xcb .venv/bin/python scripts/gui_startup.py --exe dist/forensic-face/forensic-face

Each run is a fresh process that quits as soon as the first window has been shown and the event loop
has run once (`--exit-after-show`); the first run warms the file cache and is reported apart.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--exe", help="a built executable instead of this checkout's Python")
    args = parser.parse_args()
    cmd = [args.exe] if args.exe else [sys.executable, "-m", "forensic_face"]
    cmd += ["gui", "--exit-after-show"]
    times = []
    for i in range(args.runs + 1):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent.parent)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            return 1
        inner = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        print(f"run {i}{' (cold, not counted)' if i == 0 else ''}: {wall:.3f} s to first window and exit; {inner}")
        if i:
            times.append(wall)
    print(f"warm start to first window: median {statistics.median(times):.3f} s, max {max(times):.3f} s "
          f"over {len(times)} runs ({' '.join(cmd[:1])})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
