"""Does an autoencoder fine-tuned with an identity loss serve the recogniser that embeds its reconstructions?

For each model folder of the project's CNN (an autoencoder and the recogniser of its reconstructions, as
``forensic-face train --export`` writes), on the calibration pairs only (never DevTest), per level: the ROC-AUC of
the recogniser given the reconstruction and given the degraded face itself (the paired DeLong test of the two), and
the reconstruction's PSNR / SSIM against the clean face with its gain over the degraded frame (bicubic), all in the
clean alignment, no audio. Then, for each folder after the first, the paired DeLong test of its reconstruction's
AUC against the first folder's.

    .venv/bin/python -m research.ae_identity /tmp/prev/resources/models /tmp/s29/idA/models [...] --out F.json

The candidates of `forensic-face train --init BUNDLE --epochs 0 --rec-epochs 0 --ae-epochs N --ae-id-weight W`
(the autoencoder of BUNDLE fine-tuned against its frozen recogniser) are compared this way with the bundle itself.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from forensic_face.engine.inference import FaceEngine
from forensic_face.paths import shared_data_dir
from forensic_face.training.evaluate import engine_probes, gallery_crops, gallery_embeddings, score_pairs
from forensic_face.training.metrics import auc_difference, mean_difference, psnr, roc_auc, ssim
from forensic_face.training.split import load_split_data
from forensic_face.vision.degrade import EVAL_LEVELS


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", type=Path, nargs="+", help="model folders; the first is the reference")
    ap.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = ap.parse_args()
    index, split, cache = load_split_data(shared_data_dir() / "lfw")
    pairs = split.calib_pairs
    same = np.array([p.same for p in pairs])
    report: dict = {"pairs": len(pairs), "what": __doc__.split("\n\n")[1], "models": {}}
    first_scores: dict[str, np.ndarray] = {}
    for k, folder in enumerate(args.models):
        engine = FaceEngine(folder, device="cpu")
        gallery = gallery_embeddings(engine, index, cache, [p.a for p in pairs])
        clean = gallery_crops(index, cache, [p.b for p in pairs], engine.size)
        out: dict = {"version": engine.info.version}
        for level in EVAL_LEVELS:
            probes = engine_probes(engine, index, cache, pairs, level, "calib")
            s = score_pairs(engine, gallery, probes, None, None)
            d = auc_difference(s["recon"], s["degraded"], same)
            geom = probes.crop_clean_geom
            rec = engine.reconstruct(geom)
            lev = {"auc_reconstruction": round(roc_auc(s["recon"], same), 4),
                   "auc_degraded": round(roc_auc(s["degraded"], same), 4),
                   "reconstruction_minus_degraded": d,
                   "psnr_db": round(float(psnr(rec, clean).mean()), 3),
                   "ssim": round(float(ssim(rec, clean).mean()), 4)}
            if level != "clean":
                lev["bicubic_psnr_db"] = round(float(psnr(geom, clean).mean()), 3)
                lev["psnr_gain_db"] = mean_difference(psnr(rec, clean), psnr(geom, clean))
            if k == 0:
                first_scores[level] = s["recon"]
            else:
                lev["reconstruction_minus_first"] = auc_difference(s["recon"], first_scores[level], same)
            out[level] = lev
            line = (f"{folder} {level}: AUC given the reconstruction {lev['auc_reconstruction']:.4f}, given the "
                    f"degraded face {lev['auc_degraded']:.4f} (p = {d['p_value']:.2g}); PSNR {lev['psnr_db']:.2f} dB")
            if "psnr_gain_db" in lev:
                line += f" ({lev['psnr_gain_db']['mean']:+.2f} over bicubic)"
            if "reconstruction_minus_first" in lev:
                f = lev["reconstruction_minus_first"]
                line += f"; reconstruction AUC against the first {f['difference']:+.4f} (p = {f['p_value']:.2g})"
            print(line, flush=True)
        report["models"][str(folder)] = out
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
