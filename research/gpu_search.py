"""Full-schedule training trials on a borrowed GPU machine, from a small portable pack of the training set.

The GPU machine sees only the project's working tree (64 MiB in all, no ``../shared``, no dlib, no
librosa), so the training set travels as a *pack*: each training frame's luminance, cropped
losslessly to the 192 px square that holds the face (``jpegtran -grayscale -crop``, the DCT
coefficients untouched), the face cache rows (boxes, landmarks, dlib descriptors) and the voice
vectors at the middle of each clip. On the GPU machine the frames are restored to 250 px (edges
replicated), the training arrays are made by the same code as ``forensic-face train``
(:func:`forensic_face.training.dataset.prepare_faces`, same seeds), and the trials train
concurrently, each a complete schedule. What comes back is each trial's networks (float16, as the
shipped bundle stores them) and its training record; they are exported and scored on the
calibration pairs here (``research/score_calibration.py``), never on DevTest.

The chosen settings are then trained again on 2 CPU cores with ``forensic-face train`` for the
shipped weights: the GPU only widens the search.

A trial's settings are any ``TrainConfig`` fields: ``max_images`` trains on the same seeded subset of
the images that ``prepare`` draws (a learning curve); ``{"epochs": 0, "ae_epochs": N}`` trains the
autoencoder alone, and its file then holds the autoencoder only (score it with
``research/score_calibration.py --reconstruction-only``).

    # here (needs ../shared/data and jpegtran from libjpeg-turbo-progs)
    .venv/bin/python -m research.gpu_search pack --out .pack
    # on the GPU machine
    python3 -m research.gpu_search run --pack .pack --out $OUT --trials '{"d32": {"distill_weight": 32}}'
    # here, for each trial
    .venv/bin/python -m research.gpu_search export trial-d32.pt runs/gpu/d32
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from forensic_face.training.dataset import AUDIO_POINTS
from forensic_face.training.pack import CROP, load_pack, run_trial, trial_networks
from forensic_face.training.train import Prepared, TrainConfig, training_rows


def _jpegtran() -> str:
    found = shutil.which("jpegtran") or os.environ.get("JPEGTRAN")
    if not found:
        raise SystemExit("jpegtran not found (libjpeg-turbo-progs); set JPEGTRAN to its path")
    return found


def cmd_pack(args: argparse.Namespace) -> int:
    from forensic_face.core.progress import console_progress
    from forensic_face.paths import cache_dir, shared_data_dir
    from forensic_face.training.lfw import build_face_cache, index_folder
    from forensic_face.training.split import make_split
    from forensic_face.training.train import _cached_audio

    cfg = TrainConfig()
    index = index_folder(shared_data_dir() / "lfw")
    split = make_split(index, cfg.seed)
    cache = build_face_cache(index, console_progress(label="faces "), with_teacher=True, workers=2)
    people = np.array(index.people)
    rows = training_rows(index, cache, split)
    audio = _cached_audio(index, cfg, rows.size)
    if audio is None:
        raise SystemExit("no cached training audio: run forensic-face train once first")
    vecs, clip_person, _ = audio
    out = Path(args.out)
    frames = out / "frames"
    frames.mkdir(parents=True, exist_ok=True)
    tool = _jpegtran()
    x, y, side = CROP
    for k, r in enumerate(rows):
        src = index.root / index.paths[r]
        dst = frames / f"{k:05d}.jpg"
        if not dst.is_file():
            subprocess.run([tool, "-grayscale", "-copy", "none", "-optimize", "-crop", f"{side}x{side}+{x}+{y}",
                            "-outfile", str(dst), str(src)], check=True)
        if k % 500 == 0:
            print(f"pack {k}/{rows.size}", flush=True)
    mid = AUDIO_POINTS.index(0.5)
    blends = {}
    if args.blends:
        # the blends of `forensic-face train --blends N` (their teacher descriptors need dlib: made here)
        from forensic_face.training.blends import blend_warp
        from forensic_face.training.train import _blend_arrays

        _blend_arrays(index, cache, rows, replace(cfg, blends=args.blends), 2, console_progress(label="blends "))
        key = sorted(cache_dir().glob(f"blends-*-{index.fingerprint()}-s{cfg.size}-v{cfg.variants}-seed{cfg.seed}"
                                      f"-n{rows.size}-m{args.blends}.npz"))[0]
        with np.load(key, allow_pickle=False) as z:
            a, b = np.searchsorted(rows, z["a"]), np.searchsorted(rows, z["b"])
            warps = np.stack([blend_warp(cache["boxes"][i], cache["landmarks"][i], cache["boxes"][j],
                                         cache["landmarks"][j]) for i, j in zip(z["a"], z["b"], strict=True)])
            blends = {"blend_a": a, "blend_b": b, "blend_lam": z["lam"], "blend_warp": warps,
                      "blend_teacher": z["teacher"], "blend_ok": z["ok"]}
    np.savez_compressed(out / "meta.npz", rows=rows, n_index=len(index.paths), people=people[rows],
                        boxes=cache["boxes"][rows], landmarks=cache["landmarks"][rows],
                        teacher=cache["teacher"][rows].astype(np.float32), audio=vecs[:, mid:mid + 1],
                        clip_person=clip_person, split=json.dumps(split.describe()), **blends)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"pack of {rows.size} frames, {vecs.shape[0]} voice clips: {size / 2**20:.1f} MiB in {out}")
    return 0


def _trial(name: str, overrides: dict, prep: Prepared, out: Path, runs: Path, threads: int,
           time_limit: float) -> None:
    record = run_trial(name, overrides, prep, out, runs, threads, time_limit)
    print(f"trial {name}: {record['train_seconds']} s, last epoch {record['history'][-1]}", flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    trials = json.loads(args.trials)
    out, runs = Path(args.out), Path(args.work) / "runs"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    preps = {}  # training arrays per input size and number of variants, made once for the trials that share them
    for ov in trials.values():
        cfg = replace(TrainConfig(), **ov)
        key = (cfg.size, cfg.variants, cfg.seed, cfg.blends, cfg.max_images)
        if key not in preps:
            preps[key] = load_pack(Path(args.pack), Path(args.work) / "frames", cfg, args.workers, args.limit)
            print(f"arrays {preps[key].arrays.degraded.shape} at {time.perf_counter() - t0:.1f} s", flush=True)
    ctx = mp.get_context("fork")  # the arrays are shared copy-on-write; the parent never touches CUDA
    procs = []
    for name, ov in trials.items():
        cfg = replace(TrainConfig(), **ov)
        prep = preps[(cfg.size, cfg.variants, cfg.seed, cfg.blends, cfg.max_images)]
        procs.append(ctx.Process(target=_trial, args=(name, ov, prep, out, runs, args.threads, args.time_limit)))
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    print(f"all trials done in {time.perf_counter() - t0:.1f} s; exit codes {[p.exitcode for p in procs]}")
    return 0 if all(p.exitcode == 0 for p in procs) else 1


def cmd_export(args: argparse.Namespace) -> int:
    """A trial's networks -> a calibrated model folder (calibration pairs only), ready to score."""
    import torch

    from forensic_face.core.progress import console_progress
    from forensic_face.paths import shared_data_dir
    from forensic_face.training.evaluate import export_models
    from forensic_face.training.lfw import build_face_cache, index_folder
    from forensic_face.training.split import make_split

    ae, rec, record = trial_networks(args.trial)
    folder = Path(args.dest)
    folder.mkdir(parents=True, exist_ok=True)
    ck = folder / "checkpoint.pt"
    torch.save({"ae": ae.state_dict(), "rec": rec.state_dict(), "record": json.dumps(record),
                "history": json.dumps(record["history"])}, ck)
    (folder / "history.json").write_text(json.dumps(record, indent=2))
    index = index_folder(shared_data_dir() / "lfw")
    split = make_split(index, 0)
    cache = build_face_cache(index, console_progress(label="faces "), with_teacher=True, workers=2)
    engine, _ = export_models(ck, index, cache, split.calib_pairs, folder / "models", 2,
                              console_progress(label="calibrate "))
    print(f"{args.trial} -> {folder / 'models'} ({engine.info.version})")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="make the portable training pack (here, beside ../shared/data)")
    p.add_argument("--out", default=".pack")
    p.add_argument("--blends", type=int, default=0, help="include this many teacher-labelled blends")
    p = sub.add_parser("run", help="train the trials concurrently (on the GPU machine)")
    p.add_argument("--pack", default=".pack")
    p.add_argument("--out", required=True, help="where the trials' networks go")
    p.add_argument("--work", default="/tmp/gpu_search")
    p.add_argument("--trials", required=True, help='JSON: {"name": {TrainConfig field: value}}')
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads per trial")
    p.add_argument("--time-limit", type=float, default=0.0, help="seconds per trial (0: none)")
    p.add_argument("--limit", type=int, default=0, help="first N frames only (a smoke test)")
    p = sub.add_parser("export", help="trial networks -> calibrated model folder (here)")
    p.add_argument("trial")
    p.add_argument("dest")
    args = ap.parse_args()
    return {"pack": cmd_pack, "run": cmd_run, "export": cmd_export}[args.cmd](args)


if __name__ == "__main__":
    raise SystemExit(main())
