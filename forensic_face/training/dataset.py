"""Training arrays: aligned clean faces, degraded variants of them, and per-clip audio vectors.

Everything the training loop reads is prepared once (uint8 images, float16 audio), so an epoch costs
only the networks. ``train.prepare`` keeps the images in memory-mapped files on disk, prepared chunk by
chunk and resumable (:mod:`~forensic_face.training.chunked`): a folder whose arrays exceed memory (CASIA-
WebFace at 8 variants: 34 GB) trains from the page cache. For every image of an LFW-style folder:

- the clean face, aligned by the landmarks found on the clean frame (the face cache), ``size`` px;
- ``variants`` degraded copies: the *whole frame* is degraded (a DESIGN.md evaluation level or a
  random training degradation), then cropped with the clean alignment perturbed by a random
  similarity (scale, rotation, shift), which stands in for the landmark error of a detector
  working on a degraded frame; and, for each, the clean frame cropped with that same perturbed
  alignment: the reconstruction target (the autoencoder restores the face as it was framed, it
  does not re-align it).

Audio: for every person with voice clips (``<root>/../lfw-voices/<Name>/<Name>_vNN.ogg`` for LFW,
or any ``*.wav|flac|ogg|mp3`` inside the person's image folder for other data sets), the audio
vector (LBRP + prosody) at ``AUDIO_POINTS`` positions of each clip.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from forensic_face.core.progress import Progress
from forensic_face.training.chunked import ChunkedArrays, exclusive, parallel_map
from forensic_face.training.lfw import FolderIndex
from forensic_face.vision.align import AlignSpec, similarity_from_eyes, warp_to_crop
from forensic_face.vision.degrade import EVAL_LEVELS, LEVELS, Degradation, degrade, sample_training
from forensic_face.vision.detect import FaceDetection

log = logging.getLogger(__name__)

#: Relative positions inside a voice clip where audio vectors are taken.
AUDIO_POINTS = (0.2, 0.35, 0.5, 0.65, 0.8)
AUDIO_EXTS = (".wav", ".flac", ".ogg", ".opus", ".mp3")
#: Level codes stored per degraded variant.
LEVEL_CODES = {**{name: code for code, name in enumerate(EVAL_LEVELS)}, "random": len(EVAL_LEVELS)}


@dataclass
class TrainingArrays:
    clean: np.ndarray  # (N, S, S) uint8, clean alignment
    degraded: np.ndarray  # (N, V, S, S) uint8
    target: np.ndarray  # (N, V, S, S) uint8: the clean frame in each variant's (perturbed) alignment
    level: np.ndarray  # (N, V) int8, LEVEL_CODES
    person: np.ndarray  # (N,) int32 index into ``people``
    people: list[str]
    paths: list[str]
    audio: np.ndarray  # (C, len(AUDIO_POINTS), D) float16 audio vectors per clip
    clip_person: np.ndarray  # (C,) int32 person of each clip
    clip_paths: list[str]


def clean_matrix(box: np.ndarray, landmarks: np.ndarray, spec: AlignSpec) -> np.ndarray:
    """The frame -> crop similarity of the clean face (eyes from the cached landmarks, else the box)."""
    from forensic_face.vision.align import _eyes_from_box, _plausible_eyes

    det = FaceDetection(box=tuple(float(v) for v in box), score=1.0, method="cache",
                        landmarks=landmarks if np.any(landmarks) else None)
    eyes = det.eye_centres()
    if eyes is None or not _plausible_eyes(eyes, det):
        eyes = _eyes_from_box(det)
    return similarity_from_eyes(eyes[0], eyes[1], spec)


def jitter_matrix(matrix: np.ndarray, rng: np.random.Generator, size: int, strength: float) -> np.ndarray:
    """Compose a random similarity about the crop centre (scale, rotation, shift) after ``matrix``."""
    s = float(np.exp(rng.normal(0.0, 0.06 * strength)))
    a = np.deg2rad(rng.normal(0.0, 4.0 * strength))
    t = rng.normal(0.0, 0.03 * strength * size, 2)
    c = size / 2.0
    rot = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    shift = np.array([c, c]) + t - rot @ np.array([c, c])
    jit = np.vstack([np.hstack([rot, shift[:, None]]), [0, 0, 1]])
    return (jit @ np.vstack([matrix, [0, 0, 1]]))[:2]


def training_degradation(rng: np.random.Generator) -> tuple[str, Degradation]:
    """The degradation of one training variant: a DESIGN.md level or a random combination."""
    u = rng.random()
    if u < 0.12:
        return "clean", LEVELS["clean"]
    if u < 0.37:
        return "mild", LEVELS["mild"]
    if u < 0.67:
        return "severe", LEVELS["severe"]
    return "random", sample_training(rng, geometry=False)


def _prepare_chunk(job: tuple) -> tuple:
    from forensic_face.training.blends import load_frame

    root, rels, boxes, marks, size, variants, seed, first = job
    spec = AlignSpec(size=size)
    k = len(rels)
    clean = np.zeros((k, size, size), np.uint8)
    deg = np.zeros((k, variants, size, size), np.uint8)
    tgt = np.zeros((k, variants, size, size), np.uint8)
    lev = np.zeros((k, variants), np.int8)
    for j, rel in enumerate(rels):
        grey = load_frame(root, rel)
        if grey is None:
            continue
        m = clean_matrix(boxes[j], marks[j], spec)
        clean[j] = warp_to_crop(grey, m, size)
        for v in range(variants):
            rng = np.random.default_rng([seed, first + j, v])
            name, d = training_degradation(rng)
            d = replace(d, flip=False)
            frame = degrade(grey, d, seed=int(rng.integers(2**31)))
            strength = {"clean": 0.5, "mild": 1.0}.get(name, 1.5)
            mj = jitter_matrix(m, rng, size, strength)
            deg[j, v] = warp_to_crop(frame, mj, size)
            tgt[j, v] = warp_to_crop(grey, mj, size)
            lev[j, v] = LEVEL_CODES[name]
    return clean, deg, tgt, lev


#: Rows per chunk of the preparation (its unit of work, of resuming, and of the degradations' seeds).
CHUNK = 64
FACE_ARRAYS = ("clean", "degraded", "target", "level")


def face_specs(n: int, size: int, variants: int) -> dict:
    """The training arrays of ``n`` images (name -> shape, dtype, fill)."""
    return {"clean": ((n, size, size), "u1", 0), "degraded": ((n, variants, size, size), "u1", 0),
            "target": ((n, variants, size, size), "u1", 0), "level": ((n, variants), "i1", 0)}


def prepare_faces(index: FolderIndex, cache: dict, rows: np.ndarray, *, size: int = 64, variants: int = 4,
                  seed: int = 0, workers: int = 2, progress: Progress | None = None,
                  frames: list | None = None, folder: Path | None = None) -> tuple:
    """Clean crops (n, S, S), degraded variants (n, V, S, S), their targets (n, V, S, S) and level codes
    (n, V) for ``rows`` of the cache (the frames ``index.paths[row]``, or ``frames[row]``: paths under
    ``index.root`` or :class:`~forensic_face.training.blends.Blend` items).

    ``folder``: the arrays are kept there as memory-mapped ``.npy`` files (:class:`ChunkedArrays`; a
    preparation of the same rows that stopped part way is resumed) and returned as read-only maps, so
    a folder larger than memory can be prepared and trained on. Otherwise they are made in memory."""
    rows = np.asarray(rows)
    frames = index.paths if frames is None else frames
    chunks = [rows[i:i + CHUNK] for i in range(0, rows.size, CHUNK)]
    specs = face_specs(rows.size, size, variants)
    if folder is None or not rows.size:
        return _fill(ChunkedArrays.in_memory(specs, len(chunks)), index, frames, cache, chunks, size, variants,
                     seed, workers, progress)
    with exclusive(folder):
        return _fill(ChunkedArrays.on_disk(folder, specs, len(chunks)), index, frames, cache, chunks, size,
                     variants, seed, workers, progress)


def _fill(store: ChunkedArrays, index: FolderIndex, frames: list, cache: dict, chunks: list, size: int,
          variants: int, seed: int, workers: int, progress: Progress | None) -> tuple:
    """Prepare the chunks ``store`` lacks; its finished arrays."""
    n = sum(len(c) for c in chunks)
    todo = store.pending()
    jobs = [(str(index.root), [frames[r] for r in chunks[k]], cache["boxes"][chunks[k]],
             cache["landmarks"][chunks[k]], size, variants, seed, int(chunks[k][0])) for k in todo]
    sizes = [len(chunks[k]) for k in todo]

    def put(i: int, parts: tuple) -> None:
        k = todo[i]
        store.put(k, slice(k * CHUNK, k * CHUNK + sizes[i]), dict(zip(FACE_ARRAYS, parts, strict=True)))

    try:
        parallel_map(_prepare_chunk, jobs, workers, progress, n, "preparing faces", sizes=sizes, on_result=put,
                     done=n - sum(sizes))
    finally:
        store.checkpoint()
    arrays = store.finish()
    return tuple(arrays[k] for k in FACE_ARRAYS)


# ------------------------------------------------------------------------------------------------ audio


def voice_clips(index: FolderIndex, people: Iterable[str]) -> list[tuple[str, Path]]:
    """(person, clip path) for every voice clip of ``people``: in ``<root>/../<root.name>-voices/<Name>/``
    (the shared data's layout) or inside the person's own image folder."""
    voices = index.root.parent / f"{index.root.name}-voices"
    out = []
    for person in people:
        found = []
        for folder in (voices / person, index.root / person):
            if folder.is_dir():
                found += sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_EXTS)
        out += [(person, p) for p in found]
    return out


def _audio_chunk(job: tuple) -> list:
    from forensic_face.audio.features import AudioFeatureExtractor
    from forensic_face.core.errors import AudioError

    extractor = AudioFeatureExtractor()
    out = []
    for path in job:
        try:
            clip = extractor.load(path)
            ts = np.array(AUDIO_POINTS) * clip.duration_s
            out.append(extractor(clip, ts).vector.astype(np.float16))
        except AudioError as exc:
            log.warning("%s: %s", path, exc)
            out.append(None)
    return out


def prepare_audio(clips: list[tuple[str, Path]], people: list[str], *, workers: int = 2,
                  progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Audio vectors (C, points, D) float16 of the usable clips, their person index, their paths."""
    paths = [str(p) for _, p in clips]
    chunks = [paths[i:i + 32] for i in range(0, len(paths), 32)]
    parts = parallel_map(_audio_chunk, chunks, workers, progress, len(paths), "audio features",
                         sizes=[len(c) for c in chunks])
    flat = [v for part in parts for v in part]
    pos = {p: i for i, p in enumerate(people)}
    keep = [i for i, v in enumerate(flat) if v is not None]
    if not keep:
        return np.zeros((0, len(AUDIO_POINTS), 715), np.float16), np.zeros(0, np.int32), []
    vecs = np.stack([flat[i] for i in keep])
    return vecs, np.array([pos[clips[i][0]] for i in keep], np.int32), [paths[i] for i in keep]
