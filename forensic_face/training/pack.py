"""The portable training pack: training on a machine that sees only the working tree, and what comes back.

A pack holds each training frame's luminance, cropped losslessly to the ``CROP`` square that holds the
face (``frames/NNNNN.jpg``), and ``meta.npz``: the training rows of the face cache (``rows``, ``n_index``),
each row's person, box, landmarks and dlib descriptor (``people``, ``boxes``, ``landmarks``, ``teacher``),
the voice vectors at the middle of each clip with their person (``audio``, ``clip_person``), the split
(``split``, JSON) and optionally the blends of ``--blends`` (``blend_*``). ``research/gpu_search.py``
makes packs (with jpegtran, beside ../shared/data) and runs trials from them on a borrowed machine.

:func:`load_pack` makes the training arrays from a pack exactly as :func:`forensic_face.training.train.prepare`
makes them from the images (same rows, same seeds, the same ``max_images`` subset); :func:`run_trial`
trains one schedule and writes a *trial file* (the networks in float16 and the training record), and
:func:`trial_networks` reads one back.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from forensic_face.core.errors import InputError
from forensic_face.training.blends import Blend
from forensic_face.training.dataset import TrainingArrays, prepare_faces
from forensic_face.training.lfw import FolderIndex
from forensic_face.training.train import Prepared, TrainConfig, append_blends, blend_faces, teacher_targets, train

FRAME = 250  # LFW frame side
CROP = (32, 32, 192)  # x, y, side of the lossless crop (multiples of 16: whole JPEG MCUs)


class PackSplit:
    """The split a pack was made from, as described in its ``meta.npz`` (what a training record keeps)."""

    def __init__(self, described: dict) -> None:
        self.described = described

    def describe(self) -> dict:
        return self.described


def restore_frame(job: tuple[str, str]) -> None:
    """Write the full ``FRAME`` x ``FRAME`` frame of a pack's crop (``job`` = (crop file, frame file)), the
    edges replicated."""
    src, dst = job
    crop = cv2.imread(src, cv2.IMREAD_GRAYSCALE)
    x, y, side = CROP
    frame = cv2.copyMakeBorder(crop, y, FRAME - y - side, x, FRAME - x - side, cv2.BORDER_REPLICATE)
    cv2.imwrite(dst, frame)


def _subset(meta: dict, cfg: TrainConfig, limit: int) -> np.ndarray:
    """Positions in the pack of the frames to train on: all (or the first ``limit``), or the seeded
    ``max_images`` subset that ``prepare`` draws."""
    n_all = meta["rows"].size if not limit else limit
    sel = np.arange(n_all)
    if cfg.max_images and cfg.max_images < n_all:
        picked = np.random.default_rng(cfg.seed).permutation(meta["rows"][:n_all])[: cfg.max_images]
        sel = np.nonzero(np.isin(meta["rows"][:n_all], picked))[0]
        if cfg.blends:
            raise InputError("max_images with blends is not supported from a pack")
    return sel


def _restored_index(pack: Path, work: Path, meta: dict, sel: np.ndarray, workers: int) -> tuple:
    """(index as long as the face cache, boxes, landmarks, frame names) of the restored frames: the rows
    (and so the seeds of the variants) are the cache's."""
    from forensic_face.training.chunked import parallel_map

    rows = meta["rows"][sel]
    work.mkdir(parents=True, exist_ok=True)
    rel = [f"{k:05d}.png" for k in sel]
    jobs = [(str(pack / "frames" / f"{k:05d}.jpg"), str(work / name)) for k, name in zip(sel, rel, strict=True)]
    parallel_map(restore_frame, jobs, workers, None, sel.size, "restore")
    paths = [""] * int(meta["n_index"])
    boxes = np.zeros((len(paths), 4), np.float32)
    marks = np.zeros((len(paths),) + meta["landmarks"].shape[1:], meta["landmarks"].dtype)
    for k, r in enumerate(rows):
        paths[r], boxes[r], marks[r] = rel[k], meta["boxes"][sel[k]], meta["landmarks"][sel[k]]
    return FolderIndex(work, paths, paths), boxes, marks, rel


def _with_blends(meta: dict, work: Path, cfg: TrainConfig, limit: int, workers: int, arrays: TrainingArrays,
                 labels: np.ndarray, descriptors: np.ndarray) -> tuple[TrainingArrays, np.ndarray, np.ndarray]:
    """The arrays, labels and descriptors with the pack's first ``cfg.blends`` blends appended."""
    if "blend_a" not in meta or cfg.blends > meta["blend_a"].size or limit:
        raise InputError(f"the pack holds no {cfg.blends} blends (make it with pack --blends N)")
    m = cfg.blends
    ok = meta["blend_ok"][:m]
    rel = arrays.paths
    items = [Blend(rel[i], rel[j], tuple(map(tuple, w)), float(t)) for i, j, w, t in
             zip(meta["blend_a"][:m], meta["blend_b"][:m], meta["blend_warp"][:m], meta["blend_lam"][:m],
                 strict=True)]
    a = meta["blend_a"][:m]
    faces = blend_faces(work, items, meta["boxes"][a], meta["landmarks"][a], cfg, workers)
    names = [f"blend {k}" for k in np.nonzero(ok)[0]]
    blends = tuple(x[ok] for x in faces) + (meta["blend_teacher"][:m][ok], names)
    clean, deg, tgt, lev, labels, descriptors, rel = append_blends(
        (arrays.clean, arrays.degraded, arrays.target, arrays.level, labels, descriptors, rel), blends)
    arrays = replace(arrays, clean=clean, degraded=deg, target=tgt, level=lev, person=labels.astype(np.int32),
                     paths=rel)
    return arrays, labels, descriptors


def load_pack(pack: Path, work: Path, cfg: TrainConfig, workers: int, limit: int = 0) -> Prepared:
    """Training arrays from a pack, made as ``prepare`` makes them (same rows, same seeds); the frames are
    restored under ``work``. ``limit``: the first N frames only, without voices (a smoke test)."""
    with np.load(pack / "meta.npz", allow_pickle=False) as z:
        meta = {k: z[k] for k in z.files}
    sel = _subset(meta, cfg, limit)
    index, boxes, marks, rel = _restored_index(pack, work, meta, sel, workers)
    clean, deg, tgt, lev = prepare_faces(index, {"boxes": boxes, "landmarks": marks}, meta["rows"][sel],
                                         size=cfg.size, variants=cfg.variants, seed=cfg.seed, workers=workers)
    people = sorted(set(meta["people"][sel].tolist()))
    pos = {p: i for i, p in enumerate(people)}
    labels = np.array([pos[p] for p in meta["people"][sel]], np.int64)
    # voices: the pack numbers clips by person over all its images; renumbered over the people kept
    clip_names = np.array(sorted(set(meta["people"].tolist())))[meta["clip_person"]]
    keep = np.isin(clip_names, people) & (not limit)
    arrays = TrainingArrays(clean=clean, degraded=deg, target=tgt, level=lev, person=labels.astype(np.int32),
                            people=people, paths=rel, audio=meta["audio"][keep],
                            clip_person=np.array([pos[p] for p in clip_names[keep]], np.int32), clip_paths=[])
    descriptors = meta["teacher"][sel]
    if cfg.blends:
        arrays, labels, descriptors = _with_blends(meta, work, cfg, limit, workers, arrays, labels, descriptors)
    n = sel.size
    return Prepared(index, PackSplit(json.loads(str(meta["split"]))), {"teacher_raw": descriptors, "real": n}, arrays,
                    teacher_targets(descriptors, cfg.teacher_centre, real=n), labels, len(people),
                    {"source": "gpu_search pack"})


def run_trial(name: str, overrides: dict, prep: Prepared, out: Path, runs: Path, threads: int,
              time_limit: float) -> dict:
    """Train one schedule (``TrainConfig`` with ``overrides``) on ``prep`` in ``runs/name`` and write
    ``out/trial-NAME.pt``: the trained networks in float16 and the training record. An autoencoder-only
    schedule (no joint or recogniser epochs) leaves the recogniser untrained, and it is not kept.
    Returns the training record."""
    import torch

    torch.set_num_threads(threads)
    # the phases after the joint schedule came later: the trials ran the joint schedule alone
    cfg = replace(TrainConfig(ae_epochs=0, rec_epochs=0), **overrides, time_limit_s=time_limit)
    prep = replace(prep, teacher=teacher_targets(prep.cache["teacher_raw"], cfg.teacher_centre, prep.cache["real"]))
    folder = runs / name
    t0 = time.perf_counter()
    record = train(None, folder, cfg, prep=prep)
    ck = torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=True)
    nets = ("ae", "rec") if cfg.epochs or cfg.rec_epochs else ("ae",)
    slim = {k: {n: (v.half() if v.is_floating_point() else v) for n, v in ck[k].items()} for k in nets}
    record |= {"trial": name, "overrides": overrides, "wall_s": round(time.perf_counter() - t0, 1),
               "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    slim |= {"record": json.dumps(record), "history": json.dumps(record["history"])}
    torch.save(slim, out / f"trial-{name}.pt")
    return record


def trial_networks(path: str | Path) -> tuple:
    """A trial file's networks (float32, eval mode) and its training record."""
    import torch

    from forensic_face.training.train import networks

    slim = torch.load(path, map_location="cpu", weights_only=True)
    record = json.loads(slim["record"])
    ae, rec = networks(TrainConfig(**record["config"]), slim["ae"]["audio.net.0.weight"].shape[1])
    ae.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in slim["ae"].items()})
    if "rec" in slim:  # absent from an autoencoder-only trial: the recogniser stays as initialised
        rec.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in slim["rec"].items()})
    return ae.eval(), rec.eval(), record
