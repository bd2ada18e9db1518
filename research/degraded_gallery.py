"""Would a gallery that also holds degraded copies of each enrolled face raise rank-1 for degraded probes?

Issue 24 asks rank-1 >= 30 % at severe (the shipped bundle: 23.0 % on DevTest). Matching a poor probe against
the gallery face degraded the same way ("degradation-matched gallery", a common low-resolution baseline) has
not been measured here. On the calibration people only (never DevTest): the identification set of
``research.student_heldout`` (one clean image per person as the gallery, the pairs' second images as searches,
the product's joined probe queries, no audio), each gallery image also degraded ``--copies`` times at mild and
at severe (the probe pipeline: degrade the whole frame with a seed no probe uses, detect, align) and embedded
as a gallery face is (the companion given the copy's reconstruction, as a probe's). For each probe level and
copy level, rank-1 of

    s = (1 - w) * s_clean + w * mean over copies of s_copy,   w in WEIGHTS

(w = 0: the product today), with McNemar's exact p against w = 0. Prints JSON; asserts nothing.

    .venv/bin/python -m research.degraded_gallery [--models resources/models] [--copies 2]
"""

from __future__ import annotations

import json

import numpy as np

from forensic_face.engine.probe import rec_spec
from forensic_face.training.chunked import parallel_map
from forensic_face.training.evaluate import (
    _probe_chunk,
    engine_probes,
    gallery_embeddings,
    product_embeddings,
)
from forensic_face.training.metrics import mcnemar
from forensic_face.vision.degrade import EVAL_LEVELS
from research.calibration_people import CalibrationPeople, first, models_parser

WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
#: seeds of the copies: far from the probes' (the pair's index)
SEED_BASE = 900_000


def copies(engine, index, cache, paths: list[str], level: str, copy: int) -> np.ndarray:
    """Gallery-form embeddings of ``paths`` degraded at ``level`` with the seeds of copy number ``copy``."""
    row = {p: i for i, p in enumerate(index.paths)}
    items = [(p, SEED_BASE + 10_000 * copy + k, cache["boxes"][row[p]], cache["landmarks"][row[p]])
             for k, p in enumerate(paths)]
    chunks = [items[i:i + 25] for i in range(0, len(items), 25)]
    parts = parallel_map(_probe_chunk, [(str(index.root), c, level, engine.size, rec_spec(engine)) for c in chunks],
                         2, None, len(items), f"copies {level} {copy}", sizes=[len(c) for c in chunks])
    flat = [r for part in parts for r in part]
    crop = np.stack([r[0] for r in flat])
    rec_crop = np.stack([r[6] for r in flat])
    recon = engine.reconstruct(crop) if engine.searches_reconstruction else crop
    return engine.embed_searched(rec_crop, recon)


def main() -> int:
    ap = models_parser(__doc__)
    ap.add_argument("--copies", type=int, default=2)
    args = ap.parse_args()
    cp = CalibrationPeople.load(args.models)
    engine, index, cache, sets = cp.engine, cp.index, cp.cache, cp.sets
    gal = gallery_embeddings(engine, index, cache, sets.gallery_paths)
    copy_emb = {lev: np.mean([copies(engine, index, cache, sets.gallery_paths, lev, c) for c in range(args.copies)],
                             axis=0) for lev in ("mild", "severe")}
    c, t = sets.closed, sets.truth
    out: dict = {**cp.header(), "copies": args.copies, "levels": {}}
    for level in EVAL_LEVELS:
        probes = engine_probes(engine, index, cache, cp.pairs, level, "calib")
        q = product_embeddings(engine, probes, c)
        s0 = q @ gal.T
        row: dict = {}
        base = None
        for clev, ce in copy_emb.items():
            s1 = q @ ce.T
            for w in WEIGHTS:
                top1 = first((1 - w) * s0 + w * s1, t)
                if base is None:
                    base = top1
                row[f"{clev} w{w}"] = {"rank_1": round(float(top1.mean()), 4), "vs_product": mcnemar(top1, base)}
        out["levels"][level] = row
        print(level, json.dumps({k: v["rank_1"] for k, v in row.items()}), flush=True)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
