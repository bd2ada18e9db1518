"""Train the fusion autoencoder alone for a fixed wall-time budget and score its reconstruction on the
held-out calibration probes (never DevTest): PSNR against the clean face beside bicubic upsampling, at
``mild`` and ``severe``, a few times along the way.

The autoencoder learns from the MSE alone (``id_weight`` 0), so how it is trained does not depend on
the recogniser: these trials compare autoencoder settings quickly. ``--init`` starts from a shipped
bundle's autoencoder (continuing its training; with ``--blocks`` the new bottleneck blocks start as
the identity), otherwise from scratch.

    .venv/bin/python -m research.ae_trial --name continue --init resources/models/models.pt --minutes 10 \
        --lr 2e-3 --append resources/models/hp_search.json
    .venv/bin/python -m research.ae_trial --name residual --residual --minutes 12 --threads 1

Same batches as ``forensic-face train`` (its cached training arrays and batcher); warm-up over 100 steps,
then cosine decay over the wall-time budget.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from forensic_face.models.nets import AEConfig, FusionAutoencoder
from forensic_face.paths import shared_data_dir
from forensic_face.training.evaluate import gallery_crops, probe_set
from forensic_face.training.metrics import psnr
from forensic_face.training.train import Batcher, TrainConfig, ae_train_step, bf16_supported, prepare
from forensic_face.vision.degrade import DEGRADED_LEVELS


def reconstruct(ae: FusionAutoencoder, faces: np.ndarray) -> np.ndarray:
    """uint8 reconstructions, as the engine rounds them (no audio)."""
    out = []
    with torch.no_grad():
        for i in range(0, len(faces), 200):
            x = torch.from_numpy(faces[i:i + 200].astype(np.float32) / 255)[:, None]
            out.append((ae(x).numpy()[:, 0] * 255).round().clip(0, 255).astype(np.uint8))
    return np.concatenate(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", required=True, help="the trial's row name")
    ap.add_argument("--width", type=int, default=16, help="autoencoder width (the shipped one: 16)")
    ap.add_argument("--residual", action="store_true", help="learn a correction of the input (AEConfig.residual)")
    ap.add_argument("--blocks", type=int, default=0, help="residual blocks at the bottleneck (AEConfig.blocks)")
    ap.add_argument("--init", help="models.pt whose autoencoder to start from (default: from scratch)")
    ap.add_argument("--minutes", type=float, default=10.0, help="wall-time budget of training")
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--batch", type=int, default=96)
    ap.add_argument("--evals", type=int, default=4, help="scores along the way")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save", help="write the trained autoencoder's state dict here")
    ap.add_argument("--append", help="hp_search.json to add the row to (list 'ae_trials')")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = TrainConfig(batch=args.batch)
    prep = prepare(shared_data_dir() / "lfw", cfg)
    pairs = prep.split.calib_pairs
    clean = gallery_crops(prep.index, prep.cache, [p.b for p in pairs], cfg.size)
    probes = {lv: probe_set(prep.index, prep.cache, pairs, lv, cfg.size, "calib", 2, None).crop_clean_geom
              for lv in DEGRADED_LEVELS}
    torch.manual_seed(0)
    ae = FusionAutoencoder(AEConfig(size=cfg.size, width=args.width, audio_dim=prep.arrays.audio.shape[2],
                                    residual=args.residual, blocks=args.blocks))
    if args.init:
        state = torch.load(args.init, map_location="cpu", weights_only=True)
        missing, unexpected = ae.load_state_dict(
            {k.removeprefix("ae."): v.float() for k, v in state.items() if k.startswith("ae.")}, strict=False)
        # only new bottleneck blocks may be missing (they start as the identity: see nets._PlainBlock)
        if unexpected or any(not k.startswith("blocks.") for k in missing):
            raise SystemExit(f"--init does not fit this autoencoder: missing {missing}, unexpected {unexpected}")
    ae = ae.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(ae.parameters(), lr=args.lr, weight_decay=cfg.weight_decay)
    batcher = Batcher(prep, cfg, np.random.default_rng(1))
    autocast = bf16_supported(torch.device("cpu"))

    def score(step: int, seconds: float) -> dict:
        ae.eval()
        row = {"step": step, "t": round(seconds)}
        for lv, faces in probes.items():
            row[f"psnr_{lv}"] = round(float(psnr(reconstruct(ae, faces), clean).mean()), 3)
            row[f"bicubic_{lv}"] = round(float(psnr(faces, clean).mean()), 3)
        ae.train()
        print(json.dumps(row), flush=True)
        return row

    budget = args.minutes * 60
    scores = [score(0, 0.0)] if args.init else []
    n = prep.arrays.clean.shape[0]
    order, pos, step = batcher.epoch_order(), 0, 0
    next_score = budget / args.evals
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) <= budget:
        lr = args.lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * elapsed / budget))
        for g in opt.param_groups:
            g["lr"] = lr
        if pos + args.batch > n:
            order, pos = batcher.epoch_order(), 0
        batch = batcher.batch(order[pos:pos + args.batch])
        pos += args.batch
        loss = ae_train_step(ae, batch, autocast)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ae.parameters(), 5.0)
        opt.step()
        step += 1
        if elapsed > next_score:
            scores.append(score(step, elapsed))
            next_score += budget / args.evals
    scores.append(score(step, time.perf_counter() - start))
    if args.save:
        torch.save({k: v.detach().clone() for k, v in ae.state_dict().items()}, args.save)
    row = {"run": args.name, "settings": {k: v for k, v in vars(args).items()
                                          if k not in ("name", "evals", "save", "append")},
           "steps": step, **{k: v for k, v in scores[-1].items() if k not in ("step", "t")}, "along_the_way": scores}
    if args.append:
        path = Path(args.append)
        saved = json.loads(path.read_text())
        saved["ae_trials"] = [r for r in saved.get("ae_trials", []) if r["run"] != args.name] + [row]
        path.write_text(json.dumps(saved, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
