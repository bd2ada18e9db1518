"""Joint training of the fusion autoencoder and the recogniser.

One step, for a batch of training images (each with one of its degraded variants, flipped at
random, and the person's voice at a random point of a random clip, dropped with probability
``audio_drop`` so the learned "no audio" code is trained too):

- reconstruction ``r = AE(degraded, audio)``; loss ``mse_weight * MSE(r, clean)``;
- the recogniser sees the reconstruction and the clean face; for both, ``distill_weight`` times the
  distillation ``1 - cos(e, t)`` towards the teacher embedding ``t`` of the clean face (dlib's
  ResNet, from the face cache, centred on the training mean) plus ``arc_weight`` times an ArcFace
  soft-max over training identities (and optionally ``relation_weight`` times a relational term);
- the recogniser's loss reaches the autoencoder scaled by ``id_weight`` (an identity loss that
  asks the reconstruction to keep what identifies the person; 0 by default: the shipped
  autoencoder learns from the MSE alone, which the search found no worse for recognition).

AdamW, a short linear warm-up then cosine decay; a checkpoint (networks, optimiser, step, RNG) at
the end of every epoch; ``resume`` continues from it.

With ``ae_epochs`` > 0 the joint schedule is followed by that many epochs of the autoencoder alone
(the same images, MSE only, its own AdamW with warm-up and cosine decay from ``ae_lr``; the
recogniser is not touched). The autoencoder learns from the MSE alone anyway (``id_weight`` 0), its
steps cost about a quarter of a joint step, and its reconstruction was still improving when the
joint schedule ended, so this buys reconstruction quality cheaply. ``ae_batch`` sets that phase's
batch size (default: ``batch``): a smaller batch gives it more steps for the same epochs. With
``ae_id_weight`` > 0 that phase adds an identity loss through the frozen recogniser, as face
restorers do: ``ae_id_weight * (1 - cos(rec(r), rec(clean)))``, the recogniser's embedding of the
reconstruction pulled towards its embedding of the clean face (no gradient into the recogniser).

With ``rec_epochs`` > 0 the recogniser then adapts to the final autoencoder: that many epochs of the
recogniser (and its ArcFace head) alone, on the frozen autoencoder's reconstructions and the clean
faces, with the joint step's identity losses (distillation and ArcFace, no MSE) and its own AdamW
(warm-up, cosine decay from ``rec_lr``). Without it the recogniser has only seen the joint phase's
blurrier reconstructions.

``init_from`` starts the networks from a model bundle's instead of from scratch (its autoencoder's and
recogniser's architecture replace the configuration's, :func:`config_from_bundle`; the run records the bundle,
:func:`bundle_origin`): with ``epochs`` 0 and ``rec_epochs`` 0, ``ae_epochs`` of fine-tuning of a shipped
autoencoder against its own recogniser. A bundle holds no ArcFace head, so that starts afresh (random class
weights): a recogniser phase from a bundle is best run with ``arc_weight`` 0 (distillation alone), or its first
steps pull the recogniser about.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from forensic_face.core.progress import Progress
from forensic_face.models.nets import AEConfig, FusionAutoencoder, Recogniser, RecogniserConfig, count_params
from forensic_face.paths import cache_dir
from forensic_face.training.chunked import exclusive, gather
from forensic_face.training.dataset import (
    TrainingArrays,
    prepare_audio,
    prepare_faces,
    voice_clips,
)
from forensic_face.training.lfw import FolderIndex, build_face_cache, index_folder
from forensic_face.training.split import Split, make_split

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    size: int = 64
    variants: int = 8  # degraded variants prepared per training image
    ae_width: int = 16
    ae_blocks: int = 0  # residual blocks at the autoencoder's 8x8 bottleneck (AEConfig.blocks)
    rec_width: int = 48
    rec_depth: int = 1  # residual blocks per recogniser stage
    embed_dim: int = 128
    epochs: int = 30
    ae_epochs: int = 50  # epochs of the autoencoder alone after the joint schedule (see the module docstring)
    ae_lr: float = 2e-3  # peak learning rate of that phase
    ae_batch: int = 0  # batch size of that phase; 0 = ``batch`` (smaller: more, cheaper steps for the same epochs)
    rec_epochs: int = 4  # epochs of the recogniser alone on the final autoencoder's reconstructions (last phase)
    rec_lr: float = 3e-4  # peak learning rate of that phase
    batch: int = 96
    lr: float = 5e-3
    weight_decay: float = 5e-4
    warmup_steps: int = 200
    mse_weight: float = 20.0
    id_weight: float = 0.0  # 0: the autoencoder learns from the MSE alone (second-round search, hp_search.json)
    arc_weight: float = 0.5
    arc_margin: float = 0.3
    arc_scale: float = 30.0
    arc_prototypes: str = "learned"  # "learned" class weights, or "teacher": fixed, the classes' mean teacher embedding
    ae_residual: bool = False  # the autoencoder learns a correction of its input (see AEConfig.residual)
    teacher_centre: bool = True  # distil towards the teacher embedding minus its training mean (see prepare)
    distill_weight: float = 16.0
    relation_weight: float = 0.0  # match the batch's student cosine matrix to the teacher's
    blends: int = 0  # teacher-labelled blends of two training faces added to the images (see training.blends)
    audio_drop: float = 0.3
    seed: int = 0
    threads: int = 0  # torch CPU threads; 0 = torch's default
    max_images: int = 0  # 0 = all training images (a smaller number for quick trials)
    mixed_precision: bool = True  # bfloat16 autocast where the hardware has it (AMX/AVX512-BF16, CUDA)
    device: str = "auto"  # auto = CUDA when torch sees a GPU, else CPU
    time_limit_s: float = 0.0  # stop (with a checkpoint) after this long; 0 = no limit
    ae_id_weight: float = 0.0  # identity loss through the frozen recogniser in the autoencoder-only phase
    init_from: str = ""  # a model bundle folder whose networks the run starts from ("": from scratch)


def bf16_supported(device: torch.device) -> bool:
    """Whether bfloat16 autocast runs natively here (on CPUs without it, it would be emulated and slow)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


#: oneDNN's widest x64 channel block for float32 (AVX-512; 8 with AVX2)
_ONEDNN_CHANNEL_BLOCK = 16


def training_memory_format(device: torch.device, *models: nn.Module) -> torch.memory_format:
    """The layout to train ``models`` in on ``device``: channels-last (oneDNN's fast convolution layout on CPU,
    measured 1.6x here with float32) unless oneDNN computes one of their layers wrongly in it.

    oneDNN's x64 kernel for the weight gradient of a strided 1x1 convolution whose channels-last input has fewer
    channels than its channel block (``jit_1x1`` backward_weights, oneDNN 3.12 in torch 2.13; reported as
    uxlfoundation/oneDNN#6035) writes past its per-thread workspace: wrong weight gradients with two threads, a
    corrupted heap (abort or segfault, later and elsewhere) with one. Only narrow networks (widths below 16:
    tests, small trials) have such a layer; they train in the contiguous layout, whose blocked and padded
    source oneDNN handles correctly.
    """
    defective = device.type == "cpu" and any(
        isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.stride != (1, 1)
        and m.in_channels < _ONEDNN_CHANNEL_BLOCK for model in models for m in model.modules())
    return torch.contiguous_format if defective else torch.channels_last


class ArcFace(nn.Module):
    """Additive angular margin soft-max (Deng et al. 2019) over ``classes`` identities."""

    def __init__(self, dim: int, classes: int, margin: float, scale: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, dim) * 0.01)
        self.margin, self.scale = margin, scale

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        emb = emb.float()  # angles in float32 even under autocast
        cos = F.linear(F.normalize(emb, dim=1), F.normalize(self.weight.float(), dim=1)).clamp(-1 + 1e-6, 1 - 1e-6)
        target = torch.cos(torch.acos(cos.gather(1, labels[:, None])) + self.margin)
        logits = cos.scatter(1, labels[:, None], target) * self.scale
        return F.cross_entropy(logits, labels)


@dataclass
class Prepared:
    index: FolderIndex
    split: Split
    cache: dict
    arrays: TrainingArrays
    teacher: np.ndarray  # (N, 128) float32 unit rows
    labels: np.ndarray  # (N,) int64 class of each training image
    n_classes: int
    prep_seconds: dict = field(default_factory=dict)


def prepare(data: str | Path, cfg: TrainConfig, workers: int = 2, progress: Progress | None = None) -> Prepared:
    """Index, split, face cache, training arrays (cached on disk per folder and settings), audio."""
    t0 = time.perf_counter()
    index = index_folder(data)
    split = make_split(index, cfg.seed)
    cache = build_face_cache(index, progress, with_teacher=True, workers=workers)
    t1 = time.perf_counter()
    people = np.array(index.people)
    rows = training_rows(index, cache, split)
    if cfg.max_images:
        rows = np.sort(np.random.default_rng(cfg.seed).permutation(rows)[: cfg.max_images])
    key = (f"train3-{index.root.name}-{index.fingerprint()}-s{cfg.size}-v{cfg.variants}-seed{cfg.seed}"
           f"-n{rows.size}")
    folder = cache_dir() / key  # memory-mapped arrays (dataset.prepare_faces), then audio.npz
    train_people = sorted(set(people[rows]))
    clean, deg, tgt, lev = prepare_faces(index, cache, rows, size=cfg.size, variants=cfg.variants,
                                         seed=cfg.seed, workers=workers, progress=progress, folder=folder)
    audio_path = folder / "audio.npz"
    with exclusive(folder):
        if not audio_path.is_file():
            audio = _cached_audio(index, cfg, rows.size)
            if audio is None:
                clips = voice_clips(index, train_people)
                audio = prepare_audio(clips, train_people, workers=workers, progress=progress)
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / "audio.tmp.npz"
            np.savez(tmp, audio=audio[0], clip_person=audio[1], clip_paths=np.array(audio[2]))
            tmp.replace(audio_path)
    with np.load(audio_path, allow_pickle=False) as z:
        audio, clip_person, clip_paths = z["audio"], z["clip_person"], list(z["clip_paths"])
    t2 = time.perf_counter()
    person_idx = {p: i for i, p in enumerate(train_people)}
    labels = np.array([person_idx[p] for p in people[rows]], np.int64)
    descriptors = cache["teacher"][rows]
    paths = [index.paths[r] for r in rows]
    if cfg.blends:
        blends = _blend_arrays(index, cache, rows, cfg, workers, progress)
        clean, deg, tgt, lev, labels, descriptors, paths = append_blends(
            (clean, deg, tgt, lev, labels, descriptors, paths), blends)
    teacher = teacher_targets(descriptors, cfg.teacher_centre, real=rows.size)
    arrays = TrainingArrays(clean=clean, degraded=deg, target=tgt, level=lev, person=labels.astype(np.int32),
                            people=train_people, paths=paths, audio=audio,
                            clip_person=clip_person, clip_paths=clip_paths)
    return Prepared(index, split, cache, arrays, teacher, labels, len(train_people),
                    {"face_cache_s": round(t1 - t0, 1), "arrays_s": round(t2 - t1, 1)})


def training_rows(index: FolderIndex, cache: dict, split: Split) -> np.ndarray:
    """Rows of ``index`` that training uses: images of the training people with a teacher descriptor."""
    ok = np.isfinite(cache["teacher"][:, 0]) & np.isin(np.array(index.people), list(split.train_people))
    return np.nonzero(ok)[0]


def teacher_targets(descriptors: np.ndarray, centre: bool, real: int | None = None) -> np.ndarray:
    """Distillation targets (N, 128) float32 unit rows from dlib descriptors of the training images
    (the first ``real`` rows are real images, the mean they are centred on; blends follow)."""
    teacher = descriptors.astype(np.float32)
    teacher /= np.linalg.norm(teacher, axis=1, keepdims=True)
    if centre:
        # dlib's descriptors share one dominant direction (unit mean of norm 0.92 on LFW: cosine 0.84 between
        # different people, 0.95 for the same person), so 1 - cos to the raw descriptor is mostly met by
        # pointing at that mean. Centred, different people sit near cosine 0 and the target is what identifies.
        teacher -= teacher[:real].mean(axis=0, keepdims=True)
        teacher /= np.linalg.norm(teacher, axis=1, keepdims=True)
    return teacher


def append_blends(real: tuple, blends: tuple) -> tuple:
    """(clean, degraded, target, level, labels, descriptors, paths) of the real images followed by the blends'
    ((clean, degraded, target, level, descriptors, names) from :func:`_blend_arrays`)."""
    clean, deg, tgt, lev, labels, desc, paths = real
    b_clean, b_deg, b_tgt, b_lev, b_desc, b_names = blends
    joined = tuple(np.concatenate(p) for p in ((clean, b_clean), (deg, b_deg), (tgt, b_tgt), (lev, b_lev)))
    labels = np.concatenate([labels, np.full(len(b_desc), -1, np.int64)])  # no identity: distillation only
    return joined + (labels, np.concatenate([desc, b_desc]), list(paths) + list(b_names))


def _blend_arrays(index: FolderIndex, cache: dict, rows: np.ndarray, cfg: TrainConfig, workers: int,
                  progress: Progress | None) -> tuple:
    """Training arrays and teacher descriptors of ``cfg.blends`` blends of the training faces (cached on disk)."""
    from forensic_face.training.blends import blend_teacher, choose_blends, make_blends

    key = (f"blends-{index.root.name}-{index.fingerprint()}-s{cfg.size}-v{cfg.variants}-seed{cfg.seed}"
           f"-n{rows.size}-m{cfg.blends}")
    path = cache_dir() / f"{key}.npz"
    a, b, lam = choose_blends(rows, np.array(index.people), cfg.blends, cfg.seed)
    names = [f"blend:{index.paths[i]}+{index.paths[j]}@{t:.3f}" for i, j, t in zip(a, b, lam, strict=True)]
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            ok = z["ok"]
            return (z["clean"], z["degraded"], z["target"], z["level"], z["teacher"][ok],
                    [n for n, k in zip(names, ok, strict=True) if k])
    blends = make_blends(index.paths, cache, a, b, lam)
    desc = blend_teacher(index.root, blends, cache["boxes"][a], cache["landmarks"][a], workers, progress)
    arrays = blend_faces(index.root, blends, cache["boxes"][a], cache["landmarks"][a], cfg, workers, progress)
    ok = np.isfinite(desc[:, 0])
    out = tuple(x[ok] for x in arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, clean=out[0], degraded=out[1], target=out[2], level=out[3], teacher=desc, ok=ok, a=a, b=b, lam=lam)
    tmp.replace(path)
    return out + (desc[ok], [n for n, k in zip(names, ok, strict=True) if k])


def blend_faces(root: str | Path, blends: list, boxes: np.ndarray, marks: np.ndarray, cfg: TrainConfig,
                workers: int, progress: Progress | None = None) -> tuple:
    """Clean, degraded variants, targets and levels of blends (at face a's box and landmarks), with the
    blends' own seed stream (their degradations are not those of the real images of the same index)."""
    index = FolderIndex(Path(root), [], [])
    return prepare_faces(index, {"boxes": boxes, "landmarks": marks}, np.arange(len(blends)), size=cfg.size,
                         variants=cfg.variants, seed=cfg.seed + 7919, workers=workers, progress=progress,
                         frames=blends)


def _cached_audio(index: FolderIndex, cfg: TrainConfig, n_rows: int):
    """Audio vectors from training arrays of the same folder and people made with other image settings
    (audio does not depend on the input size or the number of variants): an ``audio.npz`` of another
    arrays folder, or an earlier cache file that held arrays and audio together."""
    pattern = f"train*-{index.root.name}-{index.fingerprint()}-*-seed{cfg.seed}-n{n_rows}"
    found = sorted(cache_dir().glob(pattern + "/audio.npz")) + sorted(cache_dir().glob(pattern + ".npz"))
    for other in found:
        with np.load(other, allow_pickle=False) as z:
            return z["audio"], z["clip_person"], list(z["clip_paths"])
    return None


class Batcher:
    """Draws training batches from :class:`Prepared` arrays (numpy RNG, so resumable by state)."""

    def __init__(self, prep: Prepared, cfg: TrainConfig, rng: np.random.Generator) -> None:
        self.a, self.cfg, self.rng = prep.arrays, cfg, rng
        self.teacher, self.labels = prep.teacher, prep.labels
        self.clips_of: dict[int, np.ndarray] = {}
        for c, p in enumerate(self.a.clip_person):
            self.clips_of.setdefault(int(p), []).append(c)
        self.clips_of = {k: np.array(v) for k, v in self.clips_of.items()}
        self.audio_dim = self.a.audio.shape[2] if self.a.audio.size else 715

    def epoch_order(self) -> np.ndarray:
        return self.rng.permutation(self.a.clean.shape[0])

    def batch(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        n = idx.size
        v = self.rng.integers(0, self.a.degraded.shape[1], n)
        deg = gather(self.a.degraded, idx, v).astype(np.float32) / 255.0
        clean = gather(self.a.target, idx, v).astype(np.float32) / 255.0
        flip = self.rng.random(n) < 0.5
        deg[flip] = deg[flip, :, ::-1]
        clean[flip] = clean[flip, :, ::-1]
        audio = np.zeros((n, self.audio_dim), np.float32)
        present = np.zeros(n, bool)
        for j, i in enumerate(idx):
            clips = self.clips_of.get(int(self.a.person[i]))
            if clips is not None and self.rng.random() >= self.cfg.audio_drop:
                c = clips[self.rng.integers(clips.size)]
                audio[j] = self.a.audio[c, self.rng.integers(self.a.audio.shape[1])]
                present[j] = True
        return {
            "deg": torch.from_numpy(np.ascontiguousarray(deg))[:, None],
            "clean": torch.from_numpy(np.ascontiguousarray(clean))[:, None],
            "audio": torch.from_numpy(audio),
            "present": torch.from_numpy(present),
            "teacher": torch.from_numpy(self.teacher[idx]),
            "label": torch.from_numpy(self.labels[idx]),
            "level": torch.from_numpy(self.a.level[idx, v].astype(np.int64)),
        }


def networks(cfg: TrainConfig, audio_dim: int) -> tuple[FusionAutoencoder, Recogniser]:
    """The two networks a training configuration describes (freshly initialised)."""
    ae = FusionAutoencoder(AEConfig(size=cfg.size, width=cfg.ae_width, audio_dim=audio_dim,
                                    residual=cfg.ae_residual, blocks=cfg.ae_blocks))
    rec = Recogniser(RecogniserConfig(size=cfg.size, width=cfg.rec_width, embed_dim=cfg.embed_dim,
                                      depth=cfg.rec_depth))
    return ae, rec


def build_models(cfg: TrainConfig, n_classes: int, audio_dim: int,
                 prototypes: np.ndarray | None = None) -> tuple[FusionAutoencoder, Recogniser, ArcFace]:
    torch.manual_seed(cfg.seed)
    ae, rec = networks(cfg, audio_dim)
    arc = ArcFace(cfg.embed_dim, n_classes, cfg.arc_margin, cfg.arc_scale)
    if prototypes is not None:
        # class centres fixed in the teacher's space: the margin loss then agrees with the distillation
        arc.weight.data.copy_(torch.from_numpy(prototypes))
        arc.weight.requires_grad_(False)
    return ae, rec, arc


def _lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))


def train_step(ae, rec, arc, batch, cfg: TrainConfig, autocast: bool = False) -> dict[str, torch.Tensor]:
    device_type = batch["deg"].device.type
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=autocast):
        recon = ae(batch["deg"], batch["audio"], batch["present"])
        # identity gradient into the autoencoder scaled by id_weight
        recon_for_rec = recon.detach() + cfg.id_weight * (recon - recon.detach())
        emb = rec(torch.cat([recon_for_rec, batch["clean"].to(recon.dtype)]))
    recon = recon.float()  # losses in float32
    mse = F.mse_loss(recon, batch["clean"])
    identity = _identity_losses(emb.float(), arc, batch, cfg)
    return {**identity, "loss": cfg.mse_weight * mse + identity["loss"], "mse": mse.detach()}


def rec_train_step(ae, rec, arc, batch, cfg: TrainConfig, autocast: bool = False) -> dict[str, torch.Tensor]:
    """The identity losses of one batch with the autoencoder frozen (the recogniser-adaptation phase)."""
    with torch.autocast(batch["deg"].device.type, dtype=torch.bfloat16, enabled=autocast):
        with torch.no_grad():
            recon = ae(batch["deg"], batch["audio"], batch["present"])
        emb = rec(torch.cat([recon, batch["clean"].to(recon.dtype)]))
    return _identity_losses(emb.float(), arc, batch, cfg)


def _identity_losses(emb: torch.Tensor, arc, batch, cfg: TrainConfig) -> dict[str, torch.Tensor]:
    """Distillation + ArcFace (+ relational) on the embeddings of [probes; clean faces] of a batch."""
    teacher = torch.cat([batch["teacher"], batch["teacher"]])
    labels = torch.cat([batch["label"], batch["label"]])
    distill = (1 - F.cosine_similarity(emb, teacher, dim=1)).mean()
    known = labels >= 0  # blends (label -1) have no identity of their own: distillation only
    arcl = arc(emb[known], labels[known]) if bool(known.any()) else emb.sum() * 0.0
    loss = cfg.distill_weight * distill + cfg.arc_weight * arcl
    out = {"distill": distill.detach(), "arc": arcl.detach()}
    if cfg.relation_weight:
        # relational distillation: the cosine of every probe (reconstruction) against every clean face of
        # the batch should be the teacher's cosine of the two people's clean faces
        n = batch["deg"].shape[0]
        e = F.normalize(emb, dim=1)
        t = F.normalize(batch["teacher"], dim=1)
        rel = F.mse_loss(e[:n] @ e[n:].T, t @ t.T)
        loss = loss + cfg.relation_weight * rel
        out["rel"] = rel.detach()
    return {"loss": loss, **out}


def ae_train_step(ae: FusionAutoencoder, batch: dict[str, torch.Tensor], autocast: bool = False) -> torch.Tensor:
    """The reconstruction MSE of one batch (the autoencoder-only phase)."""
    with torch.autocast(batch["deg"].device.type, dtype=torch.bfloat16, enabled=autocast):
        recon = ae(batch["deg"], batch["audio"], batch["present"])
    return F.mse_loss(recon.float(), batch["clean"])


def ae_identity_step(ae: FusionAutoencoder, rec: nn.Module, batch: dict[str, torch.Tensor], id_weight: float,
                     autocast: bool = False) -> dict[str, torch.Tensor]:
    """The autoencoder-only phase's losses with an identity loss: the MSE plus ``id_weight`` times
    ``1 - cos(rec(reconstruction), rec(clean face))``, the recogniser frozen (in evaluation mode, no gradient of
    its own; the gradient reaches the autoencoder through it)."""
    frozen = [p for p in rec.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        with torch.autocast(batch["deg"].device.type, dtype=torch.bfloat16, enabled=autocast):
            recon = ae(batch["deg"], batch["audio"], batch["present"])
            with torch.no_grad():
                target = rec(batch["clean"])
            emb = rec(recon)
        mse = F.mse_loss(recon.float(), batch["clean"])
        identity = (1 - F.cosine_similarity(emb.float(), target.float(), dim=1)).mean()
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return {"loss": mse + id_weight * identity, "mse": mse.detach(), "identity": identity.detach()}


def _start_meta(folder: str | Path) -> dict:
    """``models.json`` of the bundle a run starts from; FileNotFoundError when ``folder`` holds none."""
    from forensic_face.models.bundle import stored_meta

    meta = stored_meta(folder)
    if meta is None:
        raise FileNotFoundError(f"{folder}: no model bundle (models.json and models.pt) to start from")
    return meta


def bundle_origin(folder: str | Path) -> dict:
    """What a run that starts from the bundle in ``folder`` records of it: its version, weights digest and training
    record (which names its own origin)."""
    meta = _start_meta(folder)
    return {"from_bundle": meta["version"], "weights_sha256": meta["weights_sha256"], "record": meta.get("record", {})}


def config_from_bundle(cfg: TrainConfig, folder: str | Path) -> TrainConfig:
    """``cfg`` with the architecture of the model bundle in ``folder`` (the autoencoder's and the recogniser's
    settings of its ``models.json``), so that its networks load into the ones ``cfg`` builds; refused for a
    bundle whose recogniser is not this project's CNN."""
    from forensic_face.models.bundle import DEFAULT_ARCHITECTURE

    meta = _start_meta(folder)
    architecture = (meta.get("recogniser") or {}).get("architecture", DEFAULT_ARCHITECTURE)
    if architecture != "ff-cnn":
        raise ValueError(f"{folder}: its recogniser ({architecture}) is not the CNN that `forensic-face train` "
                         "trains")
    ae, rec = meta["ae"], meta["rec"]
    return replace(cfg, init_from=str(folder), size=int(ae["size"]), ae_width=int(ae["width"]),
                   ae_residual=bool(ae.get("residual", False)), ae_blocks=int(ae.get("blocks", 0)),
                   rec_width=int(rec["width"]), embed_dim=int(rec["embed_dim"]), rec_depth=int(rec.get("depth", 1)))


def train(data: str | Path, out: str | Path, cfg: TrainConfig, *, workers: int = 2, resume: bool = False,
          progress: Progress | None = None, prep: Prepared | None = None) -> dict:
    """Train on an LFW-style folder; writes ``checkpoint.pt`` and ``history.json`` into ``out``.

    Returns the training record (config, split, timings, final losses). The networks stay in the
    checkpoint; :func:`forensic_face.training.evaluate.finalise` calibrates and exports them.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    prep = prep or prepare(data, cfg, workers=workers, progress=progress)
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                          (cfg.device if cfg.device != "auto" else "cpu"))
    autocast = cfg.mixed_precision and bf16_supported(device)
    ae, rec, arc, layout = _networks_on(device, cfg, prep)
    phases = _phases(cfg, prep.arrays.clean.shape[0], ae, rec, arc, autocast)
    checkpoint = out / "checkpoint.pt"
    step, epoch, history, rng = 0, 0, [], np.random.default_rng(cfg.seed)
    if resume and checkpoint.is_file():
        step, epoch, history, rng = _restore(checkpoint, ae, rec, arc, {p.name: p.opt for p in phases})
        log.info("resumed at epoch %d, step %d", epoch, step)
    batcher = Batcher(prep, cfg, rng)
    started = time.perf_counter()
    record = {"config": asdict(cfg), "split": prep.split.describe(), "train_images": int((prep.labels >= 0).sum()),
              "train_blends": int((prep.labels < 0).sum()),
              "train_classes": prep.n_classes, "voice_clips": int(prep.arrays.audio.shape[0]),
              "params": {"ae": count_params(ae), "rec": count_params(rec)}, "prep_s": prep.prep_seconds,
              "device": str(device), "bfloat16_autocast": autocast, "channels_last": layout == torch.channels_last,
              "torch_threads": torch.get_num_threads()}
    if cfg.init_from:
        record["initialised_from"] = bundle_origin(cfg.init_from)
    run = _Run(ae, rec, arc, batcher, device, checkpoint, record, progress, sum(p.steps * p.epochs for p in phases),
               started + cfg.time_limit_s if cfg.time_limit_s else None, step, epoch, history)
    for phase in phases:
        _run_phase(run, phase)
    record |= {"history": run.history, "train_seconds": round(time.perf_counter() - started, 1),
               "stopped_early": run.stopped_early, "steps": run.step,
               "epochs_this_session": run.epoch - epoch}  # ``epoch``: where this session started
    (out / "history.json").write_text(json.dumps(record, indent=2))
    return record


def _networks_on(device: torch.device, cfg: TrainConfig,
                 prep: Prepared) -> tuple[FusionAutoencoder, Recogniser, ArcFace, torch.memory_format]:
    """The networks and ArcFace head to train on ``prep``, freshly initialised (ArcFace's class centres fixed at
    the classes' mean teacher embedding with ``arc_prototypes="teacher"``) and moved to ``device`` in the layout
    they train in, which comes with them (:func:`training_memory_format`)."""
    audio_dim = prep.arrays.audio.shape[2] if prep.arrays.audio.size else 715
    prototypes = None
    if cfg.arc_prototypes == "teacher":
        prototypes = np.zeros((prep.n_classes, prep.teacher.shape[1]), np.float32)
        known = prep.labels >= 0
        np.add.at(prototypes, prep.labels[known], prep.teacher[known])
        prototypes /= np.maximum(np.linalg.norm(prototypes, axis=1, keepdims=True), 1e-8)
    ae, rec, arc = build_models(cfg, prep.n_classes, audio_dim, prototypes)
    if cfg.init_from:
        from forensic_face.models.bundle import load_networks

        start_ae, start_rec, _ = load_networks(Path(cfg.init_from), torch.device("cpu"))
        ae.load_state_dict(start_ae.state_dict())
        rec.load_state_dict(start_rec.state_dict())
    layout = training_memory_format(device, ae, rec)
    ae, rec, arc = (m.to(device, memory_format=layout) for m in (ae, rec, arc))
    return ae, rec, arc, layout


@dataclass(frozen=True)
class _Phase:
    """One phase of the schedule (see the module docstring): its epochs, optimiser, loss and learning rates."""

    name: str  # "joint", "autoencoder" or "recogniser": in the checkpoint, and in the history past the joint phase
    first_epoch: int  # epochs of the schedule before this phase
    epochs: int
    opt: torch.optim.Optimizer
    params: list  # the parameters whose gradient norm is clipped
    batch_size: int
    steps: int  # per epoch
    step_fn: Callable[[dict], dict]  # batch -> losses; "loss" is the one optimised
    keys: tuple[str, ...]  # the losses averaged into the history
    first_step: int  # global steps of the schedule before this phase: its learning rate counts from there
    lr_cfg: TrainConfig  # lr and warmup_steps of its warm-up and cosine decay
    message: str  # progress text: {n} the phase's epoch, {of} its epochs, and the running mean losses
    trained: tuple[nn.Module, ...]  # in training mode during its epochs
    frozen: tuple[nn.Module, ...]  # in evaluation mode from its start


def _phases(cfg: TrainConfig, n: int, ae: FusionAutoencoder, rec: Recogniser, arc: ArcFace,
            autocast: bool) -> tuple[_Phase, _Phase, _Phase]:
    """The joint, autoencoder-only and recogniser-only phases of ``cfg`` on ``n`` training images, each with its
    own AdamW."""
    params = [p for m in (ae, rec, arc) for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    opt_ae = torch.optim.AdamW(ae.parameters(), lr=cfg.ae_lr, weight_decay=cfg.weight_decay)
    rec_params = [p for m in (rec, arc) for p in m.parameters() if p.requires_grad]
    opt_rec = torch.optim.AdamW(rec_params, lr=cfg.rec_lr, weight_decay=cfg.weight_decay)
    steps, ae_batch = n // cfg.batch, cfg.ae_batch or cfg.batch
    total, ae_total, rec_total = steps * cfg.epochs, n // ae_batch * cfg.ae_epochs, steps * cfg.rec_epochs
    joint_keys = ("loss", "mse", "distill", "arc") + (("rel",) if cfg.relation_weight else ())
    joint = _Phase("joint", 0, cfg.epochs, opt, params, cfg.batch, steps,
                   lambda batch: train_step(ae, rec, arc, batch, cfg, autocast), joint_keys, 0, cfg,
                   "epoch {n}/{of} loss {loss:.3f} mse {mse:.4f} distill {distill:.3f}", (ae, rec), ())
    def ae_step(batch: dict) -> dict:
        if cfg.ae_id_weight:
            return ae_identity_step(ae, rec, batch, cfg.ae_id_weight, autocast)
        mse = ae_train_step(ae, batch, autocast)
        return {"loss": mse, "mse": mse}

    ae_keys = ("mse", "identity") if cfg.ae_id_weight else ("mse",)
    ae_message = "autoencoder epoch {n}/{of} mse {mse:.4f}" + (" identity {identity:.4f}" if cfg.ae_id_weight else "")
    ae_only = _Phase("autoencoder", cfg.epochs, cfg.ae_epochs, opt_ae, list(ae.parameters()), ae_batch,
                     n // ae_batch, ae_step, ae_keys, total, replace(cfg, lr=cfg.ae_lr), ae_message, (ae,), (rec,))
    # a short warm-up: the phase is a few hundred steps
    rec_cfg = replace(cfg, lr=cfg.rec_lr, warmup_steps=min(cfg.warmup_steps, max(1, rec_total // 10)))
    rec_only = _Phase("recogniser", cfg.epochs + cfg.ae_epochs, cfg.rec_epochs, opt_rec, rec_params, cfg.batch,
                      steps, lambda batch: rec_train_step(ae, rec, arc, batch, cfg, autocast),
                      ("loss",) + joint_keys[2:], total + ae_total, rec_cfg,
                      "recogniser epoch {n}/{of} loss {loss:.3f} distill {distill:.3f}", (rec,), (ae,))
    return joint, ae_only, rec_only


def _restore(path: Path, ae: FusionAutoencoder, rec: Recogniser, arc: ArcFace,
             opts: dict[str, torch.optim.Optimizer]) -> tuple[int, int, list, np.random.Generator]:
    """Load the checkpoint at ``path`` into the networks and into the optimiser in ``opts`` of the phase that
    wrote it (the next phase starts its own afresh); returns its step, epoch, history and batch RNG."""
    ck = torch.load(path, map_location="cpu", weights_only=True)
    ae.load_state_dict(ck["ae"])
    rec.load_state_dict(ck["rec"])
    arc.load_state_dict(ck["arc"])
    # tensors follow the parameters' device
    opts.get(str(ck.get("phase", "joint")), opts["joint"]).load_state_dict(ck["opt"])
    rng = np.random.default_rng()
    rng.bit_generator.state = json.loads(ck["rng"])
    return int(ck["step"]), int(ck["epoch"]), json.loads(ck["history"]), rng


@dataclass
class _Run:
    """One :func:`train` call: what its phases share, and where the schedule stands (global step, epochs done,
    per-epoch history; with the batcher's RNG, what a checkpoint holds)."""

    ae: FusionAutoencoder
    rec: Recogniser
    arc: ArcFace
    batcher: Batcher
    device: torch.device
    checkpoint: Path
    record: dict  # the training record a checkpoint holds
    progress: Progress | None
    total_steps: int  # of the whole schedule
    deadline: float | None  # a time.perf_counter value: the time limit
    step: int
    epoch: int
    history: list
    stopped_early: bool = False

    def reporter(self, phase: _Phase) -> Callable[[int, dict], None]:
        """The progress callback of ``phase``'s current epoch: the global step and the phase's message."""
        n = self.epoch + 1 - phase.first_epoch

        def update(done: int, means: dict) -> None:
            if self.progress is not None:
                self.progress.update(done, self.total_steps, phase.message.format(n=n, of=phase.epochs, **means))
        return update


def _run_phase(run: _Run, phase: _Phase) -> None:
    """The epochs of ``phase`` still to do (none once the time limit has stopped the run), each added to the
    history and followed by a checkpoint."""
    for m in phase.frozen:
        m.eval()
    phase_total = phase.steps * phase.epochs
    while run.epoch < phase.first_epoch + phase.epochs and not run.stopped_early:
        for m in phase.trained:
            m.train()
        t_epoch = time.perf_counter()
        run.step, means, done_steps, run.stopped_early = _epoch(
            run.batcher, phase.steps, phase.batch_size, run.device, phase.opt, phase.params, phase.step_fn,
            lambda s: _lr_at(s - phase.first_step, phase_total, phase.lr_cfg), phase.keys, run.step, run.deadline,
            run.reporter(phase))
        run.epoch += 1
        named = {} if phase.name == "joint" else {"phase": phase.name}
        run.history.append({"epoch": run.epoch, **named, "steps": done_steps,
                            "seconds": round(time.perf_counter() - t_epoch, 1), **means})
        _save_checkpoint(run.checkpoint, run.ae, run.rec, run.arc, phase.opt, run.step, run.epoch, run.batcher.rng,
                         run.history, run.record, phase.name)


def _epoch(batcher: Batcher, steps: int, batch_size: int, device: torch.device, opt: torch.optim.Optimizer,
           params: list, step_fn, lr_at, keys: tuple, step: int, deadline: float | None, report) -> tuple:
    """One epoch of optimiser steps on ``step_fn``'s ``"loss"`` (gradient norm clipped at 5); returns the global
    step after it, the mean of each loss in ``keys`` (5 decimals), the steps done and whether ``deadline``
    (a ``time.perf_counter`` value) stopped it early. ``report(step, running means)`` after each step."""
    order = batcher.epoch_order()
    sums = dict.fromkeys(keys, 0.0)
    stopped, done = False, 0
    for b in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        batch = {k: v.to(device) for k, v in batcher.batch(order[b * batch_size:(b + 1) * batch_size]).items()}
        losses = step_fn(batch)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        step, done = step + 1, b + 1
        for k in sums:
            sums[k] += float(losses[k].detach())
        report(step, {k: v / done for k, v in sums.items()})
        if deadline is not None and time.perf_counter() > deadline:
            stopped = True
            break
    return step, {k: round(v / max(done, 1), 5) for k, v in sums.items()}, done, stopped


def _save_checkpoint(path: Path, ae, rec, arc, opt, step, epoch, rng, history, record, phase: str = "joint") -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"ae": ae.state_dict(), "rec": rec.state_dict(), "arc": arc.state_dict(), "opt": opt.state_dict(),
                "step": step, "epoch": epoch, "rng": json.dumps(rng.bit_generator.state),
                "history": json.dumps(history), "record": json.dumps(record), "phase": phase}, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> tuple[FusionAutoencoder, Recogniser, dict]:
    ck = torch.load(path, map_location="cpu", weights_only=True)
    record = json.loads(ck["record"])
    cfg = TrainConfig(**record["config"])
    ae, rec = networks(cfg, ck["ae"]["audio.net.0.weight"].shape[1])
    ae.load_state_dict(ck["ae"])
    rec.load_state_dict(ck["rec"])
    record["history"] = json.loads(ck["history"])
    return ae.eval(), rec.eval(), record
