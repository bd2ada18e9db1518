"""A restorer at the student's resolution (issue 24: "train the fusion autoencoder with an identity loss through
the frozen recogniser besides the pixel loss, at the resolution the recogniser needs").

The shipped bundle's autoencoder works at 64 px in the eye alignment; the SFace student embeds the face as found
at 112 px on the five-point template, and given the 64 px reconstruction carried into its crop it did worse than
on the face as found. Untried until now: an autoencoder in the student's own crop, trained through the frozen
student. This is that trial, outside the product:

- the network is the product's ``FusionAutoencoder`` at 112 px (``AEConfig(size=112, width=16, residual=True)``),
  its last convolution started at zero, so it starts as the identity (the sigmoid of the input's logit) and the
  student on its output starts exactly where the student on the face as found is;
- the loss is ``1 - cos(student(restored), teacher target)`` (the frozen clean SFace's embedding of the clean face
  averaged with its mirror's, as the student was tuned towards) plus ``pixel`` x MSE(restored, clean crop);
- the data are the training people only (the identity-disjoint split), each face degraded anew at every draw as
  the student's tuning did (``FreshFaces``: DESIGN.md levels and random mixes, the whole frame degraded, the
  five-point alignment perturbed as a detector's would be; the clean crop itself with probability 1/4);
- no audio (the autoencoder's learned "no audio" code);
- the student is the installed bundle's recogniser, frozen; the products run in bfloat16 (``--bfloat16``).

``score`` compares, on the calibration people (never DevTest), the installed student on the restorer's output
against the same student on the face as found, in the product's embedding (flip-averaged, float32 by
``FORENSIC_FACE_PRECISION``): the 600 calibration pairs' ROC-AUC (paired DeLong) and rank-1 of the calibration
searches (McNemar), at clean / mild / severe; and the restorer's PSNR against the clean crop, beside the degraded
frame in the same (clean) alignment, at mild and severe.

    .venv/bin/python -m research.restorer112 train --out runs/restorer112 --steps 2400 --threads 2 --bfloat16
    FORENSIC_FACE_PRECISION=float32 .venv/bin/python -m research.restorer112 score --restorer runs/restorer112
"""

from __future__ import annotations

import argparse
import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - torch's own convention

from forensic_face.models.bundle import load_bundle
from forensic_face.models.nets import AEConfig, FusionAutoencoder
from forensic_face.paths import shared_data_dir
from forensic_face.training.dataset import LEVEL_CODES
from forensic_face.training.distil import DistilConfig, fresh_faces, teacher_targets, training_images
from forensic_face.training.split import load_split_data

CONFIG = AEConfig(size=112, width=16, residual=True)
_NAMES = {code: name for name, code in LEVEL_CODES.items()}


def restorer() -> FusionAutoencoder:
    """The restorer, started as the identity (its last convolution zero)."""
    net = FusionAutoencoder(CONFIG)
    torch.nn.init.zeros_(net.out.weight)
    torch.nn.init.zeros_(net.out.bias)
    return net


def restore(net: FusionAutoencoder, crops: np.ndarray, batch: int = 64) -> np.ndarray:
    """(N, 112, 112) uint8 -> the restorer's output, uint8 (float32 arithmetic)."""
    out = np.empty_like(crops)
    with torch.inference_mode():
        for i in range(0, len(crops), batch):
            x = torch.from_numpy(crops[i:i + batch].astype(np.float32) / 255.0).unsqueeze(1)
            out[i:i + batch] = (net(x)[:, 0].numpy() * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
    return out


def _student(models: Path) -> torch.nn.Module:
    _, rec, _, meta = load_bundle(models, torch.device("cpu"))
    if (meta.get("recogniser") or {}).get("architecture") != "sface":
        raise SystemExit(f"{models}: the installed recogniser is not an SFace student")
    for p in rec.parameters():
        p.requires_grad_(False)
    return rec.eval()


def train(args: argparse.Namespace) -> int:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    index, split, cache = load_split_data(shared_data_dir() / "lfw")
    cfg = DistilConfig(variants=3, fresh=True, seed=args.seed)
    rows = training_images(index, cache, split.train_people)
    faces, ok = fresh_faces(index, cache, rows, cfg, workers=2)
    rows = rows[ok]
    tpath = out / "targets.npy"
    if tpath.is_file() and np.load(tpath).shape[0] == len(rows):
        targets = np.load(tpath)
    else:
        from forensic_face.models.sface import load_sface
        teacher = load_sface(args.teacher)
        targets = teacher_targets(teacher, faces.clean, batch=16)
        np.save(tpath, targets)
    prep_s = time.perf_counter() - t0
    student = _student(args.models)
    net = restorer()
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, args.steps)
                                                                                   / args.steps)))
    tgt = torch.from_numpy(targets)
    clean_all = faces.clean
    n, per_epoch = len(rows), len(rows) // args.batch
    cast = torch.autocast("cpu", dtype=torch.bfloat16) if args.bfloat16 else nullcontext()

    def draw(step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        epoch, s = divmod(step, per_epoch)
        order = np.random.default_rng([args.seed, 7, epoch]).permutation(n)
        idx = np.sort(order[s * args.batch:(s + 1) * args.batch])
        crops, level = faces.draw(idx, 1000 + epoch)  # other draws than the student's tuning (epochs 0..19)
        return idx, crops, level

    log = (out / "log.jsonl").open("a")
    sums: dict[str, list[float]] = {}
    t1 = time.perf_counter()
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(draw, 0)
        for step in range(args.steps):
            idx, crops, level = pending.result()
            if step + 1 < args.steps:
                pending = pool.submit(draw, step + 1)
            x = torch.from_numpy(crops.astype(np.float32) / 255.0).unsqueeze(1)
            clean = torch.from_numpy(clean_all[idx].astype(np.float32) / 255.0).unsqueeze(1)
            with cast:
                r = net(x)
                emb = student(r.expand(-1, 3, -1, -1) * 255.0)
            cos = (F.normalize(emb.float(), dim=1) * tgt[idx]).sum(1)
            mse = F.mse_loss(r.float(), clean)
            loss = (1.0 - cos).mean() + args.pixel * mse
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            c = cos.detach().numpy()
            for code in np.unique(level):
                sums.setdefault(f"cos_{_NAMES[int(code)]}", []).append(float(c[level == code].mean()))
            sums.setdefault("mse", []).append(float(mse.detach()))
            if (step + 1) % args.every == 0 or step + 1 == args.steps:
                rec = {"step": step + 1, "seconds": round(time.perf_counter() - t1, 1),
                       **{k: round(float(np.mean(v)), 4) for k, v in sorted(sums.items())}}
                log.write(json.dumps(rec) + "\n")
                log.flush()
                print(json.dumps(rec), flush=True)
                sums = {}
                torch.save(net.state_dict(), out / "restorer.tmp")
                (out / "restorer.tmp").replace(out / "restorer.pt")
    record = {"config": CONFIG.as_dict(), "steps": args.steps, "batch": args.batch, "lr": args.lr,
              "pixel": args.pixel, "bfloat16": args.bfloat16, "threads": args.threads, "seed": args.seed,
              "images": int(n), "people": len({index.people[r] for r in rows}),
              "prepare_s": round(prep_s, 1), "train_s": round(time.perf_counter() - t1, 1),
              "student": json.loads((args.models / "models.json").read_text())["version"]}
    (out / "record.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record), flush=True)
    return 0


def _clean_geometry(index, cache, pairs, level: str) -> tuple[np.ndarray, np.ndarray]:
    """The probes' clean crops and their degraded frames (as the evaluation degrades them: the level, the pair's
    index as seed) in the same clean five-point alignment."""
    import cv2

    from forensic_face.training.distil import SPEC, _detection
    from forensic_face.vision.align import align_face
    from forensic_face.vision.degrade import degrade

    row = {p: i for i, p in enumerate(index.paths)}
    clean, geom = [], []
    for k, p in enumerate(pairs):
        i = row[p.b]
        grey = cv2.imread(str(index.root / p.b), cv2.IMREAD_GRAYSCALE)
        det = _detection(cache["boxes"][i], cache["landmarks"][i])
        clean.append(align_face(grey, det, SPEC).image)
        geom.append(align_face(degrade(grey, level, seed=k), det, SPEC).image)
    return np.stack(clean), np.stack(geom)


def score(args: argparse.Namespace) -> int:
    from forensic_face.engine.inference import FaceEngine
    from forensic_face.training.evaluate import engine_probes, gallery_crops, identification_sets
    from forensic_face.training.metrics import auc_difference, mcnemar, mean_difference, psnr
    from research.student_heldout import held_out

    index, split, cache = load_split_data(shared_data_dir() / "lfw")
    engine = FaceEngine(args.models, device="cpu")
    net = restorer()
    net.load_state_dict(torch.load(args.restorer / "restorer.pt", map_location="cpu", weights_only=True))
    net.eval()
    pairs = split.calib_pairs
    same = np.array([p.same for p in pairs])
    sets = identification_sets(pairs)
    gal_pairs = engine.embed(gallery_crops(index, cache, [p.a for p in pairs], engine.rec_size, mode="arcface"))
    gal_id = engine.embed(gallery_crops(index, cache, sets.gallery_paths, engine.rec_size, mode="arcface"))
    out: dict = {"restorer": str(args.restorer), "installed": engine.info.version, "pairs": len(pairs),
                 "precision": engine.info.params["precision"], "searches": int(sets.closed.size), "levels": {}}
    for level in ("clean", "mild", "severe"):
        probes = engine_probes(engine, index, cache, pairs, level, "calib")
        found = probes.rec_crop
        row, scores, top1 = {}, {}, {}
        for name, crops in (("found", found), ("restored", restore(net, found))):
            scores[name], top1[name], row[name] = held_out(engine.embed(crops), gal_pairs, gal_id, sets, same)
        row["restored_vs_found_auc"] = auc_difference(scores["restored"], scores["found"], same)
        row["restored_vs_found_rank_1"] = mcnemar(top1["restored"], top1["found"])
        if level != "clean":
            clean, geom = _clean_geometry(index, cache, pairs, level)
            p_geom, p_rest = psnr(geom, clean), psnr(restore(net, geom), clean)
            row["psnr_db"] = {"degraded": round(float(p_geom.mean()), 3), "restored": round(float(p_rest.mean()), 3),
                              "gain": mean_difference(p_rest, p_geom)}
        out["levels"][level] = row
        print(level, json.dumps(row), flush=True)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--models", type=Path, default=Path("resources/models"))
    t.add_argument("--teacher", type=Path, default=None, help="SFace as a torch state dict (only if no targets)")
    t.add_argument("--steps", type=int, default=2400)
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--pixel", type=float, default=20.0)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--every", type=int, default=50)
    t.add_argument("--bfloat16", action="store_true")
    s = sub.add_parser("score")
    s.add_argument("--restorer", type=Path, required=True)
    s.add_argument("--models", type=Path, default=Path("resources/models"))
    s.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    return train(args) if args.command == "train" else score(args)


if __name__ == "__main__":
    raise SystemExit(main())
