"""Every figure that differs between two evaluation reports (``forensic-face evaluate``'s JSON), by its path in
the report: here the shipped evaluation (the recognisers in float32) against the same evaluation with the
recognisers in bfloat16 (``FORENSIC_FACE_PRECISION=bfloat16 forensic-face evaluate --out X.json``). Timings and
the engine's own description are left out; without ``--all``, so are intervals, trade-off curves and paired
comparisons.

    .venv/bin/python -m research.precision.compare resources/models/evaluation.json \
        research/precision/evaluation_bfloat16.json [--all]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

#: Paths holding these are figures an examiner reads (``--all``: every number).
HEADLINE = ("accuracy", "roc_auc", "rank_", "found", "false_lead", "psnr", "ssim", "tar", "p_value")


def differences(a, b, path: str = "") -> list[tuple[str, float, float]]:
    """(path, a's value, b's) for each number that differs, where both reports hold it."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in a if k in b and k != "engine" for d in differences(a[k], b[k], f"{path}/{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{path}[{i}]")]
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and a != b:
        return [(path, a, b)]
    return []


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--all", action="store_true", help="every differing number, not only the headline figures")
    args = ap.parse_args()
    a, b = (json.loads(p.read_text()) for p in (args.a, args.b))
    found = [d for d in differences(a, b) if "seconds" not in d[0] and "_ms" not in d[0]]
    shown = found if args.all else [d for d in found if any(h in d[0] for h in HEADLINE)
                                    and not any(c in d[0] for c in ("ci95", "trade_off", "comparisons"))]
    print(f"{len(found)} numbers differ; {len(shown)} shown")
    for path, x, y in shown:
        print(f"{path}: {x} -> {y}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
