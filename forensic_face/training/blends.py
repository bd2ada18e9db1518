"""Teacher-labelled face blends: extra distillation inputs made from the training images themselves.

The recogniser learns mostly by matching the teacher (dlib's ResNet) on about 7,700 training
faces, and what it learns stops generalising long before it matches the teacher (cosine to the
teacher 0.75 on training faces, 0.64 on held-out people). Blends add points between people where
the teacher can be asked what it sees: training face B is warped onto face A's landmarks (the
similarity between their clean alignments), the two frames are mixed with weight ``lam`` for A,
and the teacher describes the mixed frame at A's landmarks. The blends then go through the same
degradation, alignment and training as the real images (distillation only: a blend has no
identity for the ArcFace term). Knowledge distillation on mixed inputs with the teacher evaluated on
exactly those inputs is the "function matching" of Beyer et al., 2022 (CVPR).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from forensic_face.core.progress import Progress
from forensic_face.training.chunked import parallel_map
from forensic_face.training.dataset import clean_matrix
from forensic_face.vision.align import AlignSpec


@dataclass(frozen=True)
class Blend:
    """One blended frame: ``lam`` of frame ``a`` and ``1 - lam`` of frame ``b`` warped by ``warp`` (2, 3)."""

    a: str
    b: str
    warp: tuple
    lam: float


def choose_blends(rows: np.ndarray, people: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, ...]:
    """``count`` (a, b, lam): rows of two different people, lam uniform in [0.25, 0.75]. Each draw has its
    own random stream, so a smaller ``count`` gives the first blends of a larger one."""
    a = np.random.default_rng([seed, 4242, 0]).choice(rows, count)
    b = np.random.default_rng([seed, 4242, 1]).choice(rows, count)
    lam = np.random.default_rng([seed, 4242, 2]).uniform(0.25, 0.75, count)
    for k in np.nonzero(people[a] == people[b])[0]:
        redraw = np.random.default_rng([seed, 4242, 3, k])
        while people[a[k]] == people[b[k]]:
            b[k] = redraw.choice(rows)
    return a, b, lam


def blend_warp(box_a, marks_a, box_b, marks_b) -> np.ndarray:
    """Frame-b -> frame-a similarity that puts face b where face a is (through their clean alignments)."""
    spec = AlignSpec(size=64)
    ma = np.vstack([clean_matrix(box_a, marks_a, spec), [0, 0, 1]])
    mb = np.vstack([clean_matrix(box_b, marks_b, spec), [0, 0, 1]])
    return (np.linalg.inv(ma) @ mb)[:2]


def blend_frame(grey_a: np.ndarray, grey_b: np.ndarray, warp: np.ndarray, lam: float) -> np.ndarray:
    h, w = grey_a.shape
    b = cv2.warpAffine(grey_b, np.asarray(warp, np.float64), (w, h), flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    return np.clip(lam * grey_a.astype(np.float32) + (1 - lam) * b + 0.5, 0, 255).astype(np.uint8)


def load_frame(root: str | Path, item: str | Blend) -> np.ndarray | None:
    """A training frame (grey): an image file under ``root``, or a :class:`Blend` of two of them."""
    if isinstance(item, Blend):
        a = cv2.imread(str(Path(root) / item.a), cv2.IMREAD_GRAYSCALE)
        b = cv2.imread(str(Path(root) / item.b), cv2.IMREAD_GRAYSCALE)
        return None if a is None or b is None else blend_frame(a, b, np.array(item.warp), item.lam)
    return cv2.imread(str(Path(root) / item), cv2.IMREAD_GRAYSCALE)


def make_blends(paths: list[str], cache: dict, a: np.ndarray, b: np.ndarray, lam: np.ndarray) -> list[Blend]:
    """The :class:`Blend` of each (a, b, lam), rows of ``paths`` and of the face cache."""
    return [Blend(paths[i], paths[j], tuple(map(tuple, blend_warp(cache["boxes"][i], cache["landmarks"][i],
                                                                   cache["boxes"][j], cache["landmarks"][j]))),
                  float(t)) for i, j, t in zip(a, b, lam, strict=True)]


def _teacher_chunk(job: tuple) -> np.ndarray:
    from forensic_face.training.lfw import dlib_descriptor, worker_models

    root, items, boxes, marks = job
    _, rec = worker_models()
    out = np.full((len(items), 128), np.nan, np.float32)
    for k, item in enumerate(items):
        frame = load_frame(root, item)
        if frame is not None:
            out[k] = dlib_descriptor(rec, frame, boxes[k], marks[k])
    return out


def blend_teacher(root: str | Path, blends: list[Blend], boxes: np.ndarray, marks: np.ndarray, workers: int = 2,
                  progress: Progress | None = None) -> np.ndarray:
    """The teacher's descriptor (N, 128) of every blend, at face a's box and landmarks."""
    chunks = [slice(i, i + 64) for i in range(0, len(blends), 64)]
    jobs = [(str(root), blends[c], boxes[c], marks[c]) for c in chunks]
    parts = parallel_map(_teacher_chunk, jobs, workers, progress, len(blends), "teacher on blends",
                         sizes=[len(j[1]) for j in jobs])
    return np.concatenate(parts) if parts else np.zeros((0, 128), np.float32)
