"""`forensic-face bench`'s model figures for two bundles in turn, the same conditions for both: reconstruct + embed
of the bench frame's sharp probe and of the same frame blurred (sigma 4 px), embed alone, a batch of 64, and
enrolment of the bench's 60 faces, per round.

    .venv/bin/python -m research.sharp.bench_bundles BEFORE_FOLDER AFTER_FOLDER [--rounds 3]

(the bundle before: ``git archive <commit> resources/models | tar -x -C /tmp/old``). The arithmetic is the
engine's default (bfloat16 where the CPU has it natively); ``FORENSIC_FACE_PRECISION=float32`` for float32.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import forensic_face.engine.inference as inference
import forensic_face.models.bundle as bundle
import forensic_face.services.bench as bench

KEYS = ("model_version", "precision", "reconstruct_embed_ms", "reconstruct_embed_blurred_ms", "embed_ms",
        "batch64_per_face_ms", "sharp_share_sharp", "sharp_share_blurred")


def installed(folder: Path) -> None:
    """Make ``folder`` the bundle the bench loads as the installed one."""
    inference.models_dir = bundle.models_dir = lambda: folder


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    for r in range(args.rounds):
        for name, folder in (("before", args.before), ("after", args.after)):
            installed(folder)
            m, e = bench.bench_models(15), bench.bench_enrol()
            row = {k: round(m[k], 2) if isinstance(m.get(k), float) else m.get(k) for k in KEYS}
            print(name, r, json.dumps(row | {"enrol_faces_per_s": round(e["faces_per_s"], 1)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
