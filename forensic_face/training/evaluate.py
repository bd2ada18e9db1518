"""Calibration on held-out people and the evaluation of DESIGN.md on identity-disjoint pairs.

Probe pipeline, as the product runs it: the probe frame (second image of a pair) is degraded at
the level (DESIGN.md's ``clean``, ``mild``, ``severe``; noise seeded by the pair's index); the face
detector runs on the degraded frame; when it finds nothing the LFW centre box stands in for a box
drawn by the analyst (counted and reported); the face is aligned from that detection and
reconstructed (with the person's synthetic voice, or without audio) and embedded. The gallery
image stays clean. The references see the same detections: dlib's ResNet recogniser, and SFace as published
(OpenCV Zoo's file, not tuned) on the probe in the five-point 112 px crop the product's recogniser takes.

Reconstruction quality (PSNR/SSIM against the clean face) is measured on crops aligned with the
clean frame's landmarks, so that it measures the autoencoder, not the detector; "bicubic" is the
degraded frame itself (the levels upscale back to full size bicubically) in the same crop.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from forensic_face.core.progress import Progress
from forensic_face.engine.probe import rec_spec
from forensic_face.models.bundle import mean_weights, probe_share
from forensic_face.models.calibration import (
    DEFAULT_FPIR,
    TAIL_FMR,
    MatchCalibration,
    fit_impostor_tail,
    fit_logistic,
    fit_open_set_table,
    fit_temperature,
    fit_temperature_q,
    sharpness_feature,
)
from forensic_face.paths import cache_dir
from forensic_face.training.chunked import parallel_map
from forensic_face.training.dataset import AUDIO_POINTS, clean_matrix, prepare_audio, voice_clips
from forensic_face.training.lfw import FolderIndex, Pair, _centre_box, dlib_descriptor, worker_models
from forensic_face.training.metrics import (
    auc_difference,
    mcnemar,
    mean_difference,
    probability_report,
    psnr,
    rate_report,
    roc_auc,
    roc_curve,
    ssim,
    verification_report,
)
from forensic_face.vision.align import AlignSpec, align_face, warp_to_crop
from forensic_face.vision.degrade import EVAL_LEVELS, SINGLE_FACTOR_LEVELS, degrade
from forensic_face.vision.detect import FaceDetection
from forensic_face.vision.quality import sharpness

log = logging.getLogger(__name__)

#: The levels whose calibration searches set the open-set (gallery lead) thresholds.
OPEN_SET_LEVELS = EVAL_LEVELS + SINGLE_FACTOR_LEVELS
DLIB_THRESHOLD = 0.6  # dlib's documented same-person distance
#: OpenCV Zoo's same-person cosine for SFace (``_threshold_cosine`` of its ``sface.py`` demo).
SFACE_THRESHOLD = 0.363


@dataclass(frozen=True)
class Reference:
    """A published recogniser measured beside the product in the same run: SFace as its authors ship it.
    ``net`` takes (B, 3, 112, 112) RGB 0..255 faces on the five-point template; same person at cosine
    >= ``threshold`` (its publisher's)."""

    net: object  # forensic_face.models.sface.SFaceNet, in eval mode
    name: str
    threshold: float
    source: str  # the file and its SHA-256

    def embed(self, crops: np.ndarray, batch: int = 64) -> np.ndarray:
        """Unit embeddings of (n, 112, 112) grey uint8 crops (the grey in each channel), float32, no mirror."""
        import torch

        from forensic_face.training.distil import to_rgb255

        out = []
        with torch.inference_mode():
            for i in range(0, len(crops), batch):
                out.append(torch.nn.functional.normalize(self.net(to_rgb255(crops[i:i + batch])), dim=1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 128), np.float32)


@dataclass
class _ReferenceRun:
    """A :class:`Reference`'s gallery embeddings for the pairs (``pairs``) and for the searches (``search``)."""

    ref: Reference
    pairs: np.ndarray
    search: np.ndarray

    @classmethod
    def of(cls, ref: Reference, index: FolderIndex, cache: dict, pair_paths: list[str],
           search_paths: list[str]) -> _ReferenceRun:
        return cls(ref, ref.embed(gallery_crops(index, cache, pair_paths, 112, "arcface")),
                   ref.embed(gallery_crops(index, cache, search_paths, 112, "arcface")))


def published_sface() -> tuple[Reference | None, str | None]:
    """SFace as its authors ship it (OpenCV Zoo's ONNX file in the shared weights folder, checked against its
    recorded SHA-256), for measuring beside the product; or None and why not. Never part of the product."""
    from forensic_face.core.errors import ForensicFaceError
    from forensic_face.models.sface import SFaceNet
    from forensic_face.training.sface_onnx import ONNX_SHA256, convert, default_onnx_path

    try:
        path = default_onnx_path()
        if not path.is_file():
            return None, f"{path} not found"
        net = SFaceNet()
        net.load_state_dict(convert(path))
    except ForensicFaceError as exc:
        return None, str(exc)
    except ImportError as exc:  # onnx is a development dependency
        return None, f"the ONNX file cannot be read here ({exc}); install the dev extras"
    except ValueError as exc:  # another file than the recorded one
        return None, str(exc)
    return Reference(net.eval(), "SFace as published", SFACE_THRESHOLD,
                     f"{path.name} (OpenCV Zoo), SHA-256 {ONNX_SHA256}"), None


def reference_fits(engine) -> str | None:
    """Why SFace as published cannot be measured on ``engine``'s probes (None: it can): it needs the probe in the
    112 px five-point crop, which the evaluation makes only for a recogniser that takes that crop."""
    if (engine.rec_size, engine.rec_alignment) != (112, "arcface"):
        return (f"the bundle's recogniser takes a {engine.rec_size} px {engine.rec_alignment} crop, not SFace's "
                f"112 px five-point crop")
    return None


@dataclass
class Probes:
    """Per pair at one level: aligned probe crops and what the detector did."""

    level: str
    crop: np.ndarray  # (n, S, S) uint8, aligned from the detection on the degraded frame
    crop_clean_geom: np.ndarray  # (n, S, S) uint8, the degraded frame in the clean alignment
    face_px: np.ndarray  # (n,) face box width in frame pixels
    found: np.ndarray  # (n,) bool: the detector found the face (else the centre box was used)
    method: np.ndarray  # (n,) str
    dlib: np.ndarray  # (n, 128) dlib descriptors of the probe (NaN where no landmarks)
    rec_crop: np.ndarray  # (n, R, R) uint8, the recogniser's own crop from the same detection (``crop`` if shared)
    rec_matrix: np.ndarray  # (n, 2, 3) float64: ``crop`` coordinates -> ``rec_crop`` coordinates


def crop_to_crop(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(2, 3): coordinates of the crop of frame -> crop matrix ``src`` to those of ``dst``'s crop."""
    return (np.vstack([dst, [0, 0, 1]]) @ np.vstack([cv2.invertAffineTransform(src), [0, 0, 1]]))[:2]


def _probe_chunk(job: tuple) -> tuple:
    root, items, level, size, rec_spec = job
    detector, rec = worker_models()
    spec = AlignSpec(size=size)
    out = []
    for rel, seed, box, marks in items:
        grey = cv2.imread(str(Path(root) / rel), cv2.IMREAD_GRAYSCALE)
        frame = grey if level == "clean" else degrade(grey, level, seed=seed)
        faces = detector.detect(frame)
        if faces:
            h, w = frame.shape
            det = min(faces, key=lambda f: np.hypot((f.box[0] + f.box[2]) / 2 - w / 2,
                                                    (f.box[1] + f.box[3]) / 2 - h / 2))
            found = True
        else:
            det = detector.from_box(frame, _centre_box(frame.shape))
            found = False
        aligned = align_face(frame, det, spec)
        rec_crop, rec_matrix = aligned.image, np.eye(3)[:2]
        if rec_spec is not None:  # the recogniser's own crop of the same detection
            rec_aligned = align_face(frame, det, rec_spec)
            rec_crop, rec_matrix = rec_aligned.image, crop_to_crop(aligned.matrix, rec_aligned.matrix)
        geom = warp_to_crop(frame, clean_matrix(box, marks, spec), size)
        desc = np.full(128, np.nan, np.float32)
        if det.landmarks is not None:
            desc = dlib_descriptor(rec, frame, det.box, det.landmarks)
        out.append((aligned.image, geom, det.width, found, det.method, desc, rec_crop, rec_matrix))
    return out


def probe_set(index: FolderIndex, cache: dict, pairs: list[Pair], level: str, size: int, tag: str,
              workers: int = 2, progress: Progress | None = None, rec: AlignSpec | None = None) -> Probes:
    """Run the probe pipeline on the second image of every pair (cached on disk by content); ``rec``: the
    recogniser's own crop when it takes another than the autoencoder's (:func:`forensic_face.engine.probe.rec_spec`)."""
    rec_tag = "" if rec is None else f"-r{rec.size}{rec.mode}"
    path = cache_dir() / f"probes-{tag}-{level}-s{size}{rec_tag}-{index.fingerprint()}-{len(pairs)}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            rec_crop = z["rec_crop"] if rec is not None else z["crop"]
            rec_matrix = z["rec_matrix"] if rec is not None else np.tile(np.eye(3)[:2], (len(z["crop"]), 1, 1))
            return Probes(level, z["crop"], z["geom"], z["face_px"], z["found"], z["method"], z["dlib"], rec_crop,
                          rec_matrix)
    row = {p: i for i, p in enumerate(index.paths)}
    items = [(p.b, k, cache["boxes"][row[p.b]], cache["landmarks"][row[p.b]]) for k, p in enumerate(pairs)]
    chunks = [items[i:i + 25] for i in range(0, len(items), 25)]
    parts = parallel_map(_probe_chunk, [(str(index.root), c, level, size, rec) for c in chunks], workers, progress,
                         len(items), f"{tag} probes, {level}", sizes=[len(c) for c in chunks])
    flat = [r for part in parts for r in part]
    probes = Probes(level, np.stack([r[0] for r in flat]), np.stack([r[1] for r in flat]),
                    np.array([r[2] for r in flat], np.float32), np.array([r[3] for r in flat]),
                    np.array([r[4] for r in flat]), np.stack([r[5] for r in flat]), np.stack([r[6] for r in flat]),
                    np.stack([r[7] for r in flat]))
    tmp = path.with_suffix(".tmp.npz")
    extra = {} if rec is None else {"rec_crop": probes.rec_crop, "rec_matrix": probes.rec_matrix}
    np.savez(tmp, crop=probes.crop, geom=probes.crop_clean_geom, face_px=probes.face_px, found=probes.found,
             method=probes.method, dlib=probes.dlib, **extra)
    tmp.replace(path)
    return probes


def engine_probes(engine, index: FolderIndex, cache: dict, pairs: list[Pair], level: str, tag: str,
                  workers: int = 2, progress: Progress | None = None) -> Probes:
    """:func:`probe_set` in the crops ``engine``'s networks take."""
    return probe_set(index, cache, pairs, level, engine.size, tag, workers, progress, rec_spec(engine))


def gallery_crops(index: FolderIndex, cache: dict, paths: list[str], size: int, mode: str = "eyes",
                  frame: Callable[[int, np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Clean aligned crops of gallery images (aligned with the clean frame's landmarks: the eyes, or the five
    points of the ``arcface`` template); ``frame(k, grey)``: the frame cropped instead of the ``k``-th image as it
    is (a degraded copy, cropped with the clean alignment)."""
    row = {p: i for i, p in enumerate(index.paths)}
    spec = AlignSpec(size=size, mode=mode)
    out = np.zeros((len(paths), size, size), np.uint8)
    for k, p in enumerate(paths):
        i = row[p]
        grey = cv2.imread(str(index.root / p), cv2.IMREAD_GRAYSCALE)
        if frame is not None:
            grey = frame(k, grey)
        if mode == "eyes":
            out[k] = warp_to_crop(grey, clean_matrix(cache["boxes"][i], cache["landmarks"][i], spec), size)
        else:
            marks = cache["landmarks"][i]
            det = FaceDetection(box=tuple(float(v) for v in cache["boxes"][i]), score=1.0, method="cache",
                                landmarks=marks.astype(np.float32) if np.any(marks) else None)
            out[k] = align_face(grey, det, spec).image
    return out


def gallery_embeddings(engine, index: FolderIndex, cache: dict, paths: list[str]) -> np.ndarray:
    """The embeddings searched with (``engine.embed_searched``) of the clean gallery images at ``paths``: in the
    recogniser's crop, and the autoencoder's for a companion."""
    found = gallery_crops(index, cache, paths, engine.rec_size, engine.rec_alignment)
    if engine.companion is None:
        return engine.embed(found)
    return engine.embed_searched(found, gallery_crops(index, cache, paths, engine.size, engine.alignment))


def in_rec_crop(engine, images: np.ndarray, probes: Probes) -> np.ndarray:
    """Images in the autoencoder's crop (the probes' reconstructions) carried into the recogniser's crop (the same
    images when both networks take one crop): what recognising a reconstruction means for a recogniser of its
    own crop."""
    if engine.same_crop:
        return images
    return np.stack([cv2.warpAffine(im, m, (engine.rec_size, engine.rec_size), flags=cv2.INTER_CUBIC,
                                    borderMode=cv2.BORDER_REPLICATE)
                     for im, m in zip(images, probes.rec_matrix, strict=True)])


def product_embeddings(engine, probes: Probes, rows=None) -> np.ndarray:
    """The embeddings the product searches with for ``probes`` (``rows`` of them), no audio: of the faces as found
    in the recogniser's crop when it embeds its input, else of their reconstructions; joined to the companion's,
    read at each probe's sharpness, where the bundle has one."""
    sel = slice(None) if rows is None else rows
    crops = probes.crop[sel]
    return engine.embed_searched(probes.rec_crop[sel], engine.reconstruct(crops) if engine.searches_reconstruction
                                 else crops, sharpness=np.array([sharpness(c) for c in crops]))


def probe_audio(index: FolderIndex, pairs: list[Pair], workers: int = 2,
                progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Audio vector of each probe's person (last voice clip, middle point) and whether there is one."""
    people = sorted({p.b.split("/")[0] for p in pairs})
    clips = voice_clips(index, people)
    last = {}
    for person, path in clips:
        last[person] = path  # sorted: the last clip (v02 where there are two)
    chosen = [(person, last[person]) for person in people if person in last]
    vecs, owner, _ = prepare_audio(chosen, people, workers=workers, progress=progress)
    mid = AUDIO_POINTS.index(0.5)
    by_person = {people[o]: vecs[k, mid].astype(np.float32) for k, o in enumerate(owner)}
    dim = vecs.shape[2] if vecs.size else 715
    audio = np.zeros((len(pairs), dim), np.float32)
    present = np.zeros(len(pairs), bool)
    for k, p in enumerate(pairs):
        v = by_person.get(p.b.split("/")[0])
        if v is not None:
            audio[k], present[k] = v, True
    return audio, present


def score_pairs(engine, gallery_emb: np.ndarray, probes: Probes, audio: np.ndarray | None,
                present: np.ndarray | None, degraded_emb: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Cosine similarities of each pair: probe reconstructed (with the given audio) and probe as is, and
    ``product``: the one the product searches with (``engine.embeds``), with its embeddings (``product_emb``).
    ``degraded_emb``: the embeddings of the probes as they are, when already computed (they do not depend on
    the audio)."""
    if audio is not None:
        recon = np.empty_like(probes.crop)
        has = present if present is not None else np.ones(len(audio), bool)
        if has.any():
            recon[has] = engine.reconstruct(probes.crop[has], audio[has])
        if (~has).any():
            recon[~has] = engine.reconstruct(probes.crop[~has], None)
    else:
        recon = engine.reconstruct(probes.crop, None)
    if engine.companion is not None:  # the joined embeddings, the companion given the reconstruction or not
        main = None if engine.embeds != "input" else (
            degraded_emb if degraded_emb is not None else engine.embed(probes.rec_crop))
        sharp = probe_sharpness(probes)
        e_rec = engine.embed_searched(probes.rec_crop, recon, main, sharp)
        e_deg = engine.embed_searched(probes.rec_crop, probes.crop, main, sharp)
        e_prod = e_rec
    else:
        e_rec = engine.embed(in_rec_crop(engine, recon, probes))
        e_deg = engine.embed(probes.rec_crop) if degraded_emb is None else degraded_emb
        e_prod = e_deg if engine.embeds == "input" else e_rec
    return {"recon": (gallery_emb * e_rec).sum(1), "degraded": (gallery_emb * e_deg).sum(1), "recon_img": recon,
            "product": (gallery_emb * e_prod).sum(1), "product_emb": e_prod, "degraded_emb": e_deg}


def product_key(engine) -> str:
    """Which of the evaluation's scores the product searches with: ``recon`` or ``degraded`` (the face as found).
    With a companion both are the joined embeddings, the companion given the reconstruction (``recon``, searched
    with) or the degraded face (``degraded``)."""
    return "recon" if engine.searches_reconstruction else "degraded"


def searched_with(engine) -> str:
    """What the product searches with, in words (evaluation.json's notes)."""
    if engine.companion is not None:
        c = engine.companion
        sharp = ("" if c.sharp is None else
                 f" and, for sharper probes, SFace as published's embedding of the face as found (up to "
                 f"{c.sharp.share:g} of the recogniser's share, by the probe's sharpness)")
        return (f"the recogniser's embedding of the face as found, in its own crop, joined to the companion "
                f"recogniser's embedding of the reconstruction (weight {c.weight:g} of the similarity){sharp}; "
                f"recon_* rows: the joined embedding as searched, degraded_* rows: the companion given the degraded "
                f"face instead")
    if engine.embeds == "input":
        return ("the recogniser's embedding of the face as found, in its own crop (the reconstruction is shown beside "
                "it; recon_* rows: the same recogniser on the reconstruction carried into its crop)")
    return "the recogniser's embedding of the reconstruction"


def dlib_scores(gallery_desc: np.ndarray, probes: Probes) -> np.ndarray:
    """Negative Euclidean distance (higher = more alike; -inf where the probe had no descriptor)."""
    d = np.linalg.norm(gallery_desc - probes.dlib, axis=1)
    return np.where(np.isfinite(d), -d, -np.inf)


def probe_sharpness(probes: Probes) -> np.ndarray:
    """The sharpness (variance of the Laplacian) of each aligned probe crop the engine is given."""
    return np.array([sharpness(c) for c in probes.crop])


def calibrate(engine, index: FolderIndex, cache: dict, pairs: list[Pair], workers: int = 2,
              progress: Progress | None = None, made: Sequence[Pair] = ()) -> tuple[MatchCalibration, dict]:
    """Fit the match logistic and the softmax temperature on held-out calibration pairs (all levels,
    with and without audio), and the open-set table of gallery leads on their searches at every level of
    OPEN_SET_LEVELS (``open_set_calibration``). ``made``: more pairs among the same people (``Split.calib_made``),
    on which the match logistic is fitted too; the temperature, the open-set table and dlib's thresholds are
    fitted on ``pairs`` alone. Their degraded copies are seeded by their place after ``pairs``."""
    n = len(pairs)
    every = list(pairs) + list(made)
    same = np.array([p.same for p in every])
    gal = gallery_embeddings(engine, index, cache, [p.a for p in every])
    audio, present = probe_audio(index, every, workers, progress)
    sims, sharp, ys, dlib_thr, search_sharp = [], [], [], {}, []
    probe_embs = []
    gal_desc = _dlib_descriptors(index, cache, [p.a for p in every])
    for level in EVAL_LEVELS:
        probes = engine_probes(engine, index, cache, every, level, "calib", workers, progress)
        e_deg = engine.embed(probes.rec_crop) if engine.embeds == "input" else None
        level_sharp = probe_sharpness(probes)
        for a in (audio, None):
            s = score_pairs(engine, gal, probes, a, present, e_deg) if engine.searches_reconstruction \
                else _input_scores(gal, e_deg)
            sims.append(s["product"])
            sharp.append(level_sharp)
            ys.append(same)
            if a is not None:
                probe_embs.append(s["product_emb"][:n])
                search_sharp.append(level_sharp[:n])
        ds = dlib_scores(gal_desc, probes)[:n]
        fpr, tpr, thr = roc_curve(ds, same[:n])
        acc = [((ds >= t) == same[:n]).mean() for t in thr]
        dlib_thr[level] = float(-thr[int(np.argmax(acc))])
    # temperature: closed-set search of matched probes among the calibration people (one clean image each)
    search = CalibrationSearches.of(engine, index, cache, pairs)
    cal = fit_calibration(sims, ys, sharp, [e[search.matched] @ search.gallery.T for e in probe_embs],
                          search.truth, [s_[search.matched] for s_ in search_sharp],
                          open_set_calibration(engine, index, cache, pairs, search.gallery, search.pos, workers,
                                               progress))
    return cal, {"dlib_threshold_by_level": dlib_thr, "calib_people": len(search.pos),
                 "logistic_pairs": {"drawn": n, "made": len(made)}}


#: The companion's share l of the blurriest probes tried by :func:`choose_companion_weight`.
COMPANION_WEIGHTS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
#: How far below the sharp end (in q) the share reaches its full value, tried by :func:`choose_companion_weight`.
COMPANION_RAMPS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
#: The gallery side's share: the two recognisers' gallery embeddings weigh alike.
COMPANION_GALLERY_WEIGHT = 0.5
#: Probes at least as sharp as this percentile of the clean calibration probes are the recogniser's alone.
COMPANION_SHARP_PERCENTILE = 5.0


def choose_companion_weight(engine, index: FolderIndex, cache: dict, pairs: list[Pair], workers: int = 2,
                            progress: Progress | None = None) -> tuple[dict, dict]:
    """How a probe's embedding weighs the companion against the recogniser, chosen on the calibration ``pairs``
    (never DevTest). The gallery side's share is :data:`COMPANION_GALLERY_WEIGHT`. A probe's share is 0 from the
    sharp end up, q1 = the :data:`COMPANION_SHARP_PERCENTILE` th percentile of the clean calibration probes' q (a
    probe as sharp as a clean face is searched by the recogniser alone, whose clean-face accuracy a companion
    only dilutes: with the share running to the 99th percentile instead, DevTest's clean probes found with a lead
    fell from 87 to 82 %), and rises linearly to ``a`` at q1 - ``ramp`` and below, ``a`` in
    :data:`COMPANION_WEIGHTS` and ``ramp`` in :data:`COMPANION_RAMPS`: the pair whose similarity (the weighted mean
    of the two cosines, ``Companion.query``), under the match logistic fitted to it (with the sharpness, every
    level pooled, no audio), gives those pairs the highest mean log-likelihood. Returns the
    :class:`~forensic_face.models.bundle.Companion` fields (``weight``, ``probe_weight`` = (a, 0),
    ``quality_range`` = (q1 - ramp, q1)) and the table they were chosen from. ``engine`` has a companion (its own
    weights are not used)."""
    same = np.array([p.same for p in pairs])
    gal = [gallery_crops(index, cache, [p.a for p in pairs], engine.rec_size, engine.rec_alignment),
           gallery_crops(index, cache, [p.a for p in pairs], engine.size, engine.alignment)]
    g_main, g_comp = engine.embed_parts(*gal)
    s_main, s_comp, sharp = [], [], {}
    for level in EVAL_LEVELS:
        probes = engine_probes(engine, index, cache, pairs, level, "calib", workers, progress)
        p_main, p_comp = engine.embed_parts(probes.rec_crop, engine.reconstruct(probes.crop))
        s_main.append((g_main * p_main).sum(1))
        s_comp.append((g_comp * p_comp).sum(1))
        sharp[level] = probe_sharpness(probes)
    s_main, s_comp, q = np.concatenate(s_main), np.concatenate(s_comp), np.concatenate(list(sharp.values()))
    y = np.tile(same, len(EVAL_LEVELS)).astype(np.float64)
    sharp_end = float(np.percentile(sharpness_feature(sharp["clean"]), COMPANION_SHARP_PERCENTILE))
    g = COMPANION_GALLERY_WEIGHT
    table = {}
    for a in COMPANION_WEIGHTS:
        for ramp in COMPANION_RAMPS:
            w_main, w_comp = mean_weights(probe_share(q, (a, 0.0), (sharp_end - ramp, sharp_end)), g)
            sim = w_main * s_main + w_comp * s_comp  # what the engine's queries give (Companion.query)
            weights, quality_range = fit_logistic(sim, y, q)
            prob = np.clip(MatchCalibration(weights, 1.0, len(y), 0, quality_range).probability(sim, q),
                           1e-12, 1 - 1e-12)
            table[(a, ramp)] = round(float(np.mean(y * np.log(prob) + (1 - y) * np.log(1 - prob))), 5)
    a, ramp = max(table, key=table.get)
    return ({"weight": g, "probe_weight": (a, 0.0), "quality_range": (sharp_end - ramp, sharp_end)},
            {"rule": "highest mean log-likelihood of the calibration pairs; no share at or above the sharp end "
                     f"(the {COMPANION_SHARP_PERCENTILE:g}th percentile of the clean calibration probes' q)",
             "gallery_weight": g, "sharp_end": sharp_end, "tried": [list(k) for k in table],
             "tried_as": "(share at and below sharp_end - ramp, ramp)",
             "mean_log_likelihood": list(table.values()), "chosen": [a, ramp], "pairs": len(pairs),
             "levels": list(EVAL_LEVELS)})


#: The sharp part's full shares T tried by :func:`choose_sharp_share` (0, no sharp part, is the baseline).
SHARP_SHARES = (0.25, 0.5, 0.75, 1.0)
#: How far below the companion's sharp end (in q) the sharp part's share falls to 0, tried with each T.
SHARP_RAMPS = (0.5, 1.0, 1.5, 2.0)
#: A candidate whose pair ROC-AUC at some level is more than this below the baseline's is out.
SHARP_AUC_SLACK = 0.002


def choose_sharp_share(engine, index: FolderIndex, cache: dict, pairs: list[Pair], workers: int = 2,
                       progress: Progress | None = None) -> tuple[dict, dict]:
    """How much of the recogniser side's similarity a probe gives the sharp part (SFace as published), chosen on
    the calibration ``pairs`` (never DevTest) by the rule ``research/teacher_route.py`` fixed before DevTest was
    scored: for T in :data:`SHARP_SHARES` and R in :data:`SHARP_RAMPS`, the share t = T x clip((q - (q1 - R)) / R,
    0, 1) with q1 the companion's sharp end (``quality_range[1]``); each level's pair ROC-AUC and rank-1 of the
    searches among the pairs' people (one clean image each); candidates whose AUC at some level is more than
    :data:`SHARP_AUC_SLACK` below the baseline's (T = 0: no sharp part) are out; of the rest, the highest mean
    rank-1 over the levels wins (ties: the smaller T, then the smaller R). Returns the :class:`Sharp` fields
    (``share``, ``quality_range``), or None for them when the baseline wins, and the table. ``engine`` has a
    companion with a sharp part (its share and range are not used; its ``cross`` share applies to every T > 0)."""
    c = engine.companion
    q1 = float(c.quality_range[1]) if c.quality_range is not None else None
    if c.sharp is None or q1 is None:
        raise ValueError("choosing the sharp share needs a joined bundle with a sharp part and a companion share "
                         "that falls with the probe's quality")
    same = np.array([p.same for p in pairs])
    sets = identification_sets(pairs)

    def parts(found: np.ndarray, face: np.ndarray) -> list[np.ndarray]:  # recogniser, sharp part, companion
        return c.parts(np.concatenate(engine.embed_parts(found, face), axis=1))

    g_pair = parts(*(gallery_crops(index, cache, [p.a for p in pairs], size, mode) for size, mode in
                     ((engine.rec_size, engine.rec_alignment), (engine.size, engine.alignment))))
    g_search = parts(*(gallery_crops(index, cache, sets.gallery_paths, size, mode) for size, mode in
                       ((engine.rec_size, engine.rec_alignment), (engine.size, engine.alignment))))
    levels = {}
    for level in EVAL_LEVELS:
        probes = engine_probes(engine, index, cache, pairs, level, "calib", workers, progress)
        emb = parts(probes.rec_crop, engine.reconstruct(probes.crop))
        sharp = probe_sharpness(probes)
        levels[level] = {"sharpness": sharp, "pair": [(g * e).sum(1) for g, e in zip(g_pair, emb, strict=True)],
                         "search": [e[sets.closed] @ g.T for g, e in zip(g_search, emb, strict=True)],
                         # the recogniser's probe against the gallery's sharp embedding (the cross share's cosine)
                         "cross": ((g_pair[1] * emb[0]).sum(1), emb[0][sets.closed] @ g_search[1].T)}

    def scores(lev: dict, top: float, ramp: float) -> tuple[np.ndarray, np.ndarray]:
        # the weights the engine would give each probe's cosines with this share and ramp (T = 0: no sharp part,
        # so no cross share either); the recogniser's cosine with the sharp part's cross share b where T > 0
        candidate = replace(c, sharp=replace(c.sharp, share=top, quality_range=(q1 - ramp, q1)))
        w = list(candidate.cosine_weights(lev["sharpness"]).T)
        b = c.sharp.cross if top > 0 else 0.0
        pair_cos = [(1 - b) * lev["pair"][0] + b * lev["cross"][0], *lev["pair"][1:]]
        search_cos = [(1 - b) * lev["search"][0] + b * lev["cross"][1], *lev["search"][1:]]
        pair = sum(wi * s for wi, s in zip(w, pair_cos, strict=True))
        search = sum(wi[sets.closed][:, None] * s for wi, s in zip(w, search_cos, strict=True))
        return pair, search

    def rank_1(search: np.ndarray) -> float:
        truth = search[np.arange(len(sets.truth)), sets.truth][:, None]
        return float(((search > truth).sum(1) == 0).mean())

    table, ranked = {}, []
    base = {lv: roc_auc(scores(levels[lv], 0.0, 1.0)[0], same) for lv in EVAL_LEVELS}
    for top, ramp in [(0.0, 1.0)] + [(t, r) for t in SHARP_SHARES for r in SHARP_RAMPS]:
        row = {}
        for lv in EVAL_LEVELS:
            pair, search = scores(levels[lv], top, ramp)
            row[lv] = {"auc": round(roc_auc(pair, same), 4), "rank_1": round(rank_1(search), 4)}
        eligible = all(row[lv]["auc"] >= round(base[lv], 4) - SHARP_AUC_SLACK for lv in EVAL_LEVELS)
        mean_r1 = round(float(np.mean([row[lv]["rank_1"] for lv in EVAL_LEVELS])), 4)
        table[f"T {top:g} R {ramp:g}"] = {**row, "mean_rank_1": mean_r1, "eligible": eligible}
        if eligible:
            ranked.append((-mean_r1, top, ramp))
    _, top, ramp = min(ranked)
    chosen = {"share": top, "quality_range": (q1 - ramp, q1)} if top > 0 else None
    return chosen, {"rule": "of the shares T and ramps R whose pair ROC-AUC is at no level more than "
                            f"{SHARP_AUC_SLACK} below T = 0's (no sharp part), the highest mean rank-1 over the "
                            "levels (ties: smaller T, then smaller R); t = T x clip((q - (q1 - R)) / R, 0, 1)",
                    "sharp_end": q1, "cross": c.sharp.cross, "tried": table, "chosen": {"T": top, "R": ramp},
                    "pairs": len(pairs),
                    "searches": len(sets.closed), "people": len(sets.gallery_paths), "levels": list(EVAL_LEVELS)}


def _input_scores(gallery_emb: np.ndarray, e_deg: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`score_pairs`' product scores for a recogniser of the face as found (no reconstruction involved)."""
    sims = (gallery_emb * e_deg).sum(1)
    return {"product": sims, "product_emb": e_deg}


@dataclass
class CalibrationSearches:
    """The closed-set searches the temperature is fitted on: the calibration people's first images as the
    gallery (embedded), and the matched pairs whose probe person is in it."""

    gallery: np.ndarray  # (people, D)
    pos: dict[str, int]  # person -> gallery row
    matched: list[int]  # pair indices of the searches
    truth: np.ndarray  # gallery row of each search's person

    @classmethod
    def of(cls, engine, index: FolderIndex, cache: dict, pairs: list[Pair]) -> CalibrationSearches:
        first = first_images(pairs)
        people = sorted(first)
        pos = {q: i for i, q in enumerate(people)}
        matched = [k for k, p in enumerate(pairs) if p.same and p.b.split("/")[0] in pos]
        return cls(gallery_embeddings(engine, index, cache, [first[q] for q in people]), pos, matched,
                   np.array([pos[pairs[k].b.split("/")[0]] for k in matched]))


def fit_calibration(sims: list[np.ndarray], ys: list[np.ndarray], sharp: list[np.ndarray],
                    search_sims: list[np.ndarray], truth: np.ndarray, search_sharp: list[np.ndarray],
                    open_set: dict | None) -> MatchCalibration:
    """The match logistic on the pairs' similarities (``sims``, ``ys``, ``sharp``: one array per condition),
    the softmax temperature on the searches (``search_sims``: (searches, people) per condition, ``truth`` the
    right row of each, ``search_sharp`` the probes' sharpness), the impostor tail, and the open-set table."""
    weights, quality_range = fit_logistic(np.concatenate(sims), np.concatenate(ys), np.concatenate(sharp))
    all_sims = np.concatenate(search_sims)
    all_truth = np.tile(truth, len(search_sims))
    temperature = fit_temperature(all_sims, all_truth)
    # one-to-one stranger similarities (kept for the record and for older readers)
    stranger = np.ones_like(all_sims, bool)
    stranger[np.arange(all_sims.shape[0]), all_truth] = False
    tail = fit_impostor_tail(all_sims[stranger]) if stranger.sum() >= 10 / TAIL_FMR else None
    cal = MatchCalibration(weights=weights, temperature=temperature, n_pairs=int(sum(len(s) for s in sims)),
                           n_searches=int(all_sims.shape[0]), quality_range=quality_range, impostor_tail=tail,
                           open_set=open_set)
    if cal.uses_quality:  # the temperature by the probe's sharpness, on the same searches
        q = cal.quality(np.concatenate(search_sharp))
        cal = replace(cal, temperature_q=fit_temperature_q(all_sims, all_truth, q, temperature, degree=2))
    return cal


def open_set_calibration(engine, index: FolderIndex, cache: dict, pairs: list[Pair], g_emb: np.ndarray,
                         pos: dict[str, int], workers: int = 2, progress: Progress | None = None) -> dict | None:
    """The lead-score thresholds of gallery searches (``fit_open_set_table``) from calibration searches:
    every pair's second image that is not its person's gallery image, at every level of OPEN_SET_LEVELS,
    reconstructed without audio, against the calibration gallery (``g_emb``, one image per person)."""
    rows, truth = open_set_searches(pairs, pos)
    sims = []
    for level in OPEN_SET_LEVELS:
        probes = engine_probes(engine, index, cache, pairs, level, "calib", workers, progress)
        sims.append(product_embeddings(engine, probes, rows) @ g_emb.T)
    return open_set_table(sims, truth, list(OPEN_SET_LEVELS))


def open_set_searches(pairs: list[Pair], pos: dict[str, int]) -> tuple[list[int], np.ndarray]:
    """The open-set calibration searches: every pair whose second image is not its person's gallery image, and
    the gallery row of its person (-1: not enrolled)."""
    first = first_images(pairs)
    rows = [k for k, p in enumerate(pairs) if p.b != first.get(p.b.split("/")[0])]
    return rows, np.array([pos.get(pairs[k].b.split("/")[0], -1) for k in rows])


def open_set_table(sims: list[np.ndarray], truth: np.ndarray, conditions: list[str]) -> dict | None:
    """``fit_open_set_table`` on the searches of every condition (``sims``: one (searches, people) array each),
    with the conditions named; None when there are too few searches."""
    try:
        table = fit_open_set_table(np.concatenate(sims), np.tile(truth, len(sims)))
    except ValueError as exc:  # too few calibration searches for the table
        log.warning("no open-set table: %s", exc)
        return None
    return {**table, "levels": conditions}


def evaluate(engine, index: FolderIndex, cache: dict, pairs: list[Pair], calib_info: dict, out: Path,
             workers: int = 2, progress: Progress | None = None, reference: Reference | None = None,
             no_reference: str | None = None) -> dict:
    """The DevTest report: verification (ours with/without audio, on reconstruction and on the degraded
    input; dlib's reference, and ``reference``'s where given), reconstruction PSNR/SSIM, plots. Writes ``out``
    (JSON) and PNGs beside it. ``no_reference``: why no published recogniser was measured (recorded)."""
    t0 = time.perf_counter()
    if reference is not None and (why := reference_fits(engine)):
        reference, no_reference = None, why
    cal = engine.calibration
    test = _test_pairs(engine, index, cache, pairs, workers, progress)
    report: dict = {"pairs": len(pairs), "matched": int(test.same.sum()), "levels": {},
                    "engine": engine.info.as_dict(), "calibration": cal.as_dict() if cal else None,
                    "product_scores": product_key(engine),
                    "note_product": "the product searches with " + searched_with(engine),
                    "audio_present": int(test.present.sum()),
                    "note_audio": "audio results use synthetic voices (espeak-ng, one seeded voice per person)"}
    curves, examples = {}, {}
    id_sets = identification_sets(pairs)
    id_gallery = gallery_embeddings(engine, index, cache, id_sets.gallery_paths)
    id_desc = _dlib_descriptors(index, cache, id_sets.gallery_paths)
    ref = None
    if reference is not None:
        ref = _ReferenceRun.of(reference, index, cache, [p.a for p in pairs], id_sets.gallery_paths)
        report["reference"] = {"name": reference.name, "source": reference.source, "threshold": reference.threshold,
                               "how": "the probe as found (the same detection) in the 112 px five-point crop the "
                                      "product's recogniser takes, the clean gallery face in the same crop; no mirror "
                                      "image; cosine similarity, same person at the publisher's threshold"}
    else:
        report["reference"] = {"not_measured": no_reference or "no published recogniser given"}
    report["identification"] = {
        "gallery_people": len(id_sets.gallery_paths), "enrolled_probes": int(id_sets.closed.size),
        "not_enrolled_probes": int(id_sets.open.size),
        "how": "gallery: one clean image per person (the first 'a' image of each person in the pairs); probes: the "
               "pairs' degraded 'b' images, "
               + ("as found" if not engine.searches_reconstruction else "reconstructed" if engine.companion is None
                  else "as found and reconstructed") + ", no audio; a probe of an enrolled "
               "person (another image) is a closed-set search, one of a person not enrolled an open-set search",
        "levels": {}}
    for level in EVAL_LEVELS:
        probes = engine_probes(engine, index, cache, pairs, level, "test", workers, progress)
        probe_sharp = probe_sharpness(probes)
        dlib_thr = calib_info.get("dlib_threshold_by_level", {}).get(level, DLIB_THRESHOLD)
        e_deg = engine.embed(probes.rec_crop)  # the probes as found: not changed by the audio
        ref_probe = None if ref is None else ref.ref.embed(probes.rec_crop)
        report["levels"][level], level_curves, examples[level] = _level_report(
            engine, probes, probe_sharp, test, dlib_thr, e_deg,
            None if ref is None else (ref.ref, ref.pairs, ref_probe))
        curves |= {(level, name): curve for name, curve in level_curves.items()}
        report["identification"]["levels"][level] = identify(engine, id_gallery, id_desc, probes, probe_sharp,
                                                             id_sets,
                                                             None if engine.searches_reconstruction else e_deg,
                                                             None if ref is None else (ref.ref, ref.search, ref_probe))
    report["seconds"] = round(time.perf_counter() - t0, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    _plots(curves, examples, out, reference.name if reference is not None else "")
    _open_set_plot(report["identification"], out.with_name(out.stem + "_open_set.png"),
                   reference.name if reference is not None else "")
    return report


@dataclass
class _TestPairs:
    """What :func:`evaluate` compares each pair's probe with at every level."""

    same: np.ndarray  # (n,) bool: the pair is of one person
    gallery: np.ndarray  # (n, D) our embeddings of the clean gallery images (the pairs' first images)
    gallery_dlib: np.ndarray  # (n, 128) dlib's descriptors of them
    clean_probe: np.ndarray  # (n, S, S) uint8 the probe frame, clean, in the clean alignment
    audio: np.ndarray  # (n, A) the probe person's voice (``probe_audio``)
    present: np.ndarray  # (n,) bool: the probe person has a voice


def _test_pairs(engine, index: FolderIndex, cache: dict, pairs: list[Pair], workers: int,
                progress: Progress | None) -> _TestPairs:
    """The gallery side, the clean probes and the voices of ``pairs``."""
    gallery = gallery_embeddings(engine, index, cache, [p.a for p in pairs])
    gallery_dlib = _dlib_descriptors(index, cache, [p.a for p in pairs])
    clean_probe = gallery_crops(index, cache, [p.b for p in pairs], engine.size)
    audio, present = probe_audio(index, pairs, workers, progress)
    return _TestPairs(np.array([p.same for p in pairs]), gallery, gallery_dlib, clean_probe, audio, present)


def _dlib_descriptors(index: FolderIndex, cache: dict, paths: list[str]) -> np.ndarray:
    """dlib's descriptors of the images at ``paths`` of ``index``, from the face cache."""
    rows = {p: i for i, p in enumerate(index.paths)}
    return cache["teacher"][[rows[p] for p in paths]]


def _level_report(engine, probes: Probes, sharp: np.ndarray, test: _TestPairs,
                  dlib_thr: float, e_deg: np.ndarray | None = None,
                  ref: tuple[Reference, np.ndarray, np.ndarray] | None = None) -> tuple[dict, dict, tuple]:
    """One level's report: what the detector did, verification by ours and by dlib (at 0.6 and at ``dlib_thr``),
    and by the published recogniser ``ref`` (it, its gallery and probe embeddings) where given, reconstruction
    quality, and the paired comparisons; with its ROC curves by name and six examples (degraded, reconstructed
    without audio, clean). ``sharp``: each probe's sharpness."""
    lev: dict = {"probes_face_found": int(probes.found.sum()),
                 "probe_face_px_median": round(float(np.median(probes.face_px)), 1),
                 "detector_methods": {m: int((probes.method == m).sum()) for m in np.unique(probes.method)}}
    scores, decided, curves = {}, {}, {}
    for name, a in (("with_audio", test.audio), ("no_audio", None)):
        s = score_pairs(engine, test.gallery, probes, a, test.present, e_deg)
        for kind in ("recon", "degraded"):
            prob = engine.calibration.probability(s[kind], sharp)
            key = f"{kind}_{name}"
            scores[key], decided[key] = s[kind], prob >= 0.5
            lev[key] = verification_report(s[kind], test.same, prob >= 0.5)
            lev[key]["match_probability"] = probability_report(prob, test.same)
            curves[key] = roc_curve(s[kind], test.same)
    geom = probes.crop_clean_geom
    example = (geom[:6], engine.reconstruct(geom[:6]), test.clean_probe[:6])
    quality, gains = _reconstruction_quality(engine, probes, test)
    lev |= quality
    ds = dlib_scores(test.gallery_dlib, probes)
    ds_filled = np.where(np.isfinite(ds), ds, -9)
    lev["dlib_reference"] = {
        "at_0.6": verification_report(ds_filled, test.same, -ds <= DLIB_THRESHOLD),
        f"at_calibrated_{dlib_thr:.3f}": verification_report(ds_filled, test.same, -ds <= dlib_thr),
        "probes_without_descriptor": int((~np.isfinite(ds)).sum())}
    scores["dlib"], decided["dlib"] = ds_filled, -ds <= DLIB_THRESHOLD
    curves["dlib"] = roc_curve(ds_filled, test.same)
    if ref is not None:
        reference, gal, probe = ref
        rs = (gal * probe).sum(1)
        decided["reference"] = rs >= reference.threshold
        lev["reference"] = {f"at_{reference.threshold:g}": verification_report(rs, test.same, decided["reference"])}
        scores["reference"] = rs
        curves["reference"] = roc_curve(rs, test.same)
    lev["comparisons"] = _comparisons(scores, decided, test.same, gains, product_key(engine))
    return lev, curves, example


def _reconstruction_quality(engine, probes: Probes, test: _TestPairs) -> tuple[dict, dict]:
    """PSNR and SSIM against the clean probe of the reconstruction (with and without the voice) and of the
    degraded frame itself ("bicubic"), all in the clean alignment; with the per-probe PSNR gain of each
    reconstruction over bicubic (none at the clean level, where bicubic's PSNR is unbounded)."""
    geom, clean = probes.crop_clean_geom, test.clean_probe
    bicubic_psnr = psnr(geom, clean)
    quality, gains = {}, {}
    for name, a in (("with_audio", test.audio), ("no_audio", None)):
        rec_img = engine.reconstruct(geom, a) if a is not None else engine.reconstruct(geom)
        if name == "with_audio" and not test.present.all():
            rec_img[~test.present] = engine.reconstruct(geom[~test.present])
        rec_psnr = psnr(rec_img, clean)
        quality[f"reconstruction_{name}"] = {"psnr_db": round(float(rec_psnr.mean()), 3),
                                             "ssim": round(float(ssim(rec_img, clean).mean()), 4)}
        if probes.level != "clean":  # the clean probe is its own target
            gains[name] = mean_difference(rec_psnr, bicubic_psnr)
    quality["bicubic"] = {"psnr_db": round(float(bicubic_psnr.mean()), 3),
                          "ssim": round(float(ssim(geom, clean).mean()), 4)}
    return quality, gains


@dataclass
class IdentificationSets:
    """Closed- and open-set searches made from verification pairs: a gallery of one clean image per
    person (the first ``a`` image of each person), probes from the ``b`` images (the pair probes)."""

    gallery_paths: list[str]  # one image per enrolled person
    closed: np.ndarray  # indices of pairs whose probe person is enrolled (with another image)
    truth: np.ndarray  # gallery index of each closed probe's person
    open: np.ndarray  # indices of pairs whose probe person is not enrolled


def first_images(pairs: list[Pair]) -> dict[str, str]:
    """Each person's first ``a`` image in the pairs (in order of first appearance): the gallery image of
    searches built from verification pairs."""
    first: dict[str, str] = {}
    for p in pairs:
        first.setdefault(p.a.split("/")[0], p.a)
    return first


def identification_sets(pairs: list[Pair]) -> IdentificationSets:
    first = first_images(pairs)
    people = list(first)
    pos = {q: i for i, q in enumerate(people)}
    closed, truth, open_ = [], [], []
    for k, p in enumerate(pairs):
        person = p.b.split("/")[0]
        if person not in pos:
            open_.append(k)
        elif first[person] != p.b:  # a probe that is the gallery image itself is no search
            closed.append(k)
            truth.append(pos[person])
    return IdentificationSets([first[q] for q in people], np.array(closed, int), np.array(truth, int),
                              np.array(open_, int))


def identify(engine, gallery_emb: np.ndarray, gallery_desc: np.ndarray, probes: Probes, sharp: np.ndarray,
             sets: IdentificationSets, emb: np.ndarray | None = None,
             ref: tuple[Reference, np.ndarray, np.ndarray] | None = None) -> dict:
    """Closed-set rank-1 / rank-5 and open-set behaviour of gallery search for one level's probes
    (as the product searches: :func:`product_embeddings`, no audio; ``emb`` when already computed), with dlib's
    recogniser on the same searches as the reference; ``sharp`` is each probe's sharpness (``probe_sharpness``).

    Open set: a probe of a person who is not enrolled must get "no confident match" (the best
    candidate's match probability below 0.5 or the search's lead score below the open-set threshold for
    this gallery's size); for an enrolled person the search succeeds when the right person is first *and*
    confident (the detection-and-identification rate). The figures with the one-to-one threshold
    alone are kept beside them. ``ref``: a published recogniser, its gallery and probe embeddings, searched the same
    way (a lead: its best cosine at its publisher's threshold), its rank-1 paired with ours (McNemar)."""
    cal = engine.calibration
    emb = product_embeddings(engine, probes) if emb is None else emb
    sims = emb @ gallery_emb.T  # (pairs, gallery)
    best = sims.max(1)
    n_people = len(sets.gallery_paths)
    open_thr = cal.open_set_threshold(n_people, DEFAULT_FPIR)
    one_to_one = cal.probability(best, sharp) >= 0.5
    lead = cal.lead_score(sims)
    confident = one_to_one & (lead >= open_thr)
    c, t = sets.closed, sets.truth
    rank = (sims[c] > sims[c, t][:, None]).sum(1) + 1
    prob = cal.softmax(sims[c], sharp[c])
    top1 = rank == 1
    ident = {"rank_1": rate_report(top1), "rank_5": rate_report(rank <= 5),
             "identity_probability": probability_report(prob.max(1), top1),
             "enrolled_found_confidently": rate_report(top1 & confident[c]),
             "not_enrolled_no_confident_match": rate_report(~confident[sets.open]),
             "open_set_threshold": None if not np.isfinite(open_thr) else round(float(open_thr), 4),
             "fpir_target": DEFAULT_FPIR,
             "one_to_one_threshold_only": {"enrolled_found_confidently": rate_report(top1 & one_to_one[c]),
                                           "not_enrolled_no_confident_match": rate_report(~one_to_one[sets.open])}}
    if cal.open_set:  # what each false-lead setting gave here, and the whole trade-off for the plot
        ident["by_fpir_setting"] = []
        for fpir in cal.open_set["fpir"]:
            bar = cal.open_set_threshold(n_people, fpir)
            ident["by_fpir_setting"].append({
                "fpir": fpir, "threshold": round(bar, 4),
                "enrolled_found_confidently": rate_report(top1 & one_to_one[c] & (lead[c] >= bar)),
                "not_enrolled_no_confident_match": rate_report(~(one_to_one[sets.open] & (lead[sets.open] >= bar)))})
        ident["trade_off"] = {name: _trade_off(score, one_to_one, top1, sets)
                              for name, score in (("lead_score", lead), ("best_similarity", best))}
    # dlib: Euclidean distance of descriptors; probes without a descriptor find no one
    dist = np.linalg.norm(probes.dlib[:, None, :] - gallery_desc[None, :, :], axis=2)
    dist = np.where(np.isfinite(dist), dist, np.inf)
    d_rank = (dist[c] < dist[c, t][:, None]).sum(1) + 1
    d_found = np.isfinite(dist[c, t])
    d_confident = dist.min(1) <= DLIB_THRESHOLD
    ident["dlib_reference"] = {"rank_1": rate_report((d_rank == 1) & d_found),
                               "rank_5": rate_report((d_rank <= 5) & d_found),
                               "enrolled_found_confidently": rate_report((d_rank == 1) & d_found & d_confident[c]),
                               "not_enrolled_no_confident_match": rate_report(~d_confident[sets.open])}
    if ref is not None:
        reference, gal, probe = ref
        r_sims = probe @ gal.T
        r_rank = (r_sims[c] > r_sims[c, t][:, None]).sum(1) + 1
        r_confident = r_sims.max(1) >= reference.threshold
        ident["reference"] = {"threshold": reference.threshold, "rank_1": rate_report(r_rank == 1),
                              "rank_5": rate_report(r_rank <= 5),
                              "enrolled_found_confidently": rate_report((r_rank == 1) & r_confident[c]),
                              "not_enrolled_no_confident_match": rate_report(~r_confident[sets.open]),
                              "rank_1_paired": {"a": "ours", "b": reference.name,
                                                **mcnemar(top1, r_rank == 1)}}
    return ident


def _trade_off(score: np.ndarray, one_to_one: np.ndarray, top1: np.ndarray, sets: IdentificationSets,
               points: int = 120) -> dict:
    """Share of searches for people not enrolled that end with a lead (false leads) against the share of
    enrolled ones found with a lead, as the threshold on ``score`` moves (the one-to-one rule kept)."""
    thresholds = np.unique(np.quantile(score, np.linspace(0.0, 1.0, points)))
    passed_open = one_to_one[sets.open][:, None] & (score[sets.open][:, None] >= thresholds[None, :])
    passed_closed = (top1 & one_to_one[sets.closed])[:, None] & (score[sets.closed][:, None] >= thresholds[None, :])

    def share(passed: np.ndarray) -> list[float]:
        return [round(float(v), 5) for v in passed.mean(0)] if len(passed) else [0.0] * thresholds.size

    return {"threshold": [round(float(v), 4) for v in thresholds], "false_leads": share(passed_open),
            "enrolled_found": share(passed_closed)}


#: Paired comparisons reported per level: (name, a, b, what it answers).
COMPARISONS = (
    ("reconstruction_vs_degraded", "recon_no_audio", "degraded_no_audio",
     "does recognising the reconstruction beat recognising the degraded input?"),
    ("audio_vs_no_audio", "recon_with_audio", "recon_no_audio", "does the voice change recognition?"),
    ("ours_vs_dlib", "product_with_audio", "dlib", "the product against dlib's recogniser at its 0.6 distance"),
    ("ours_vs_reference", "product_with_audio", "reference",
     "the product against the published recogniser (SFace as published) at its publisher's threshold"),
)


def _comparisons(scores: dict, decided: dict, same: np.ndarray, gains: dict, product: str = "recon") -> dict:
    """Paired tests on the same pairs (McNemar on the decisions, DeLong on the AUCs) and the
    per-probe PSNR gain of the reconstruction over bicubic with its 95 % interval. ``product``: which scores
    the product searches with (:func:`product_key`)."""
    out: dict = {"note": "paired over the same pairs; intervals and p-values treat the pairs as independent"}
    for name, a, b, question in COMPARISONS:
        a = a.replace("product", product)
        if a not in scores or b not in scores:  # no published recogniser measured
            continue
        out[name] = {"question": question, "a": a, "b": b,
                     "accuracy": mcnemar(decided[a] == same, decided[b] == same),
                     "roc_auc": auc_difference(scores[a], scores[b], same)}
    if gains:
        out["psnr_gain_over_bicubic_db"] = gains
    return out


def _plots(curves: dict, examples: dict, out: Path, reference: str = "") -> None:
    """ROC curves per level (``reference``: the published recogniser's name, its curve so labelled) and examples."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(EVAL_LEVELS), figsize=(15, 4.6))
    for ax, level in zip(axes, EVAL_LEVELS, strict=True):
        for (lv, name), (fpr, tpr, _) in curves.items():
            if lv == level and name in ("recon_with_audio", "recon_no_audio", "degraded_no_audio", "dlib",
                                        "reference"):
                ax.plot(fpr, tpr, label=reference if name == "reference" else name.replace("_", " "))
        ax.set_xscale("log")
        ax.set_xlim(1e-3, 1)
        ax.set_ylim(0, 1.01)
        ax.set_title(f"ROC, LFW DevTest, probe {level}")
        ax.set_xlabel("false accept rate")
        ax.set_ylabel("true accept rate")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out.with_name(out.stem + "_roc.png"), dpi=110)
    plt.close(fig)
    fig, axes = plt.subplots(len(examples) * 3, 6, figsize=(9, 4.8 * len(examples)))
    for li, (level, (deg, rec, clean)) in enumerate(examples.items()):
        for r, (imgs, label) in enumerate(((deg, "degraded"), (rec, "reconstructed"), (clean, "clean"))):
            for c in range(6):
                ax = axes[li * 3 + r, c]
                ax.imshow(imgs[c], cmap="gray", vmin=0, vmax=255)
                ax.set_xticks([])
                ax.set_yticks([])
                if c == 0:
                    ax.set_ylabel(f"{level}\n{label}", fontsize=8)
    fig.tight_layout()
    fig.savefig(out.with_name(out.stem + "_examples.png"), dpi=100)
    plt.close(fig)


def _open_set_plot(ident: dict, path: Path, reference: str = "") -> None:
    """Gallery search's trade-off per level: enrolled found with a lead against false leads, for the lead
    score and the best similarity, with the false-lead settings, dlib at 0.6 and the published recogniser
    ``reference`` (its name) at its threshold marked."""
    levels = {k: v for k, v in ident["levels"].items() if v.get("trade_off")}
    if not levels:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(levels), figsize=(5 * len(levels), 4.6), squeeze=False)
    for ax, (level, lev) in zip(axes[0], levels.items(), strict=True):
        for name, style in (("lead_score", "-"), ("best_similarity", "--")):
            curve = lev["trade_off"][name]
            ax.plot(np.maximum(curve["false_leads"], 1e-3), curve["enrolled_found"], style,
                    label=name.replace("_", " "))
        for point in lev["by_fpir_setting"]:
            x = max(1 - point["not_enrolled_no_confident_match"]["rate"], 1e-3)
            ax.plot(x, point["enrolled_found_confidently"]["rate"], "o", color="black", ms=4)
            ax.annotate(f"{point['fpir'] * 100:g} %", (x, point["enrolled_found_confidently"]["rate"]),
                        textcoords="offset points", xytext=(4, -10), fontsize=7)
        d = lev["dlib_reference"]
        ax.plot(max(1 - d["not_enrolled_no_confident_match"]["rate"], 1e-3), d["enrolled_found_confidently"]["rate"],
                "s", color="tab:red", label="dlib at 0.6")
        if "reference" in lev:
            r = lev["reference"]
            ax.plot(max(1 - r["not_enrolled_no_confident_match"]["rate"], 1e-3),
                    r["enrolled_found_confidently"]["rate"], "D", color="tab:green",
                    label=f"{reference} at {r['threshold']:g}")
        ax.set_xscale("log")
        ax.set_xlim(1e-3, 1)
        ax.set_ylim(0, 1.01)
        ax.set_title(f"Gallery of {ident['gallery_people']}, probe {level}", fontsize=10)
        ax.set_xlabel("false leads (searches for people not enrolled)")
        ax.set_ylabel("enrolled found with a lead")
        ax.grid(alpha=0.3)
        # clear of the settings' dots: below them where the curves run high (sharp probes), else above them
        ax.legend(loc="lower right" if max(lev["trade_off"]["lead_score"]["enrolled_found"]) > 0.8 else "upper left",
                  fontsize=8)
    fig.text(0.5, 0.005, "dots: the false-lead settings (0.5-10 %), thresholds from calibration searches; "
             "0.1 % stands for none", ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def export_models(checkpoint: Path, index: FolderIndex, cache: dict, calib_pairs: list[Pair], dest: Path,
                  workers: int = 2, progress: Progress | None = None, extra_record: dict | None = None,
                  made: Sequence[Pair] = ()):
    """Checkpoint -> calibrated model bundle in ``dest`` (weights, configs, calibration, training record);
    ``made``: :func:`calibrate`'s."""
    from datetime import date

    from forensic_face.engine.inference import FaceEngine
    from forensic_face.models.bundle import save_bundle
    from forensic_face.training.train import load_checkpoint

    ae, rec, record = load_checkpoint(checkpoint)
    history = checkpoint.parent / "history.json"  # the finished run's record (timings, steps)
    if history.is_file():
        record = {**record, **json.loads(history.read_text())}
    record = {"date": date.today().isoformat(), **record, **(extra_record or {})}
    save_bundle(dest, ae, rec, None, record)
    engine = FaceEngine(dest, device="cpu", precision="float32")  # fitted the same on every machine
    cal, info = calibrate(engine, index, cache, calib_pairs, workers, progress, made)
    record["calibration_info"] = info
    save_bundle(dest, engine.ae, engine.rec, cal, record)
    return FaceEngine(dest, device="cpu", precision="float32"), info
