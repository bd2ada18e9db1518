"""SFace tuned for CCTV probes: a student distilled from the clean SFace (issue 24).

The teacher is SFace as published, frozen, on the *clean* face (its embedding averaged with that of the
mirrored face). The student starts as the same network and learns to give, from a *degraded* copy of the face,
the teacher's embedding of the clean one: ``1 - cos(student(degraded), teacher(clean))``, plus a cosine-margin
softmax over the training people whose class centres are the teacher's (fixed; each person's mean clean
embedding), which keeps different people apart where the distillation alone would only pull. The clean face is
among the student's inputs too (variant 0), with the same target, so clean accuracy is held, not traded.

What is tuned, and why the rest is frozen: SFace is a MobileFaceNet with no residual connections; a forward
pass is ~20 ms per face on one of this machine's cores. The stem and the first ``frozen_blocks`` blocks (the
112 to 14 px stages: about 35 % of the arithmetic) stay as published and their output for every training
variant is computed once and kept (float16, memory-mapped: 200 kB a face); the later blocks and the feature
batch norm are tuned on those maps. The embedding layer (``fc``, 6.4 M of the 9.6 M values) and its batch norm
stay the teacher's, so the student's change is 3 M values. Batch norms keep their published statistics (the
network runs in eval mode while tuning; its affine parameters learn) and dropout is off.

Data: the training people of the identity-disjoint split (:func:`forensic_face.training.split.make_split`),
never a DevTest or calibration person. Every image gives its clean crop and ``variants`` degraded ones, made
as the colour-free autoencoder's training data is (:func:`forensic_face.training.dataset.training_degradation`:
a DESIGN.md level or a random mix; the whole frame degraded, then cropped with the clean five-point alignment
perturbed as a detector's landmarks on a degraded frame would be).

Fixed or fresh variants: by default each image's ``variants`` degraded copies are made once and every epoch
draws one of them (or the clean crop). The student then fits those copies far better than new people's
(the shipped student's cosine to the teacher on its training crops against crops made the same way for the
calibration people: 0.62 / 0.44 against 0.48 / 0.26 at mild / severe): it learns the copies, not the
degradation. With ``fresh`` every epoch degrades every image anew (the same mix of levels, seeded by seed,
epoch and image), so no degraded copy is seen twice; the frozen blocks then run on each batch as it is drawn
instead of once, and ``bfloat16`` runs them and the tuned blocks' products in bfloat16 (weights, gradients and
the optimiser in float32) to pay for it.

Moved back towards the teacher: with ``teacher_share`` a > 0 the finished student's weights become
a * teacher + (1 - a) * tuned, tensor by tensor (weight-space ensembling, WiSE-FT: Wortsman et al., 'Robust
fine-tuning of zero-shot models', 2022); the frozen tensors are the teacher's in both, so only the tuned ones move.
The tuned weights themselves stay in ``student_tuned.pt``; the tuning's checkpoint is untouched, so a run can be
moved by another share without tuning again.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from forensic_face.core.progress import Progress
from forensic_face.models.sface import SFaceNet
from forensic_face.training.chunked import parallel_map
from forensic_face.training.dataset import LEVEL_CODES, jitter_matrix, training_degradation
from forensic_face.training.lfw import FolderIndex
from forensic_face.vision.align import AlignSpec, align_face, warp_to_crop
from forensic_face.vision.degrade import degrade
from forensic_face.vision.detect import FaceDetection

log = logging.getLogger(__name__)

SPEC = AlignSpec(size=112, mode="arcface")
CHUNK = 64


@dataclass(frozen=True)
class DistilConfig:
    variants: int = 3  # degraded copies of every training image (the clean crop is variant 0 besides)
    frozen_blocks: int = 6  # the stem and this many separable blocks keep SFace's weights
    epochs: int = 6
    batch: int = 32
    lr: float = 3e-4  # Adam, cosine decay to 0 over the run
    weight_decay: float = 0.0
    margin_weight: float = 0.5  # weight of the margin softmax beside the distillation
    margin: float = 0.2  # cosine margin (CosFace) on the true class
    scale: float = 30.0
    seed: int = 0
    fresh: bool = False  # degrade every image anew each epoch instead of drawing one of ``variants`` fixed copies
    bfloat16: bool = False  # the frozen and tuned blocks' products in bfloat16 (torch.autocast); float32 weights
    teacher_share: float = 0.0  # after tuning, the weights moved back this far towards the teacher's (WiSE-FT)

    def as_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------------------------------------ crops


def _detection(box: np.ndarray, marks: np.ndarray) -> FaceDetection:
    return FaceDetection(box=tuple(float(v) for v in box), score=1.0, method="cache",
                         landmarks=marks.astype(np.float32) if np.any(marks) else None)


def degraded_crop(grey: np.ndarray, matrix: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """One training variant: the whole frame degraded (a level or a random mix), then cropped with the clean
    alignment ``matrix`` perturbed as a detector's landmarks on such a frame would be; the crop and its level
    code."""
    name, d = training_degradation(rng)
    frame = degrade(grey, replace(d, flip=False), seed=int(rng.integers(2**31)))
    strength = {"clean": 0.5, "mild": 1.0}.get(name, 1.5)
    return warp_to_crop(frame, jitter_matrix(matrix, rng, SPEC.size, strength), SPEC.size), LEVEL_CODES[name]


def _crop_chunk(job: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list]:
    from forensic_face.training.blends import load_frame

    root, rels, rows, boxes, marks, variants, seed, keep_frames = job
    size = SPEC.size
    crops = np.zeros((len(rels), variants + 1, size, size), np.uint8)
    level = np.full((len(rels), variants + 1), LEVEL_CODES["clean"], np.int8)
    ok = np.zeros(len(rels), bool)
    matrices = np.zeros((len(rels), 2, 3), np.float64)
    frames: list = [None] * len(rels)
    for j, rel in enumerate(rels):
        grey = load_frame(root, rel)
        if grey is None:
            continue
        face = align_face(grey, _detection(boxes[j], marks[j]), SPEC)
        crops[j, 0], matrices[j] = face.image, face.matrix
        if keep_frames:
            frames[j] = grey
        for v in range(variants):
            crops[j, v + 1], level[j, v + 1] = degraded_crop(grey, face.matrix, np.random.default_rng(
                [seed, int(rows[j]), v]))
        ok[j] = True
    return crops, level, ok, matrices, frames


def distil_crops(index: FolderIndex, cache: dict, rows: np.ndarray, cfg: DistilConfig, workers: int = 2,
                 progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, 1 + variants, 112, 112) uint8 crops of ``rows`` (variant 0 clean), their level codes, and which rows
    could be read."""
    chunks = [rows[i:i + CHUNK] for i in range(0, len(rows), CHUNK)]
    jobs = [(str(index.root), [index.paths[r] for r in c], c, cache["boxes"][c], cache["landmarks"][c],
             cfg.variants, cfg.seed, False) for c in chunks]
    parts = parallel_map(_crop_chunk, jobs, workers, progress, len(rows), "cropping and degrading",
                         sizes=[len(c) for c in chunks])
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]))


@dataclass
class FreshFaces:
    """What fresh variants are drawn from: each training image's grey frame, its clean five-point alignment and
    clean crop."""

    frames: list[np.ndarray]
    matrices: np.ndarray  # (n, 2, 3)
    clean: np.ndarray  # (n, 112, 112) uint8
    variants: int  # the clean crop is drawn with probability 1 / (1 + variants), as from the fixed copies
    seed: int

    def draw(self, rows: np.ndarray, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Crops (len(rows), 112, 112) uint8 and level codes for ``rows`` at ``epoch``: each row's clean crop or
        a new degraded one, seeded by (seed, epoch, row) so that a resumed run draws the same."""
        crops = np.empty((len(rows), SPEC.size, SPEC.size), np.uint8)
        level = np.full(len(rows), LEVEL_CODES["clean"], np.int8)
        for j, r in enumerate(rows):
            rng = np.random.default_rng([self.seed, 1, epoch, int(r)])
            if rng.integers(self.variants + 1) == 0:
                crops[j] = self.clean[r]
            else:
                crops[j], level[j] = degraded_crop(self.frames[r], self.matrices[r], rng)
        return crops, level


def fresh_faces(index: FolderIndex, cache: dict, rows: np.ndarray, cfg: DistilConfig, workers: int = 2,
                progress: Progress | None = None) -> tuple[FreshFaces, np.ndarray]:
    """The frames and clean alignments of ``rows`` for :class:`FreshFaces`, and which rows could be read (the
    faces hold those only)."""
    chunks = [rows[i:i + CHUNK] for i in range(0, len(rows), CHUNK)]
    jobs = [(str(index.root), [index.paths[r] for r in c], c, cache["boxes"][c], cache["landmarks"][c], 0,
             cfg.seed, True) for c in chunks]
    parts = parallel_map(_crop_chunk, jobs, workers, progress, len(rows), "reading and aligning",
                         sizes=[len(c) for c in chunks])
    ok = np.concatenate([p[2] for p in parts])
    frames = [f for p in parts for f in p[4]]
    return FreshFaces([f for f, good in zip(frames, ok, strict=True) if good],
                      np.concatenate([p[3] for p in parts])[ok], np.concatenate([p[0][:, 0] for p in parts])[ok],
                      cfg.variants, cfg.seed), ok


# ------------------------------------------------------------------------------------------------ networks


def to_rgb255(grey: np.ndarray) -> torch.Tensor:
    """(N, S, S) grey uint8 -> (N, 3, S, S) float 0..255, the grey in each channel (as the engine feeds SFace)."""
    return torch.from_numpy(grey.astype(np.float32)).unsqueeze(1).expand(-1, 3, -1, -1)


@torch.inference_mode()
def teacher_targets(teacher: SFaceNet, clean: np.ndarray, batch: int = 64,
                    progress: Progress | None = None) -> np.ndarray:
    """Unit (n, 128) float32: the teacher's embedding of each clean crop plus that of its mirror image."""
    out = []
    for i in range(0, len(clean), batch):
        x = to_rgb255(clean[i:i + batch])
        out.append(F.normalize(teacher(x) + teacher(torch.flip(x, dims=[3])), dim=1))
        if progress is not None:
            progress.update(min(i + batch, len(clean)), len(clean), "teacher embeddings")
    return torch.cat(out).numpy()


@torch.inference_mode()
def frozen_features(net: SFaceNet, crops: np.ndarray, k: int, out: np.ndarray, batch: int = 64,
                    progress: Progress | None = None) -> None:
    """``out[i, v]`` = the output of the stem and blocks[:k] for ``crops[i, v]``, float16."""
    n, v = crops.shape[:2]
    flat = crops.reshape(n * v, *crops.shape[2:])
    dst = out.reshape(n * v, *out.shape[2:])
    for i in range(0, n * v, batch):
        x = to_rgb255(flat[i:i + batch])
        dst[i:i + batch] = net.early(x, k).to(torch.float16).numpy()
        if progress is not None:
            progress.update(min(i + batch, n * v), n * v, "frozen blocks")


def student_from(teacher: SFaceNet, k: int) -> SFaceNet:
    """A copy of ``teacher`` whose blocks[k:] and feature batch norm learn; everything else is frozen."""
    student = copy.deepcopy(teacher).eval()
    for p in student.parameters():
        p.requires_grad_(False)
    for module in (*student.blocks[k:], student.feature_bn):
        for p in module.parameters():
            p.requires_grad_(True)
    return student


def toward_teacher(student: SFaceNet, teacher: SFaceNet, share: float) -> SFaceNet:
    """A copy of ``student`` whose every floating tensor is ``share`` * the teacher's + (1 - ``share``) * its own
    (eval mode); ``share`` 0 gives the student, 1 the teacher."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"the teacher's share must lie in 0 .. 1, not {share}")
    t = teacher.state_dict()
    mixed = {k: share * t[k].float() + (1.0 - share) * v.float() if v.is_floating_point() else v
             for k, v in student.state_dict().items()}
    out = copy.deepcopy(student)
    out.load_state_dict(mixed)
    return out.eval()


def prototypes(targets: np.ndarray, labels: np.ndarray, n_people: int) -> torch.Tensor:
    """Unit (n_people, 128): each person's mean teacher target."""
    sums = np.zeros((n_people, targets.shape[1]), np.float64)
    np.add.at(sums, labels, targets)
    return F.normalize(torch.from_numpy(sums.astype(np.float32)), dim=1)


def distil_loss(emb: torch.Tensor, target: torch.Tensor, labels: torch.Tensor, centres: torch.Tensor,
                cfg: DistilConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(1 - cos to the teacher's target) and the cosine-margin softmax over the fixed class centres."""
    e = F.normalize(emb, dim=1)
    distil = (1.0 - (e * target).sum(1)).mean()
    logits = e @ centres.T
    logits = cfg.scale * (logits - cfg.margin * F.one_hot(labels, centres.shape[0]))
    return distil, F.cross_entropy(logits, labels)


# ------------------------------------------------------------------------------------------------ training


@dataclass
class DistilData:
    targets: np.ndarray  # (n, 128) float32
    labels: np.ndarray  # (n,) int64
    n_people: int
    features: np.ndarray | None = None  # fixed variants: (n, 1 + V, C, H, W) float16 (memory-mapped)
    level: np.ndarray | None = None  # fixed variants: (n, 1 + V) int8
    faces: FreshFaces | None = None  # fresh variants: what they are drawn from


def _autocast(cfg: DistilConfig):
    return torch.autocast("cpu", dtype=torch.bfloat16) if cfg.bfloat16 else nullcontext()


def _batches(data: DistilData, cfg: DistilConfig, student: SFaceNet, epoch: int, steps: int
             ) -> Iterator[tuple[np.ndarray, torch.Tensor, np.ndarray]]:
    """An epoch's batches: (the images' rows, the frozen blocks' maps of their variants, the variants' level
    codes). Every image once, in a seeded order; with fixed variants as one of its copies drawn at random (maps
    from the cache), with fresh ones as a new draw (maps computed here, the next batch drawn on another thread
    meanwhile)."""
    k, n = cfg.frozen_blocks, len(data.targets)
    rng = np.random.default_rng([cfg.seed, epoch])
    used = steps * cfg.batch
    if data.faces is None:
        v = data.level.shape[1]
        flat = data.features.reshape(n * v, *data.features.shape[2:])
        levels = data.level.reshape(-1)
        order = rng.permutation(n)[:used] * v + rng.integers(v, size=used)
        for s in range(steps):
            idx = np.sort(order[s * cfg.batch:(s + 1) * cfg.batch])
            yield idx // v, torch.from_numpy(flat[idx].astype(np.float32)), levels[idx]
        return
    order = rng.permutation(n)[:used]
    rows = [np.sort(order[s * cfg.batch:(s + 1) * cfg.batch]) for s in range(steps)]
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(data.faces.draw, rows[0], epoch) if steps else None
        for s in range(steps):
            crops, level = pending.result()
            if s + 1 < steps:
                pending = pool.submit(data.faces.draw, rows[s + 1], epoch)
            with torch.no_grad(), _autocast(cfg):
                x = student.early(to_rgb255(crops), k)
            yield rows[s], x, level


def _tunable(student: SFaceNet) -> list[torch.nn.Parameter]:
    return [p for p in student.parameters() if p.requires_grad]


def _checkpoint(path: Path, student: SFaceNet, opt: torch.optim.Optimizer, epoch: int, history: list) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"student": student.state_dict(), "opt": opt.state_dict(), "epoch": epoch,
                "history": history}, tmp)
    tmp.replace(path)


def tune(teacher: SFaceNet, data: DistilData, cfg: DistilConfig, work: Path,
         progress: Progress | None = None) -> tuple[SFaceNet, list[dict]]:
    """Train the student on ``data``; resumes from ``work/student.ckpt`` after the last finished epoch.
    Returns the student (eval mode) and the per-epoch history (mean losses per level)."""
    k = cfg.frozen_blocks
    student = student_from(teacher, k)
    opt = torch.optim.Adam(_tunable(student), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = len(data.targets) // cfg.batch  # an epoch: every image once, as one variant of it
    total = steps_per_epoch * cfg.epochs
    ckpt, history, start = work / "student.ckpt", [], 0
    if ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        student.load_state_dict(state["student"])
        opt.load_state_dict(state["opt"])  # keeps the run's initial learning rate beside its current one
        history, start = list(state["history"]), int(state["epoch"])
    done = start * steps_per_epoch  # cosine decay to 0 over the whole run, resumed where it stopped
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s + done, total) / total)))
    centres = prototypes(data.targets, data.labels, data.n_people)
    targets, labels = torch.from_numpy(data.targets), torch.from_numpy(data.labels.astype(np.int64))
    for epoch in range(start, cfg.epochs):
        sums: dict[str, list[float]] = {}
        drawn: dict[str, int] = {}
        t0 = time.perf_counter()
        for s, (idx, x, level) in enumerate(_batches(data, cfg, student, epoch, steps_per_epoch)):
            rows = torch.from_numpy(idx)
            with _autocast(cfg):
                emb = student.late(x, k)
            emb = emb.float()
            distil, margin = distil_loss(emb, targets[rows], labels[rows], centres, cfg)
            loss = distil + cfg.margin_weight * margin
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            _tally(sums, emb.detach(), targets[rows], level, float(margin.detach()))
            for code, count in zip(*np.unique(level, return_counts=True), strict=True):
                drawn[_LEVEL_NAMES[int(code)]] = drawn.get(_LEVEL_NAMES[int(code)], 0) + int(count)
            if progress is not None:
                progress.update(epoch * steps_per_epoch + s + 1, total, f"tuning, epoch {epoch + 1}/{cfg.epochs}")
        record = {"epoch": epoch + 1, "seconds": round(time.perf_counter() - t0, 1),
                  **{name: round(float(np.mean(vals)), 4) for name, vals in sorted(sums.items())}}
        if data.faces is not None:
            record["drawn"] = drawn
        history.append(record)
        log.info("epoch %s", json.dumps(record))
        _checkpoint(ckpt, student, opt, epoch + 1, history)
    return student.eval(), history


_LEVEL_NAMES = {code: name for name, code in LEVEL_CODES.items()}


def _tally(sums: dict, emb: torch.Tensor, target: torch.Tensor, level: np.ndarray, margin: float) -> None:
    cos = (F.normalize(emb, dim=1) * target).sum(1).numpy()
    for code in np.unique(level):
        sums.setdefault(f"cos_{_LEVEL_NAMES[int(code)]}", []).append(float(cos[level == code].mean()))
    sums.setdefault("margin_loss", []).append(margin)


# ------------------------------------------------------------------------------------------------ the run


def training_images(index: FolderIndex, cache: dict, train_people: frozenset[str]) -> np.ndarray:
    """Rows of ``index`` the student trains on: the training people's images the face cache could read."""
    people = np.array(index.people)
    return np.nonzero(np.isin(people, sorted(train_people)) & (cache["method"] != "unreadable"))[0]


def _cached_crops(work: Path, index: FolderIndex, cache: dict, rows: np.ndarray, cfg: DistilConfig, workers: int,
                  progress: Progress | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    path = work / "crops.npz"
    if path.is_file():
        with np.load(path) as z:
            if np.array_equal(z["rows"], rows) and z["crops"].shape[1] == cfg.variants + 1:
                return z["crops"], z["level"], z["ok"]
    crops, level, ok = distil_crops(index, cache, rows, cfg, workers, progress)
    tmp = work / "crops.tmp.npz"
    np.savez(tmp, crops=crops, level=level, ok=ok, rows=rows)
    tmp.replace(path)
    return crops, level, ok


def _cached_features(work: Path, net: SFaceNet, crops: np.ndarray, k: int,
                     progress: Progress | None) -> np.ndarray:
    """The frozen blocks' maps of every crop, float16, in ``work/features.npy`` (resumed by batch of images)."""
    with torch.inference_mode():
        shape = tuple(net.early(torch.zeros(1, 3, 112, 112), k).shape[1:])
    n, v = crops.shape[:2]
    path, done_path = work / "features.npy", work / "features.done.npy"
    full = (n, v, *shape)
    if path.is_file() and done_path.is_file():
        feats = np.lib.format.open_memmap(path, mode="r+")
        done = np.load(done_path)
        if feats.shape != full:
            feats, done = None, None
    else:
        feats, done = None, None
    if feats is None:
        feats = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=full)
        done = np.zeros((n + 255) // 256, bool)
    for b in np.nonzero(~done)[0]:
        sl = slice(b * 256, min(n, (b + 1) * 256))
        frozen_features(net, crops[sl], k, feats[sl], batch=4)
        feats.flush()
        done[b] = True
        np.save(done_path, done)
        if progress is not None:
            progress.update(sl.stop, n, "frozen blocks")
    return np.lib.format.open_memmap(path, mode="r")


def run_distillation(index: FolderIndex, cache: dict, train_people: frozenset[str], teacher: SFaceNet,
                     work: Path, cfg: DistilConfig, workers: int = 2,
                     progress: Progress | None = None) -> tuple[SFaceNet, dict]:
    """Crops, teacher targets, frozen features, then :func:`tune`; every stage is kept in ``work`` and a stopped
    run resumes. Returns the student and a record (data, timings, history)."""
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    rows = training_images(index, cache, train_people)
    faces, crops, level = None, None, None
    if cfg.fresh:
        faces, ok = fresh_faces(index, cache, rows, cfg, workers, progress)
        rows, clean = rows[ok], faces.clean
    else:
        crops, level, ok = _cached_crops(work, index, cache, rows, cfg, workers, progress)
        rows, crops, level = rows[ok], crops[ok], level[ok]
        clean = crops[:, 0]
    timings["crops_s"] = round(time.perf_counter() - t0, 1)
    t1 = time.perf_counter()
    tpath = work / "targets.npy"
    if tpath.is_file() and np.load(tpath).shape[0] == len(rows):
        targets = np.load(tpath)
    else:
        targets = teacher_targets(teacher, clean, batch=4, progress=progress)
        np.save(tpath, targets)
    feats = None if cfg.fresh else _cached_features(work, teacher, crops, cfg.frozen_blocks, progress)
    timings["frozen_s"] = round(time.perf_counter() - t1, 1)
    people = sorted({index.people[r] for r in rows})
    pos = {p: i for i, p in enumerate(people)}
    data = DistilData(targets, np.array([pos[index.people[r]] for r in rows]), len(people), feats, level, faces)
    t2 = time.perf_counter()
    student, history = tune(teacher, data, cfg, work, progress)
    timings["tune_s"] = round(time.perf_counter() - t2, 1)
    if cfg.teacher_share > 0:
        torch.save(student.state_dict(), work / "student_tuned.pt")
        student = toward_teacher(student, teacher, cfg.teacher_share)
    record = {"config": cfg.as_dict(), "images": len(rows), "people": len(people),
              "levels": _levels_drawn(history) if cfg.fresh else
              {_LEVEL_NAMES[int(c)]: int((level[:, 1:] == c).sum()) for c in np.unique(level[:, 1:])},
              "timings": _with_earlier(work / "record.json", timings), "history": history,
              "threads": torch.get_num_threads()}
    torch.save(student.state_dict(), work / "student.pt")
    (work / "record.json").write_text(json.dumps(record, indent=2))
    return student, record


def _levels_drawn(history: list[dict]) -> dict[str, int]:
    """What a fresh run drew over all its epochs, by level ("clean": the clean crop itself or a variant of the
    clean level)."""
    total: dict[str, int] = {}
    for record in history:
        for name, count in record.get("drawn", {}).items():
            total[name] = total.get(name, 0) + count
    return total


def _with_earlier(path: Path, timings: dict[str, float]) -> dict[str, float]:
    """Each stage's time summed over this session and those a resumed run's earlier record (``path``) counted:
    a stage found done takes seconds now and its real cost was paid before."""
    earlier = json.loads(path.read_text()).get("timings", {}) if path.is_file() else {}
    return {k: round(v + float(earlier.get(k, 0.0)), 1) for k, v in timings.items()}

