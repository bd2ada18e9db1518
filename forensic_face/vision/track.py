"""Follow faces through a clip: detect them, link them into tracks, measure each face, keep the best crops.

    frames ─► shot cut? (1 - correlation of 32x24 grey thumbnails of consecutive frames) ─► end every track
           ─► detect (every frame, or every k-th; on worker threads if asked) ─► match to the live tracks:
              Hungarian assignment over (1 - overlap with the track's predicted box) + (1 - appearance similarity),
              a pair allowed when the boxes overlap or the face lies within a box width of the prediction
           ─► a face box drawn by the analyst seeds a track; a seeded track is followed by template matching
              (normalised cross-correlation) where detection fails, as are all tracks on frames not detected
           ─► per face: a record (frame, time, box, landmarks, method, score, quality figures, weight)

Why Hungarian: two faces crossing are the case that matters, and there a greedy pass that gives the first track
its best face can take the other's; the optimal assignment of a few tracks and faces costs microseconds. The
prediction moves the last face at the velocity of the track's last unhidden faces: a face next to another may be
partly hidden, and its box, look and template are then not trusted. Appearance is the caller's embedding
(``embed``) where faces could be confused, else a cheap descriptor (a 16x16 grey thumbnail and a hue-saturation
histogram). A track without a face for ``max_gap_s`` ends; a shot cut ends them all.

Streaming: the frames are consumed one at a time and none is kept; what grows with the clip is the face records
(:data:`FACE_RECORD`, 122 bytes each) and at most ``best_crops`` small crops per track. The same frames in the same
order give the same tracks.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from typing import Protocol

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from forensic_face.core.progress import Progress
from forensic_face.vision.align import AlignSpec, align_face
from forensic_face.vision.detect import Box, FaceDetection, check_box
from forensic_face.vision.frames import Frame, to_grey
from forensic_face.vision.quality import noise_sigma, pose_from_landmarks, sharpness

log = logging.getLogger(__name__)

#: One face in one frame, as a track stores it (numpy structured record; ``FACE_RECORD.itemsize`` bytes each).
FACE_RECORD = np.dtype([
    ("frame", "<i8"),  # the frame's index in the clip
    ("time_s", "<f8"),  # its timestamp, seconds (NaN when the frame had none)
    ("box", "<f4", (4,)),  # x0, y0, x1, y1, frame pixels
    ("landmarks", "<f4", (5, 2)),  # x, y; NaN when there are none
    ("landmark_kind", "S10"),  # detect.DLIB5 or detect.FIVE_POINT ("" without landmarks)
    ("method", "S12"),  # the detector's method ("yunet", "dlib-hog-x2", ...), "manual" or "followed"
    ("score", "<f4"),  # detector confidence; template correlation when followed; NaN when drawn by the analyst
    ("face_px", "<f4"),  # box width, frame pixels
    ("sharpness", "<f4"),  # variance of the Laplacian of the grey box resampled to QUALITY_PX square
    ("noise_sigma", "<f4"),  # Immerkaer's noise sigma of the grey box as the frame holds it, 0..255
    ("roll_deg", "<f4"),  # in-plane rotation from the landmarks (NaN without)
    ("turn", "<f4"),  # nose offset along the eye line, eye distances, dlib scale: 0 frontal (NaN without)
    ("weight", "<f4"),  # fusion weight given by the caller's ``weigh`` (0: not usable)
])

#: Side of the square the face box is resampled to before its sharpness is measured, so that frames of a face
#: at different sizes compare (and a small face enlarged to it is, rightly, less sharp).
QUALITY_PX = 64
FOLLOWED = "followed"
MANUAL = "manual"


@dataclass(frozen=True)
class FaceQuality:
    """No-reference quality of one tracked face (see :data:`FACE_RECORD` for each figure)."""

    face_px: float
    sharpness: float
    noise_sigma: float
    roll_deg: float
    turn: float
    score: float

    def as_dict(self) -> dict:
        return {k: None if not math.isfinite(v) else round(float(v), 4) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Seed:
    """A face box drawn by the analyst on one frame: it starts a track there, followed where detection fails."""

    frame_index: int
    box: Box


@dataclass(frozen=True)
class TrackerConfig:
    """How faces are linked; defaults measured on the generated clips of tests/vision/test_track.py."""

    detect_every: int = 1  # run the detector on every k-th frame; tracks are followed by template between
    min_iou: float = 0.1  # a face overlapping a track's predicted box less than this is not linked to it,
    max_shift: float = 1.0  # unless its centre is within this many predicted box widths of the predicted centre
    # nor one whose appearance similarity to the track is under this (-1..1); off by default: a half-hidden face
    # looks like no one (its similarity to its own track fell to -0.04 in the crossing test), and the cost alone
    # (below) kept every crossing measured
    min_similarity: float = -1.0
    iou_weight: float = 0.5  # cost = iou_weight * (1 - IoU) + (1 - iou_weight) * (1 - similarity)
    max_gap_s: float = 1.0  # a track without a face for longer than this ends
    # 1 - correlation of consecutive frames' thumbnails above which a shot cut is declared: within a shot it stayed
    # under 0.25 (a face vanishing at once 0.24, a pan of 24 px a frame 0.21, light x0.5 or +40 levels 0.00);
    # between any two of 18 of scikit-image's pictures it was 0.45 or more (153 pairs; research/cut_statistic.py)
    cut_threshold: float = 0.4
    follow_min_corr: float = 0.6  # template correlation under which a followed face counts as lost
    # face crops kept per track (the highest weights), and their longer side at most (larger faces are reduced):
    # at most 4 x 112 x 112 x 3 bytes (147 KiB) a track; a second pass (iter_track_frames) gives every face
    best_crops: int = 4
    crop_max_px: int = 112
    min_faces: int = 3  # tracks with fewer detected faces are dropped as false detections (seeded ones never)
    assumed_fps: float = 25.0  # frame rate assumed for gaps when frames carry no timestamp


@dataclass(frozen=True, eq=False)
class TrackedFace:
    """One face of a track, ready for :func:`~forensic_face.vision.align.align_face` on its frame."""

    frame_index: int
    timestamp_s: float | None
    detection: FaceDetection
    quality: FaceQuality
    weight: float


@dataclass(frozen=True, eq=False)
class FaceCrop:
    """A kept crop of one of a track's best faces: the face box with a margin, and the face in crop pixels."""

    frame_index: int
    timestamp_s: float | None
    image: np.ndarray  # (h, w, 3) uint8 RGB, longer side at most TrackerConfig.crop_max_px
    detection: FaceDetection  # box and landmarks in this crop's pixels
    origin: tuple[float, float]  # where the crop's (0, 0) lies in the frame, frame pixels
    scale: float  # crop pixels per frame pixel
    weight: float


@dataclass(frozen=True, eq=False)
class Track:
    """One person followed through consecutive frames of one shot."""

    track_id: int  # 1, 2, ... in order of appearance
    records: np.ndarray  # (N,) FACE_RECORD, one per frame the face is on, by frame index
    crops: tuple[FaceCrop, ...]  # up to best_crops, highest weight first
    seeded: bool  # started from (or confirmed by) a box drawn by the analyst
    end_reason: str  # "gap", "cut", "lost" (followed face no longer matched), "end of clip"

    @property
    def first_frame(self) -> int:
        return int(self.records["frame"][0])

    @property
    def last_frame(self) -> int:
        return int(self.records["frame"][-1])

    @property
    def weights(self) -> np.ndarray:
        """(N,) float32 fusion weights of the faces."""
        return self.records["weight"]

    def method_counts(self) -> dict[str, int]:
        """How many faces each method gave ("yunet", "followed", "manual", ...)."""
        names, counts = np.unique(self.records["method"], return_counts=True)
        return {n.decode(): int(c) for n, c in zip(names, counts, strict=True)}

    def faces(self) -> list[TrackedFace]:
        """Every face of the track as :class:`TrackedFace`, by frame index."""
        return [tracked_face(r) for r in self.records]

    def as_dict(self, with_faces: bool = True) -> dict:
        """JSON-ready description: span, counts, and (``with_faces``) every face's record."""
        t = self.records["time_s"]
        out = {"track_id": self.track_id, "first_frame": self.first_frame, "last_frame": self.last_frame,
               "start_s": _num(t[0]), "end_s": _num(t[-1]), "faces": len(self.records),
               "methods": self.method_counts(), "seeded": self.seeded, "end_reason": self.end_reason,
               "usable_faces": int(np.count_nonzero(self.weights > 0)),
               "best_frames": [c.frame_index for c in self.crops]}
        if with_faces:
            out["face_records"] = [_record_dict(r) for r in self.records]
        return out


@dataclass(frozen=True, eq=False)
class TrackResult:
    """Every track of a clip and what the tracker saw."""

    tracks: list[Track]  # by first frame
    frames_seen: int
    frames_detected: int  # frames the detector ran on
    cuts: tuple[int, ...]  # frame indices that begin a new shot
    dropped_short: int  # tracks dropped for having fewer than min_faces detected faces
    warnings: tuple[str, ...]
    config: TrackerConfig

    def summary(self) -> str:
        """One line for the analyst: how many tracks in how many frames, or that no face was found."""
        shots = f"{len(self.cuts) + 1} shot{'s' if self.cuts else ''}"
        if not self.tracks and self.dropped_short:
            return (f"no face was followed in the {self.frames_seen} frames read ({shots}): {self.dropped_short} "
                    f"face(s) were found on fewer than {self.config.min_faces} frames each and taken for false "
                    "detections; draw a face box on a frame where the face is visible to follow it")
        if not self.tracks:
            return (f"no face was found in the {self.frames_seen} frames read ({shots}); draw a face box on a frame "
                    "where the face is visible to follow it")
        return f"{len(self.tracks)} face track(s) in {self.frames_seen} frames ({shots})"

    def as_dict(self, with_faces: bool = True) -> dict:
        return {"summary": self.summary(), "frames_seen": self.frames_seen, "frames_detected": self.frames_detected,
                "cuts": list(self.cuts), "dropped_short_tracks": self.dropped_short, "warnings": list(self.warnings),
                "config": asdict(self.config), "tracks": [t.as_dict(with_faces) for t in self.tracks]}


def tracked_face(r: np.void) -> TrackedFace:
    """The :class:`TrackedFace` of one :data:`FACE_RECORD` row."""
    kind = r["landmark_kind"].decode()
    det = FaceDetection(box=tuple(float(v) for v in r["box"]), score=float(r["score"]), method=r["method"].decode(),
                        landmarks=np.array(r["landmarks"]) if kind else None, landmark_kind=kind or "dlib5")
    quality = FaceQuality(*(float(r[k]) for k in ("face_px", "sharpness", "noise_sigma", "roll_deg", "turn", "score")))
    t = float(r["time_s"])
    return TrackedFace(frame_index=int(r["frame"]), timestamp_s=t if math.isfinite(t) else None, detection=det,
                       quality=quality, weight=float(r["weight"]))


def _num(v) -> float | None:
    v = float(v)
    return round(v, 4) if math.isfinite(v) else None


def _record_dict(r: np.void) -> dict:
    kind = r["landmark_kind"].decode()
    return {"frame": int(r["frame"]), "time_s": _num(r["time_s"]), "box": [round(float(v), 2) for v in r["box"]],
            "landmarks": np.round(r["landmarks"].astype(float), 2).tolist() if kind else None,
            "landmark_kind": kind or None, "method": r["method"].decode(), "score": _num(r["score"]),
            "face_px": _num(r["face_px"]), "sharpness": _num(r["sharpness"]), "noise_sigma": _num(r["noise_sigma"]),
            "roll_deg": _num(r["roll_deg"]), "turn": _num(r["turn"]), "weight": _num(r["weight"])}


# -- per-face measures ------------------------------------------------------------------------------------------
def _region(image: np.ndarray, box: Box) -> np.ndarray:
    h, w = image.shape[:2]
    x0, y0 = min(max(0, int(box[0])), w - 1), min(max(0, int(box[1])), h - 1)
    x1, y1 = max(x0 + 1, min(w, int(math.ceil(box[2])))), max(y0 + 1, min(h, int(math.ceil(box[3]))))
    return image[y0:y1, x0:x1]


def measure_face(grey: np.ndarray, det: FaceDetection) -> FaceQuality:
    """Quality figures of the face ``det`` in the grey frame (see :data:`FACE_RECORD`)."""
    region = _region(grey, det.box)
    rh, rw = region.shape
    interp = cv2.INTER_AREA if rw > QUALITY_PX else cv2.INTER_CUBIC
    sharp = sharpness(cv2.resize(region, (QUALITY_PX, QUALITY_PX), interpolation=interp)) if min(rh, rw) >= 3 else 0.0
    roll, turn = pose_from_landmarks(det.landmarks, det.landmark_kind)
    return FaceQuality(face_px=det.width, sharpness=sharp, noise_sigma=noise_sigma(region), roll_deg=roll, turn=turn,
                       score=det.score)


def appearance(image: np.ndarray, box: Box) -> np.ndarray:
    """A cheap unit appearance descriptor (288,) of the face box: a zero-mean 16x16 grey thumbnail and the square
    root of an 8x4 hue-saturation histogram, each weighted 1/sqrt(2); the dot product of two is the mean of the
    thumbnails' correlation and the histograms' Bhattacharyya coefficient."""
    region = _region(image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB), box)
    thumb = cv2.resize(to_grey(region), (16, 16), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    thumb -= thumb.mean()
    thumb /= float(np.linalg.norm(thumb)) or 1.0
    hsv = cv2.cvtColor(cv2.resize(region, (32, 32), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [8, 4], [0, 180, 0, 256]).ravel()
    hist = np.sqrt(hist / max(float(hist.sum()), 1.0))
    return np.concatenate([thumb, hist]).astype(np.float32) / np.sqrt(2.0)


def frame_thumbnail(grey: np.ndarray) -> np.ndarray:
    """The 32x24 float32 grey thumbnail the shot-cut statistic compares."""
    return cv2.resize(grey, (32, 24), interpolation=cv2.INTER_AREA).astype(np.float32)


def frame_change(a: np.ndarray, b: np.ndarray) -> float:
    """Shot-cut statistic of two frame thumbnails: 1 - their correlation (0: same picture, ~1: unrelated); on a
    flat picture (contrast under 2 grey levels) 0 or 1 by whether the mean level moved by 10 or more."""
    sa, sb = float(a.std()), float(b.std())
    if sa < 2.0 or sb < 2.0:
        return float(abs(float(a.mean()) - float(b.mean())) >= 10.0)
    return 1.0 - float(np.mean((a - a.mean()) * (b - b.mean()))) / (sa * sb)


def box_iou(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


# -- the tracker ------------------------------------------------------------------------------------------------
class Detector(Protocol):
    """Anything that finds faces in a frame: :class:`~forensic_face.vision.yunet.YuNetDetector`,
    :class:`~forensic_face.vision.detect.FaceDetector`."""

    def detect(self, image: np.ndarray) -> list[FaceDetection]: ...


#: ``embed(crops)``: (N, D) unit embeddings of N aligned RGB face crops (S, S, 3) uint8.
Embed = Callable[[list[np.ndarray]], np.ndarray]
_CHUNK = 256  # records are stored in blocks of this many (no copying as a track grows)


class _Frame:
    """What the tracker knows of the frame in hand: its faces, their descriptors, embeddings on demand."""

    def __init__(self, frame: Frame, t: float, dets: list[FaceDetection], embed: Embed | None,
                 spec: AlignSpec | None) -> None:
        self.frame, self.t, self.dets = frame, t, dets
        self.grey = to_grey(frame.image)
        self.looks = [appearance(frame.image, d.box) for d in dets]
        self._embed, self._spec = embed, spec
        self._embeddings: np.ndarray | None = None

    def embeddings(self, compute: bool = True) -> np.ndarray | None:
        """(faces, dim) embeddings of the detections, computed once in one call (when ``compute``); None without
        ``embed``, or when not computed yet and not ``compute``."""
        if self._embeddings is None and compute and self._embed is not None and self.dets:
            crops = [align_face(self.grey, d, self._spec).image for d in self.dets]  # grey first, as face_at
            self._embeddings = np.asarray(self._embed(crops), np.float32).reshape(len(crops), -1)
        return self._embeddings


class _Live:
    """A track being followed: its records so far, motion, appearance, template and best crops."""

    def __init__(self, order: int, seeded: bool) -> None:
        self.order, self.seeded = order, seeded
        self._chunks: list[np.ndarray] = []
        self.n = self.detected = 0
        self.box = np.zeros(4)
        self.t = 0.0
        self.clean: deque[tuple[float, np.ndarray]] = deque(maxlen=12)  # (time, box) of its last unhidden faces
        self.look: np.ndarray | None = None
        self.embedding: np.ndarray | None = None
        self.template: np.ndarray | None = None  # grey patch of the last face found (not followed)
        self.crops: list[tuple[float, int, FaceCrop]] = []  # min-heap on (weight, -frame)

    @property
    def velocity(self) -> np.ndarray:
        """(2,) px/s of the box centre over the last unhidden faces (0 with fewer than two)."""
        if len(self.clean) < 2 or self.clean[-1][0] <= self.clean[0][0]:
            return np.zeros(2)
        (t0, b0), (t1, b1) = self.clean[0], self.clean[-1]
        return ((b1[:2] + b1[2:]) - (b0[:2] + b0[2:])) / 2 / (t1 - t0)

    def predicted(self, t: float) -> np.ndarray:
        """The box where the face should be at time ``t``: the last face's centre moved at :attr:`velocity`, the
        size of the last unhidden face (a partly hidden face's box is smaller than the face)."""
        centre = (self.box[:2] + self.box[2:]) / 2 + self.velocity * (t - self.t)
        ref = self.clean[-1][1] if self.clean else self.box
        half = (ref[2:] - ref[:2]) / 2
        return np.concatenate([centre - half, centre + half])

    def add(self, row: tuple, box: Box, t: float, hidden: bool) -> None:
        """Append a record: the face is now at ``box`` at time ``t`` (``hidden``: perhaps partly, by another)."""
        if self.n % _CHUNK == 0:
            self._chunks.append(np.zeros(_CHUNK, FACE_RECORD))
        self._chunks[-1][self.n % _CHUNK] = row
        self.n += 1
        self.box, self.t = np.asarray(box, np.float64), t
        if not hidden:
            self.clean.append((t, self.box))

    def records(self) -> np.ndarray:
        return np.concatenate(self._chunks)[: self.n] if self._chunks else np.zeros(0, FACE_RECORD)


class _Tracker:
    def __init__(self, weigh: Callable[[FaceQuality], float], embed: Embed | None, embed_spec: AlignSpec | None,
                 seeds: Sequence[Seed], config: TrackerConfig) -> None:
        self.weigh, self.cfg = weigh, config
        self.embed, self.embed_spec = embed, embed_spec
        self.seeds = sorted(seeds, key=lambda s: s.frame_index)
        self.live: list[_Live] = []
        self.done: list[tuple[int, Track]] = []  # (creation order, track numbered 0 until finish)
        self.order = itertools.count()
        self.prev_thumb: np.ndarray | None = None
        self.cuts: list[int] = []
        self.warnings: list[str] = []
        self.frames_seen = self.detected_frames = self.dropped = 0

    def step(self, frame: Frame, found: list[FaceDetection] | None) -> None:
        """Take one frame and the faces the detector ``found`` on it (None: not run on this frame): cut check,
        matching, seeds, births, following."""
        cfg = self.cfg
        t = frame.timestamp_s if frame.timestamp_s is not None else frame.index / cfg.assumed_fps
        detect_now = found is not None
        dets = found or []
        self.frames_seen += 1
        self.detected_frames += detect_now
        ctx = _Frame(frame, t, dets, self.embed, self.embed_spec)
        thumb = frame_thumbnail(ctx.grey)
        if self.prev_thumb is not None and frame_change(self.prev_thumb, thumb) > cfg.cut_threshold:
            self.cuts.append(frame.index)
            self._end_all("cut")
        self.prev_thumb = thumb
        for live in [x for x in self.live if t - x.t > cfg.max_gap_s]:
            self._end(live, "gap")
        pairs = self._match(ctx)
        for live, j in pairs:
            self._observe(live, ctx, dets[j], j)
        handled = {id(live) for live, _ in pairs}  # tracks with a face on this frame
        taken = {j for _, j in pairs}  # detections given to a track
        handled |= self._apply_seeds(ctx, pairs, taken)
        for j, det in enumerate(dets):
            if j not in taken:
                self._observe(self._new(seeded=False), ctx, det, j)
                handled.add(id(self.live[-1]))
        for live in self.live:
            if id(live) not in handled and (live.seeded or not detect_now):
                self._follow(live, ctx)

    # -- linking -------------------------------------------------------------------------------------------
    def _match(self, ctx: _Frame) -> list[tuple[_Live, int]]:
        """Hungarian assignment of the live tracks to this frame's detections, both gates passed."""
        if not self.live or not ctx.dets:
            return []
        cfg = self.cfg
        iou = np.array([[box_iou(live.predicted(ctx.t), d.box) for d in ctx.dets] for live in self.live])
        sim = self._similarity(ctx)
        near = np.array([[_shift(live.predicted(ctx.t), d.box) <= cfg.max_shift for d in ctx.dets]
                         for live in self.live])
        ok = ((iou >= cfg.min_iou) | near) & (sim >= cfg.min_similarity)
        cost = np.where(ok, cfg.iou_weight * (1 - iou) + (1 - cfg.iou_weight) * (1 - sim), 1e6)
        rows, cols = linear_sum_assignment(cost)
        return [(self.live[r], int(c)) for r, c in zip(rows, cols, strict=True) if ok[r, c]]

    def _similarity(self, ctx: _Frame) -> np.ndarray:
        """(tracks, detections) appearance similarity: embedding cosine where the caller embeds and the frame is
        ambiguous (two or more tracks or faces), else the cheap descriptor's."""
        looks = np.stack(ctx.looks)
        sim = np.stack([looks @ live.look if live.look is not None else np.ones(len(looks)) for live in self.live])
        if len(self.live) > 1 or len(ctx.dets) > 1:
            emb = ctx.embeddings()
            for r, live in enumerate(self.live):
                if emb is not None and live.embedding is not None:
                    sim[r] = emb @ live.embedding
        return sim

    def _apply_seeds(self, ctx: _Frame, pairs: list[tuple[_Live, int]], taken: set[int]) -> set[int]:
        """Start (or confirm) a track at each analyst's box due at this frame; the ids of the tracks it touched."""
        touched: set[int] = set()
        while self.seeds and self.seeds[0].frame_index <= ctx.frame.index:
            seed = self.seeds.pop(0)
            if seed.frame_index < ctx.frame.index:
                self.warnings.append(f"the face box drawn on frame {seed.frame_index} was applied to frame "
                                     f"{ctx.frame.index}, the first frame read at or after it")
            h, w = ctx.grey.shape
            box = check_box(seed.box, w, h)
            ious = [box_iou(box, d.box) for d in ctx.dets]
            j = int(np.argmax(ious)) if ious and max(ious) >= 0.3 else None
            owner = next((live for live, k in pairs if k == j), None) if j is not None else None
            if owner is None:
                owner = self._new(seeded=True)
                det = ctx.dets[j] if j is not None else FaceDetection(box=box, score=float("nan"), method=MANUAL)
                self._observe(owner, ctx, det, j)
                taken.update([j] if j is not None else [])
            owner.seeded = True
            touched.add(id(owner))
        return touched

    def _new(self, seeded: bool) -> _Live:
        live = _Live(next(self.order), seeded)
        self.live.append(live)
        return live

    def _observe(self, live: _Live, ctx: _Frame, det: FaceDetection, j: int | None) -> None:
        """Record ``det`` on ``live``: quality, weight, motion; appearance, template and crop when it was found."""
        q = measure_face(ctx.grey, det)
        weight = float(self.weigh(q))
        marks = det.landmarks if det.landmarks is not None else np.full((5, 2), np.nan, np.float32)
        kind = det.landmark_kind if det.landmarks is not None else ""
        row = (ctx.frame.index, ctx.frame.timestamp_s if ctx.frame.timestamp_s is not None else np.nan, det.box,
               marks, kind.encode(), det.method.encode(), q.score, q.face_px, q.sharpness, q.noise_sigma, q.roll_deg,
               q.turn, weight)
        # A face near another (their boxes, grown by a quarter on each side, overlap: a head and shoulders reach
        # beyond the face box) may be partly hidden: its box, look and template are not its own, so they do not
        # change the track's motion, appearance or template.
        others = [d.box for d in ctx.dets if d is not det] + [x.predicted(ctx.t) for x in self.live if x is not live]
        hidden = any(box_iou(_grown(det.box), _grown(b)) > 0 for b in others)
        live.add(row, det.box, ctx.t, hidden)
        if det.method != FOLLOWED:
            live.detected += det.method != MANUAL
        if det.method != FOLLOWED and (not hidden or live.look is None):
            look = ctx.looks[j] if j is not None else appearance(ctx.frame.image, det.box)
            live.look = look if live.look is None else _unit(0.8 * live.look + 0.2 * look)
            live.template = _region(ctx.grey, det.box).copy()
            emb = ctx.embeddings(compute=live.embedding is None) if j is not None else None
            if emb is not None:
                live.embedding = emb[j] if live.embedding is None else _unit(0.8 * live.embedding + 0.2 * emb[j])
        self._offer_crop(live, ctx, det, weight)

    def _follow(self, live: _Live, ctx: _Frame) -> None:
        """Find ``live``'s last face by template matching near its predicted box; record it if it correlates."""
        tpl = live.template
        if tpl is None or float(tpl.std()) < 1.0:
            return
        th, tw = tpl.shape
        h, w = ctx.grey.shape
        px0, py0, px1, py1 = live.predicted(ctx.t)
        x0, y0 = max(0, int(px0 - 0.75 * tw)), max(0, int(py0 - 0.75 * th))
        x1, y1 = min(w, int(px1 + 0.75 * tw)), min(h, int(py1 + 0.75 * th))
        if x1 - x0 < tw or y1 - y0 < th:
            return
        res = cv2.matchTemplate(ctx.grey[y0:y1, x0:x1], tpl, cv2.TM_CCOEFF_NORMED)
        _, corr, _, (lx, ly) = cv2.minMaxLoc(res)
        if math.isfinite(corr) and corr >= self.cfg.follow_min_corr:
            box = (float(x0 + lx), float(y0 + ly), float(x0 + lx + tw), float(y0 + ly + th))
            self._observe(live, ctx, FaceDetection(box=box, score=float(corr), method=FOLLOWED), None)

    def _offer_crop(self, live: _Live, ctx: _Frame, det: FaceDetection, weight: float) -> None:
        key = (weight, -ctx.frame.index)
        if len(live.crops) >= self.cfg.best_crops and key <= live.crops[0][:2]:
            return
        item = (*key, _crop(ctx.frame, det, weight, self.cfg.crop_max_px))
        if len(live.crops) < self.cfg.best_crops:
            heapq.heappush(live.crops, item)
        else:
            heapq.heapreplace(live.crops, item)

    # -- ending --------------------------------------------------------------------------------------------
    def _end(self, live: _Live, reason: str) -> None:
        self.live.remove(live)
        if live.detected < self.cfg.min_faces and not live.seeded:
            self.dropped += 1
            return
        crops = tuple(c for _, _, c in sorted(live.crops, key=lambda c: c[:2], reverse=True))
        self.done.append((live.order, Track(track_id=0, records=live.records(), crops=crops, seeded=live.seeded,
                                            end_reason=reason)))

    def _end_all(self, reason: str) -> None:
        for live in list(self.live):
            self._end(live, reason)

    def finish(self) -> TrackResult:
        """End every live track; the tracks numbered by first frame (then by when they started)."""
        self._end_all("end of clip")
        self.warnings += [f"the face box drawn on frame {s.frame_index} was not used: the clip ended before it"
                          for s in self.seeds]
        self.done.sort(key=lambda d: (d[1].first_frame, d[0]))
        tracks = [replace(track, track_id=k + 1) for k, (_, track) in enumerate(self.done)]
        return TrackResult(tracks=tracks, frames_seen=self.frames_seen, frames_detected=self.detected_frames,
                           cuts=tuple(self.cuts), dropped_short=self.dropped, warnings=tuple(self.warnings),
                           config=self.cfg)


def _grown(box) -> tuple[float, float, float, float]:
    """``box`` grown by a quarter of its size on each side."""
    mw, mh = 0.25 * (box[2] - box[0]), 0.25 * (box[3] - box[1])
    return box[0] - mw, box[1] - mh, box[2] + mw, box[3] + mh


def _shift(pred: np.ndarray, box: Box) -> float:
    """Distance of ``box``'s centre from the predicted box's, in predicted box widths."""
    d = (np.asarray(box[:2]) + np.asarray(box[2:]) - pred[:2] - pred[2:]) / 2
    return float(np.hypot(*d)) / max(float(pred[2] - pred[0]), 1.0)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / (float(np.linalg.norm(v)) or 1.0)


def _shifted(det: FaceDetection, dx: float, dy: float, scale: float) -> FaceDetection:
    """``det`` moved by (-dx, -dy) and scaled by ``scale``: into the pixels of a crop whose origin is (dx, dy)."""
    x0, y0, x1, y1 = det.box
    box = ((x0 - dx) * scale, (y0 - dy) * scale, (x1 - dx) * scale, (y1 - dy) * scale)
    marks = None if det.landmarks is None else ((det.landmarks - np.float32([dx, dy])) * scale).astype(np.float32)
    return replace(det, box=box, landmarks=marks)


def _crop(frame: Frame, det: FaceDetection, weight: float, max_px: int) -> FaceCrop:
    """The face box with a quarter of its size as margin on each side, reduced to ``max_px`` at most."""
    h, w = frame.image.shape[:2]
    x0, y0, x1, y1 = det.box
    mw, mh = 0.25 * (x1 - x0), 0.25 * (y1 - y0)
    cx0, cy0 = max(0, int(x0 - mw)), max(0, int(y0 - mh))
    cx1, cy1 = min(w, max(cx0 + 1, int(math.ceil(x1 + mw)))), min(h, max(cy0 + 1, int(math.ceil(y1 + mh))))
    region = frame.image[cy0:cy1, cx0:cx1]
    scale = min(1.0, max_px / max(region.shape[:2]))
    image = region.copy() if scale == 1.0 else cv2.resize(
        region, (max(1, round(region.shape[1] * scale)), max(1, round(region.shape[0] * scale))),
        interpolation=cv2.INTER_AREA)
    return FaceCrop(frame_index=frame.index, timestamp_s=frame.timestamp_s, image=image,
                    detection=_shifted(det, cx0, cy0, scale), origin=(float(cx0), float(cy0)), scale=scale,
                    weight=weight)


def track_faces(frames: Iterable[Frame], detector: Detector, *, weigh: Callable[[FaceQuality], float],
                embed: Embed | None = None, embed_spec: AlignSpec | None = None, seeds: Sequence[Seed] = (),
                config: TrackerConfig | None = None, workers: int = 1, total_frames: int | None = None,
                progress: Progress | None = None) -> TrackResult:
    """Follow every face through ``frames`` (any iterable of :class:`Frame`, consumed once, in order).

    ``weigh`` gives each face its fusion weight from its :class:`FaceQuality`
    (:func:`forensic_face.engine.fusion.frame_weight`); the best crops of a track are those it weighs most.
    ``embed`` (with the ``embed_spec`` its crops are aligned to) makes appearance an embedding cosine where faces
    could be confused; ``seeds`` are the analyst's boxes. With ``workers`` > 1 the detector runs on that many
    frames at once (on threads; at most 2 x ``workers`` frames are held), the tracking stays in frame order.
    ``progress`` gets one update per frame (of ``total_frames`` when known) and cancels.
    """
    if embed is not None and embed_spec is None:
        raise ValueError("embed needs the embed_spec its crops are aligned to")
    cfg = config or TrackerConfig()
    tracker = _Tracker(weigh, embed, embed_spec, seeds, cfg)
    for n, (frame, found) in enumerate(_detected(frames, detector, cfg.detect_every, workers)):
        if progress is not None:
            if total_frames:
                progress.update(min(n, total_frames), total_frames, "following faces")
            elif n % 100 == 0:
                progress.update(0, 0, f"following faces: frame {n}")
        tracker.step(frame, found)
    result = tracker.finish()
    if progress is not None:
        progress.update(1, 1, result.summary())
    log.info("%s", result.summary())
    return result


def _detected(frames: Iterable[Frame], detector: Detector, every: int,
              workers: int) -> Iterator[tuple[Frame, list[FaceDetection] | None]]:
    """Each frame with the detector's faces on every ``every``-th (None on the others), in order; with ``workers``
    > 1 detected on a thread pool, up to 2 x ``workers`` frames ahead."""
    if workers <= 1:
        for k, frame in enumerate(frames):
            yield frame, detector.detect(frame.image) if k % every == 0 else None
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="detect") as pool:
        window: deque[tuple[Frame, Future | None]] = deque()
        for k, frame in enumerate(frames):
            window.append((frame, pool.submit(detector.detect, frame.image) if k % every == 0 else None))
            if len(window) > 2 * workers:
                done, job = window.popleft()
                yield done, None if job is None else job.result()
        while window:
            done, job = window.popleft()
            yield done, None if job is None else job.result()


def iter_track_frames(frames: Iterable[Frame], track: Track) -> Iterator[tuple[Frame, TrackedFace]]:
    """The frames of ``frames`` that ``track`` has a face on, each with that face; stops after its last frame.

    For a second pass over the clip (align, reconstruct, embed the track's faces) without keeping frames."""
    rows = {int(f): i for i, f in enumerate(track.records["frame"])}
    for frame in frames:
        if frame.index > track.last_frame:
            return
        i = rows.get(frame.index)
        if i is not None:
            yield frame, tracked_face(track.records[i])


def read_ahead(frames: Iterable[Frame], depth: int = 4) -> Iterator[Frame]:
    """``frames`` decoded on a second thread, at most ``depth`` ahead (decoding overlaps detection on another core).

    The frames come in the same order; an error in the reader is raised here; closing this iterator (or an error
    here) stops the reader and closes ``frames``."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def reader() -> None:
        it = iter(frames)
        try:
            for frame in it:
                if not put(frame):
                    return
            put(end)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, who raises it
            put(_Failed(exc))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=reader, name="frame-reader", daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not end:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


@dataclass(frozen=True)
class _Failed:
    error: BaseException
