"""Deterministic clips of faces moving over scenes, with where each face is, for tests, demos and benchmarks.

Two real faces ship with scikit-image: the astronaut (Eileen Collins, colour) and the cameraman (grey). Each is
cut from its picture with a feathered oval, scaled, and moved along a straight line over a background picture
(scikit-image's coffee cup, rocket); a little seeded sensor noise is added to every frame. A clip is a list of
shots; a shot change is a hard cut. The frames are made one at a time (nothing is kept), with the truth beside
each: which person's face lies where and how much of it another face covers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

from forensic_face.vision.detect import Box
from forensic_face.vision.frames import Frame

#: Where the faces lie in scikit-image's pictures, pixels: (picture, cut-out region, face box inside the picture).
#: The face boxes are YuNet's on the full pictures.
_FACES = {
    "astronaut": ("astronaut", (148, 23, 298, 216), (178.0, 63.0, 268.0, 176.0)),
    "cameraman": ("camera", (171, 78, 281, 219), (196.0, 113.0, 256.0, 194.0)),
}
PEOPLE = tuple(_FACES)


@dataclass(frozen=True)
class Walk:
    """One person's face moving in a straight line through a shot (frame numbers within the shot)."""

    person: str  # one of PEOPLE
    start: tuple[float, float]  # face box centre at ``first``, frame pixels
    end: tuple[float, float]  # face box centre at ``last``
    face_px: float  # face box width
    first: int = 0
    last: int | None = None  # None: the shot's last frame


@dataclass(frozen=True)
class Shot:
    """A stretch of frames from one camera position: a background and the faces walking over it."""

    background: str  # a scikit-image picture name ("coffee", "rocket")
    frames: int
    walks: tuple[Walk, ...] = ()


@dataclass(frozen=True)
class FaceTruth:
    """Where a face is in a generated frame."""

    person: str
    shot: int
    box: Box
    covered: float  # share of the face box under a face drawn over it (0..1)


@cache
def _picture(name: str) -> np.ndarray:
    from skimage import data

    img = getattr(data, name)()
    return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB) if img.ndim == 2 else img


@cache
def _sprite(person: str, face_px: int) -> tuple[np.ndarray, np.ndarray, Box]:
    """(RGB cut-out, alpha (h, w) float32, face box in the cut-out) scaled so that the face box is ``face_px``."""
    name, (x0, y0, x1, y1), face = _FACES[person]
    scale = face_px / (face[2] - face[0])
    cut = _picture(name)[y0:y1, x0:x1]
    size = (round(cut.shape[1] * scale), round(cut.shape[0] * scale))
    rgb = cv2.resize(cut, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    alpha = np.zeros(rgb.shape[:2], np.float32)
    h, w = alpha.shape
    cv2.ellipse(alpha, (w // 2, h // 2), (int(w * 0.46), int(h * 0.48)), 0, 0, 360, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), max(1.0, 0.04 * w))
    box = ((face[0] - x0) * scale, (face[1] - y0) * scale, (face[2] - x0) * scale, (face[3] - y0) * scale)
    return rgb, alpha, box


def _place(walk: Walk, k: int, shot_frames: int) -> tuple[int, int, Box] | None:
    """Top-left of the cut-out and the face box in the frame at shot frame ``k``; None when off stage."""
    last = shot_frames - 1 if walk.last is None else walk.last
    if not walk.first <= k <= last:
        return None
    f = (k - walk.first) / max(last - walk.first, 1)
    cx, cy = (walk.start[0] + f * (walk.end[0] - walk.start[0]), walk.start[1] + f * (walk.end[1] - walk.start[1]))
    _, _, (fx0, fy0, fx1, fy1) = _sprite(walk.person, round(walk.face_px))
    left, top = round(cx - (fx0 + fx1) / 2), round(cy - (fy0 + fy1) / 2)
    return left, top, (left + fx0, top + fy0, left + fx1, top + fy1)


def _paste(frame: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, left: int, top: int) -> None:
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = max(0, left), max(0, top), min(w, left + rgb.shape[1]), min(h, top + rgb.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    a = alpha[y0 - top : y1 - top, x0 - left : x1 - left, None]
    src = rgb[y0 - top : y1 - top, x0 - left : x1 - left].astype(np.float32)
    frame[y0:y1, x0:x1] = (a * src + (1 - a) * frame[y0:y1, x0:x1]).astype(frame.dtype)


def _box_mean(image: np.ndarray, box: Box) -> float:
    x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
    region = image[y0 : max(y0 + 1, int(box[3])), x0 : max(x0 + 1, int(box[2]))]
    return float(region.mean()) if region.size else 0.0


def generate_clip(shots: list[Shot], size: tuple[int, int] = (640, 480), fps: float = 25.0, noise: float = 2.0,
                  seed: int = 0) -> Iterator[tuple[Frame, list[FaceTruth]]]:
    """Each frame of the clip (RGB, ``size`` = (width, height), timestamps at ``fps``) with its faces' truth.

    Later walks of a shot are drawn over earlier ones. Sensor noise of sigma ``noise`` comes from eight seeded
    noise planes drawn in a seeded order, so a (shots, size, fps, noise, seed) tuple always gives the same bytes.
    """
    w, h = size
    rng = np.random.default_rng(seed)
    planes = [rng.normal(0, noise, (h, w, 3)).astype(np.float32) for _ in range(8)] if noise > 0 else []
    index = 0
    for s, shot in enumerate(shots):
        background = cv2.resize(_picture(shot.background), size, interpolation=cv2.INTER_AREA)
        for k in range(shot.frames):
            frame = background.copy()
            placed = [(walk, p) for walk in shot.walks if (p := _place(walk, k, shot.frames)) is not None]
            for walk, (left, top, _) in placed:
                rgb, alpha, _ = _sprite(walk.person, round(walk.face_px))
                _paste(frame, rgb, alpha, left, top)
            cover = np.zeros((h, w, 1), np.float32)  # opacity of the faces drawn over the one in hand
            truth: list[FaceTruth] = []
            for walk, (left, top, box) in reversed(placed):
                truth.insert(0, FaceTruth(walk.person, s, box, _box_mean(cover, box)))
                _, alpha, _ = _sprite(walk.person, round(walk.face_px))
                _paste(cover, np.ones((*alpha.shape, 1), np.float32), alpha, left, top)
            if planes:
                frame = np.clip(frame + planes[int(rng.integers(len(planes)))], 0, 255).astype(np.uint8)
            yield Frame(image=frame, source="generated", index=index, timestamp_s=index / fps,
                        meta={"format": "generated"}), truth
            index += 1


def crossing_shots(face_px: float = 90.0, frames: int = 100, cut_frames: int = 50, empty_frames: int = 50
                   ) -> list[Shot]:
    """The tracking test's clip: two faces crossing (the cameraman passing in front of the astronaut, partly
    covering her), a hard cut to another scene where the astronaut walks again, then a stretch with no face."""
    return [
        Shot("coffee", frames, (Walk("astronaut", (90, 170), (550, 170), face_px),
                                Walk("cameraman", (550, 230), (90, 230), face_px * 0.8))),
        Shot("rocket", cut_frames + empty_frames, (Walk("astronaut", (200, 250), (400, 200), face_px,
                                                        last=cut_frames - 1),)),
    ]


@dataclass(frozen=True)
class TrackScore:
    """How well tracks follow the people of a generated clip."""

    faces: int  # faces to find: those covered less than max_covered, plus covered ones a track found
    right: int  # of those, found on the track that holds most of that person's faces in that shot
    false: int  # track faces on no generated face
    main_tracks: dict[tuple[str, int], int]  # (person, shot) -> the track id that holds most of its faces

    @property
    def accuracy(self) -> float:
        """Share of faces assigned to the right track, false faces counted as wrong."""
        return self.right / max(self.faces + self.false, 1)


def score_tracks(tracks, truth: dict[int, list[FaceTruth]], max_covered: float = 0.5) -> TrackScore:
    """Score ``tracks`` (:class:`~forensic_face.vision.track.Track`) against the ``truth`` of each frame index: a
    track's face is a generated face when their boxes overlap by at least 0.3 (IoU), the best overlap first. Each
    (person, shot) has one main track, and a track is main for at most one of them."""
    from forensic_face.vision.track import box_iou

    found: dict[tuple[int, str, int], int] = {}  # (frame, person, shot) -> track id
    false = 0
    for tr in tracks:
        for frame, box in zip(tr.records["frame"], tr.records["box"], strict=True):
            ious = [(box_iou(box, t.box), t) for t in truth.get(int(frame), [])]
            best = max(ious, key=lambda x: x[0], default=(0.0, None))
            key = (int(frame), best[1].person, best[1].shot) if best[1] is not None else None
            if best[0] < 0.3 or key in found:
                false += 1
            else:
                found[key] = tr.track_id
    counts: dict[tuple[tuple[str, int], int], int] = {}
    for (_, person, shot), tid in found.items():
        counts[((person, shot), tid)] = counts.get(((person, shot), tid), 0) + 1
    main: dict[tuple[str, int], int] = {}
    for (key, tid), _ in sorted(counts.items(), key=lambda kv: -kv[1]):
        if key not in main and tid not in main.values():
            main[key] = tid
    faces = sum(1 for f, ts in truth.items() for t in ts if t.covered < max_covered or (f, t.person, t.shot) in found)
    right = sum(1 for (_, person, shot), tid in found.items() if main.get((person, shot)) == tid)
    return TrackScore(faces=faces, right=right, false=false, main_tracks=main)
