"""How much of the severe searches' shortfall is alignment? (issue 24: rank-1 >= 30 % at severe; 23.0 % shipped)

On the calibration people only (never DevTest): the identification set of ``research.student_heldout`` (one clean
image per person as the gallery, the pairs' second images as searches, no audio). Each probe is the product's
probe (the frame degraded with the evaluation's seed, the face found by the detector on the degraded frame and
aligned by its landmarks, from the evaluation's probe cache) and, beside it, the same degraded frame aligned by the
clean frame's landmarks instead (an oracle: what a perfect detector on the degraded frame would give). Both are
searched as the product searches (``FaceEngine.embed_searched`` at the probe's sharpness). Rank-1 and pair AUC per
level, McNemar's exact p between the two. Prints JSON; asserts nothing.

    .venv/bin/python -m research.alignment_oracle [--models resources/models]
"""

from __future__ import annotations

import json

import numpy as np

from forensic_face.training.evaluate import engine_probes, gallery_crops, gallery_embeddings
from forensic_face.training.metrics import mcnemar
from forensic_face.vision.degrade import EVAL_LEVELS, degrade
from forensic_face.vision.quality import sharpness
from research.calibration_people import CalibrationPeople, models_parser
from research.student_heldout import held_out


def oracle_crops(engine, index, cache, pairs, level: str) -> tuple[np.ndarray, np.ndarray]:
    """Each pair's second image degraded as the evaluation's probe (seed = the pair's index), aligned by the clean
    frame's landmarks as gallery faces are: (the recogniser's crops, the autoencoder's crops)."""

    def degraded(k: int, grey: np.ndarray) -> np.ndarray:
        return grey if level == "clean" else degrade(grey, level, seed=k)

    paths = [p.b for p in pairs]
    return (gallery_crops(index, cache, paths, engine.rec_size, engine.rec_alignment, degraded),
            gallery_crops(index, cache, paths, engine.size, engine.alignment, degraded))


def main() -> int:
    args = models_parser(__doc__).parse_args()
    cp = CalibrationPeople.load(args.models)
    engine, index, cache, sets = cp.engine, cp.index, cp.cache, cp.sets
    gal_id = gallery_embeddings(engine, index, cache, sets.gallery_paths)
    gal_pairs = gallery_embeddings(engine, index, cache, [p.a for p in cp.pairs])
    out: dict = {**cp.header(), "pairs": len(cp.pairs), "levels": {}}
    for level in EVAL_LEVELS:
        probes = engine_probes(engine, index, cache, cp.pairs, level, "calib")
        rec_o, ae_o = oracle_crops(engine, index, cache, cp.pairs, level)
        row: dict = {"face_found": int(probes.found.sum())}
        top1 = {}
        for name, rec, ae in (("product", probes.rec_crop, probes.crop), ("clean alignment", rec_o, ae_o)):
            recon = engine.reconstruct(ae) if engine.searches_reconstruction else ae
            q = engine.embed_searched(rec, recon, sharpness=np.array([sharpness(x) for x in ae]))
            _, top1[name], row[name] = held_out(q, gal_pairs, gal_id, sets, cp.same)
        row["clean_alignment_vs_product_rank_1"] = mcnemar(top1["clean alignment"], top1["product"])
        out["levels"][level] = row
        print(level, json.dumps(row), flush=True)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
