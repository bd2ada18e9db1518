"""Every part cosine of the shipped three-part join, for fusion research: for the calibration pairs (drawn and
made, degraded as ``calibrate`` degrades them) and the DevTest pairs (as ``evaluate`` degrades them), at clean /
mild / severe, each pair's and each closed-set search's cosines of

- ``SS`` the student's probe embedding with the gallery face's student embedding,
- ``ST`` the student's probe embedding with the gallery face's sharp (SFace as published) embedding,
- ``TT`` SFace's probe embedding with the gallery face's SFace embedding,
- ``CC`` the companion's embedding of the probe's reconstruction (no voice) with the gallery face's,
- ``CCa`` (pairs only) the same with the reconstruction given the person's voice, as ``calibrate`` scores it,

and each probe's sharpness and the shipped weights W (``Companion.cosine_weights``). The gallery parts are read back
from the vectors the product stores (``gallery_embeddings``). Written to an .npz outside the project (derived from
LFW: never committed); nothing is fitted here.

    FORENSIC_FACE_PRECISION=float32 .venv/bin/python -m research.part_scores --out runs/part_scores.npz
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from forensic_face.engine.inference import FaceEngine
from forensic_face.paths import shared_data_dir
from forensic_face.training.evaluate import (
    engine_probes,
    gallery_embeddings,
    identification_sets,
    probe_audio,
    probe_sharpness,
)
from forensic_face.training.split import load_split_data
from forensic_face.vision.degrade import EVAL_LEVELS


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def part_scores(engine: FaceEngine, index, cache, pairs, tag: str, out: dict) -> None:
    """``out[f"{tag}_..."]``: the pairs' labels, people and searches, and every level's cosines and sharpness."""
    d = int(engine.meta["rec"]["embed_dim"])
    c = engine.companion
    sets = identification_sets(pairs)
    out[f"{tag}_same"] = np.array([p.same for p in pairs])
    out[f"{tag}_person_a"] = np.array([p.a.split("/")[0] for p in pairs])
    out[f"{tag}_person_b"] = np.array([p.b.split("/")[0] for p in pairs])
    out[f"{tag}_closed"], out[f"{tag}_truth"] = sets.closed, sets.truth
    gal = {}
    for name, paths in (("pair", [p.a for p in pairs]), ("search", sets.gallery_paths)):
        s, t, comp = (unit(x) for x in c.parts(gallery_embeddings(engine, index, cache, paths)))
        gal[name] = {"S": s, "T": t, "C": comp}
    audio, present = probe_audio(index, pairs)
    for level in EVAL_LEVELS:
        t0 = time.perf_counter()
        probes = engine_probes(engine, index, cache, pairs, level, tag)
        main, comp = engine.embed_parts(probes.rec_crop, engine.reconstruct(probes.crop))
        recon_a = np.empty_like(probes.crop)
        recon_a[present] = engine.reconstruct(probes.crop[present], audio[present])
        if (~present).any():
            recon_a[~present] = engine.reconstruct(probes.crop[~present], None)
        comp_a = engine.embed_parts(probes.rec_crop, recon_a)[1]
        p = {"S": main[:, :d], "T": main[:, d:], "C": comp}
        sharp = probe_sharpness(probes)
        key = f"{tag}_{level}"
        out[f"{key}_sharpness"] = sharp
        out[f"{key}_W"] = c.cosine_weights(sharp)
        out[f"{key}_found"] = probes.found
        for k, a, g in (("SS", "S", "S"), ("ST", "S", "T"), ("TT", "T", "T"), ("CC", "C", "C")):
            out[f"{key}_pair_{k}"] = (p[a] * gal["pair"][g]).sum(1)
            out[f"{key}_search_{k}"] = (p[a][sets.closed] @ gal["search"][g].T).astype(np.float32)
        out[f"{key}_pair_CCa"] = (comp_a * gal["pair"]["C"]).sum(1)
        print(f"{tag} {level}: {len(pairs)} pairs in {time.perf_counter() - t0:.0f} s", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=Path("resources/models"))
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    index, split, cache = load_split_data(shared_data_dir() / "lfw")
    engine = FaceEngine(args.models, device="cpu")
    if engine.companion is None or engine.companion.sharp is None:
        raise SystemExit("needs a bundle whose join has a sharp part (forensic-face join-sharp)")
    out: dict[str, np.ndarray] = {"version": np.array(engine.info.version),
                                  "precision": np.array(engine.info.params["precision"])}
    part_scores(engine, index, cache, list(split.calib_pairs) + list(split.calib_made), "calib", out)
    part_scores(engine, index, cache, list(split.test_pairs), "test", out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **out)
    print("written", args.out, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
