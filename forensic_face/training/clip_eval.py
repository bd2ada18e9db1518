"""Synthetic clips from LFW probes: what pooling the frames of a clip gains, and its calibration (issue 23).

A clip of a probe: ``CLIP_FRAMES`` frames of the pair's second image, each moved a little as a person in front
of a camera moves (a sub-pixel shift at the camera's resolution, a scale change of ~2 %, a rotation of ~2°)
and then degraded *independently* at the level (its own noise seed, its own JPEG encoding: ``degrade``), as
successive frames of one camera are. The gallery image stays clean. Every frame goes through the clip path of
the product: YuNet (the clip detector) on the degraded frame, the most central face; where it finds none, the LFW
centre box stands in for the analyst's box that starts a followed track (landmarks predicted in it, weighted as a
drawn box); the alignment the engine wants; the tracker's quality figures and fusion weight
(:func:`forensic_face.vision.track.measure_face`, :func:`forensic_face.engine.fusion.frame_weight`); and, in the
engine, its reconstruction and embedding. A clip of N frames is the first N of them; its template is the frames'
embeddings pooled with their weights (:func:`forensic_face.engine.fusion.fuse`).

Frames are seeded by (pair index, frame, level), so the clips are the same at every run, and N = 4 is a prefix
of N = 8 (the curve over N compares like with like).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from forensic_face.core.progress import Progress
from forensic_face.engine.probe import rec_spec
from forensic_face.models.calibration import MatchCalibration
from forensic_face.paths import cache_dir
from forensic_face.training.chunked import parallel_map
from forensic_face.training.evaluate import (
    CalibrationSearches,
    fit_calibration,
    gallery_crops,
    gallery_embeddings,
    identification_sets,
    open_set_searches,
    open_set_table,
)
from forensic_face.training.lfw import FolderIndex, Pair, _centre_box, _most_central, worker_models
from forensic_face.training.metrics import mean_difference, psnr, rate_report, roc_auc, ssim, verification_report
from forensic_face.vision.align import AlignSpec, align_face, warp_to_crop
from forensic_face.vision.degrade import DEGRADED_LEVELS, EVAL_LEVELS, LEVELS, degrade
from forensic_face.vision.detect import FaceDetection
from forensic_face.vision.quality import assess, sharpness

#: Frames made per clip; the clips of the evaluation are their first N.
CLIP_FRAMES = 16
#: The clip lengths the evaluation reports.
CLIP_COUNTS = (1, 4, 8, 16)
#: Quality figures kept per frame: the tracker's (:class:`forensic_face.vision.track.FaceQuality`, which the fusion
#: weights read), the sharpness of the aligned crop (what the match probability is read at, as for one frame), and
#: whether the detector found the face.
TRACK_QUALITY = ("face_px", "sharpness", "noise_sigma", "roll_deg", "turn", "score")
QUALITY_FIELDS = (*TRACK_QUALITY, "crop_sharpness", "found")


def clip_frame(grey: np.ndarray, level: str, seed: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """One frame of a synthetic clip of ``grey`` at ``level`` and its motion (2x3, ``grey`` -> frame): moved
    (shift below one pixel of the level's resolution, scale sigma 2 %, rotation sigma 2°), then degraded with
    its own seed."""
    rng = np.random.default_rng(seed)
    h, w = grey.shape[:2]
    camera_px = w / (LEVELS[level].downscale_to or w)  # one pixel of the camera, in frame pixels
    m = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.normal(0, 2.0)), float(np.exp(rng.normal(0, 0.02))))
    m[:, 2] += rng.uniform(-0.5, 0.5, 2) * camera_px
    moved = cv2.warpAffine(grey, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
    return (moved if level == "clean" else degrade(moved, level, seed=int(rng.integers(2**31)))), m


def _in_clean_alignment(frame: np.ndarray, clean: np.ndarray, motion: np.ndarray, size: int) -> np.ndarray:
    """The moved frame cropped where the clean face is: the clean alignment ``clean`` after undoing ``motion``."""
    undo = np.vstack([cv2.invertAffineTransform(motion), [0, 0, 1]])
    return warp_to_crop(frame, (np.vstack([clean, [0, 0, 1]]) @ undo)[:2], size)


@dataclass
class ClipProbes:
    """Per pair at one level: the aligned crops of every frame of its clip and their quality figures."""

    level: str
    crop: np.ndarray  # (P, F, S, S) uint8, aligned from the detection on the frame
    crop_clean_geom: np.ndarray  # (P, F, S, S) uint8, the frame where the clean face is (reconstruction quality)
    quality: dict[str, np.ndarray]  # QUALITY_FIELDS -> (P, F)
    method: np.ndarray  # (P, F) str: how the face was found
    rec_crop: np.ndarray  # (P, F, R, R) uint8: the recogniser's own crop of each face (``crop`` when shared)


_CLIP_DETECTORS: dict = {}


def _clip_detectors():
    """(YuNet, the cascade for landmarks in a box), once per worker process."""
    if not _CLIP_DETECTORS:
        from forensic_face.vision.yunet import YuNetDetector

        _CLIP_DETECTORS["yunet"] = YuNetDetector()
        _CLIP_DETECTORS["cascade"] = worker_models()[0]
    return _CLIP_DETECTORS["yunet"], _CLIP_DETECTORS["cascade"]


def _clip_chunk(job: tuple) -> list:
    from forensic_face.vision.track import measure_face

    root, items, level, size, alignment, frames, rec_spec = job
    yunet, cascade = _clip_detectors()
    spec = AlignSpec(size=size, mode=alignment)
    out = []
    for rel, k, box, marks in items:
        grey = cv2.imread(str(Path(root) / rel), cv2.IMREAD_GRAYSCALE)
        clean = align_face(grey, FaceDetection(box=tuple(float(v) for v in box), score=1.0, method="cache",
                                               landmarks=marks if np.any(marks) else None), spec).matrix
        rows = []
        for f in range(frames):
            frame, motion = clip_frame(grey, level, (k, f, EVAL_LEVELS.index(level)))
            faces = yunet.detect(frame)
            if faces:
                det = _most_central(faces, frame.shape)
            else:
                det = cascade.from_box(frame, _centre_box(frame.shape))
            crop = align_face(frame, det, spec).image
            q = measure_face(frame, det)
            rows.append((crop, _in_clean_alignment(frame, clean, motion, size),
                         [float(getattr(q, name)) for name in TRACK_QUALITY]
                         + [assess(crop, det.width).sharpness, float(bool(faces))], det.method,
                         crop if rec_spec is None else align_face(frame, det, rec_spec).image))
        out.append(rows)
    return out


def clip_probes(index: FolderIndex, cache: dict, pairs: list[Pair], level: str, size: int, alignment: str,
                tag: str, frames: int = CLIP_FRAMES, workers: int = 2,
                progress: Progress | None = None, rec: AlignSpec | None = None) -> ClipProbes:
    """The clips of every pair's second image at ``level`` through the probe pipeline (cached on disk); ``rec``:
    the recogniser's own crop when it takes another (:func:`forensic_face.engine.probe.rec_spec`)."""
    rec_tag = "" if rec is None else f"-r{rec.size}{rec.mode}"
    path = cache_dir() / (f"clips-{tag}-{level}-s{size}-{alignment}{rec_tag}-f{frames}-{index.fingerprint()}-"
                          f"{len(pairs)}.npz")
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return ClipProbes(level, z["crop"], z["geom"], {n: z[f"q_{n}"] for n in QUALITY_FIELDS}, z["method"],
                              z["rec_crop"] if rec is not None else z["crop"])
    row = {p: i for i, p in enumerate(index.paths)}
    items = [(p.b, k, cache["boxes"][row[p.b]], cache["landmarks"][row[p.b]]) for k, p in enumerate(pairs)]
    chunks = [items[i:i + 10] for i in range(0, len(items), 10)]
    parts = parallel_map(_clip_chunk, [(str(index.root), c, level, size, alignment, frames, rec) for c in chunks],
                         workers, progress, len(items), f"{tag} clips, {level}", sizes=[len(c) for c in chunks])
    flat = [clip for part in parts for clip in part]
    q = np.array([[r[2] for r in clip] for clip in flat], np.float32)
    probes = ClipProbes(level, np.stack([np.stack([r[0] for r in clip]) for clip in flat]),
                        np.stack([np.stack([r[1] for r in clip]) for clip in flat]),
                        {n: q[..., i] for i, n in enumerate(QUALITY_FIELDS)},
                        np.array([[r[3] for r in clip] for clip in flat]),
                        np.stack([np.stack([r[4] for r in clip]) for clip in flat]))
    tmp = path.with_suffix(".tmp.npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {} if rec is None else {"rec_crop": probes.rec_crop}
    np.savez(tmp, crop=probes.crop, geom=probes.crop_clean_geom, method=probes.method,
             **{f"q_{n}": v for n, v in probes.quality.items()}, **extra)
    tmp.replace(path)
    return probes


# ------------------------------------------------------------------------------------------------ pooling


#: Clip lengths whose pooled templates the pooled calibration is fitted on (one frame keeps its own).
CALIBRATION_COUNTS = (4, 8, 16)


def frame_embeddings(engine, probes: ClipProbes) -> np.ndarray:
    """(P, F, D): the embedding of every frame as the clip analysis makes them: of its reconstruction (no audio),
    or of the face as found in the recogniser's crop for a recogniser of its input."""
    p, f = probes.crop.shape[:2]
    found = probes.rec_crop.reshape(p * f, *probes.rec_crop.shape[2:])
    crops = probes.crop.reshape(p * f, *probes.crop.shape[2:])
    emb = engine.embed_searched(found, engine.reconstruct(crops) if engine.searches_reconstruction else crops,
                                sharpness=np.array([sharpness(c) for c in crops]))
    return emb.reshape(p, f, -1)


def engine_clips(engine, index: FolderIndex, cache: dict, pairs: list[Pair], level: str, tag: str,
                 workers: int = 2, progress: Progress | None = None) -> ClipProbes:
    """:func:`clip_probes` in the crops ``engine``'s networks take."""
    return clip_probes(index, cache, pairs, level, engine.size, engine.alignment, tag, workers=workers,
                       progress=progress, rec=rec_spec(engine))


def frame_weights(quality: dict[str, np.ndarray]) -> np.ndarray:
    """(P, F) fusion weights of the frames from their tracker quality figures."""
    from forensic_face.engine.fusion import frame_weight
    from forensic_face.vision.track import FaceQuality

    shape = quality["face_px"].shape
    flat = {k: quality[k].reshape(-1) for k in TRACK_QUALITY}
    return np.array([frame_weight(FaceQuality(**{k: float(v[i]) for k, v in flat.items()}))
                     for i in range(flat["face_px"].size)], np.float64).reshape(shape)


def pooled(emb: np.ndarray, quality: dict[str, np.ndarray], n: int, pooling=None) -> tuple[np.ndarray, np.ndarray]:
    """The templates of the clips' first ``n`` frames (P, D) and each template's sharpness (the weighted mean of
    its frames' crop sharpness: what the match probability is read at), pooled as the clip analysis pools
    (:func:`forensic_face.engine.fusion.fuse`); a clip whose n frames all weigh 0 is pooled with equal weights
    (the analysis refuses it; the evaluation counts it, so that no clip is left out). ``pooling``: as
    ``fuse``'s."""
    from forensic_face.engine.fusion import fuse

    w = frame_weights({k: v[:, :n] for k, v in quality.items()})
    w[w.sum(1) == 0] = 1.0
    templates = np.stack([fuse(emb[i, :n], w[i], pooling) for i in range(len(emb))])
    share = w / w.sum(1, keepdims=True)
    return templates, (share * quality["crop_sharpness"][:, :n]).sum(1)


# ------------------------------------------------------------------------------------------------ calibration


#: The scales on each frame's companion share in a pooled template that the clip calibration chooses among
#: (a joined bundle's; 1: the frame's own share, 0: the recogniser alone).
SHARE_SCALES = (1.0, 0.75, 0.5, 0.25, 0.0)
#: How far below the frames' own share's a scale's pair ROC-AUC may fall, in any condition, to be chosen.
SHARE_AUC_TOLERANCE = 0.002


def choose_pooled_share(rank_1: dict[float, list[float]], auc: dict[float, list[float]]) -> float:
    """The scale on a frame's companion share in pooled templates: of the scales whose pair ROC-AUC is in no
    condition more than ``SHARE_AUC_TOLERANCE`` below scale 1's, the one of the highest mean rank-1 over the
    conditions (equal means: the larger scale). ``rank_1``, ``auc``: per scale, one figure per condition (the
    calibration clips' levels and lengths), scale 1 among them. The rule was fixed before it was first run
    (the model card says what had been measured on those clips by then)."""
    if 1.0 not in auc:
        raise ValueError("the frames' own share (scale 1) is what the others are held against")
    allowed = [s for s in auc if keeps_auc(auc[s], auc[1.0])]
    return max(allowed, key=lambda s: (round(float(np.mean(rank_1[s])), 9), s))


def keeps_auc(auc: list[float], own: list[float]) -> bool:
    """Whether a scale's pair ROC-AUC (one per condition) is nowhere more than ``SHARE_AUC_TOLERANCE`` below
    the frames' own share's (``own``): :func:`choose_pooled_share`'s guard."""
    return all(a >= b - SHARE_AUC_TOLERANCE for a, b in zip(auc, own, strict=True))


def calibrate_clips(engine, index: FolderIndex, cache: dict, pairs: list[Pair], workers: int = 2,
                    progress: Progress | None = None) -> tuple[MatchCalibration, dict, float | None]:
    """The calibration of pooled templates, fitted as the single-frame one is (:func:`fit_calibration`) but on
    the calibration people's clips: the match logistic on pooled templates of ``CALIBRATION_COUNTS`` frames at
    every level of EVAL_LEVELS, the temperature on their closed-set searches, the open-set table on their
    open-set searches (the three levels: the clips of the single-factor levels are not made). A joined
    bundle's scale on each frame's companion share (:data:`SHARE_SCALES`) is chosen first on the same templates
    (:func:`choose_pooled_share`) and the calibration fitted on templates pooled with it; returned third (None
    without a companion), with every scale's figures in the fit's description."""
    gal = gallery_embeddings(engine, index, cache, [p.a for p in pairs])
    same = np.array([p.same for p in pairs])
    search = CalibrationSearches.of(engine, index, cache, pairs)
    rows, open_truth = open_set_searches(pairs, search.pos)
    made = []  # each level's frame quality figures and embeddings
    for level in EVAL_LEVELS:
        probes = engine_clips(engine, index, cache, pairs, level, "calib", workers, progress)
        made.append((level, probes.quality, frame_embeddings(engine, probes)))
    share, choice = None, {}
    if engine.companion is not None:
        rank_1: dict[float, list[float]] = {s: [] for s in SHARE_SCALES}
        auc: dict[float, list[float]] = {s: [] for s in SHARE_SCALES}
        for scale in SHARE_SCALES:
            for _, quality, emb in made:
                for n in CALIBRATION_COUNTS:
                    templates, _ = pooled(emb, quality, n, engine.pooling_at(scale))
                    auc[scale].append(roc_auc((gal * templates).sum(1), same))
                    first = (templates[search.matched] @ search.gallery.T).argmax(1) == search.truth
                    rank_1[scale].append(float(first.mean()))
        share = choose_pooled_share(rank_1, auc)
        choice = {"companion_share_choice": {
            "rule": f"of the scales whose pair ROC-AUC is in no condition more than {SHARE_AUC_TOLERANCE} below "
                    "scale 1's, the highest mean rank-1 (equal: the larger scale)",
            "chosen": share,
            "scales": {str(s): {"auc": [round(a, 4) for a in auc[s]], "rank_1": [round(r, 4) for r in rank_1[s]],
                                "mean_rank_1": round(float(np.mean(rank_1[s])), 4)} for s in SHARE_SCALES}}}
    sims, ys, sharp, s_sims, s_sharp, o_sims, conditions = [], [], [], [], [], [], []
    for level, quality, emb in made:
        for n in CALIBRATION_COUNTS:
            templates, q = pooled(emb, quality, n, engine.pooling_at(1.0 if share is None else share))
            sims.append((gal * templates).sum(1))
            ys.append(same)
            sharp.append(q)
            s_sims.append(templates[search.matched] @ search.gallery.T)
            s_sharp.append(q[search.matched])
            o_sims.append(templates[rows] @ search.gallery.T)
            conditions.append(f"{level}, {n} frames")
    cal = fit_calibration(sims, ys, sharp, s_sims, search.truth, s_sharp, open_set_table(o_sims, open_truth,
                                                                                         conditions))
    return cal, {"calib_people": len(search.pos), "conditions": conditions, "pairs": len(pairs)} | choice, share


# ------------------------------------------------------------------------------------------------ evaluation


def evaluate_clips(engine, clip_cal: MatchCalibration, index: FolderIndex, cache: dict, pairs: list[Pair],
                   levels: tuple[str, ...] = DEGRADED_LEVELS, workers: int = 2,
                   progress: Progress | None = None) -> dict:
    """Verification, gallery search and reconstruction of clips of 1, 4, 8 and 16 frames at ``levels``: one
    frame is read with the single-frame calibration (it is what the single-frame analysis gives), pooled
    templates with ``clip_cal``."""
    same = np.array([p.same for p in pairs])
    gal = gallery_embeddings(engine, index, cache, [p.a for p in pairs])
    clean_probe = gallery_crops(index, cache, [p.b for p in pairs], engine.size)
    sets = identification_sets(pairs)
    id_gal = gallery_embeddings(engine, index, cache, sets.gallery_paths)
    report: dict = {"pairs": len(pairs), "frames_made": CLIP_FRAMES, "gallery_people": len(sets.gallery_paths),
                    "searches": int(sets.closed.size), "levels": {}}
    for level in levels:
        probes = engine_clips(engine, index, cache, pairs, level, "test", workers, progress)
        emb = frame_embeddings(engine, probes)
        lev: dict = {"frames_face_found": round(float(probes.quality["found"].mean()), 4), "by_frames": {}}
        for n in CLIP_COUNTS:
            templates, q = pooled(emb, probes.quality, n, engine.pooling_of(n))
            cal = engine.calibration if n == 1 else clip_cal
            scores = (gal * templates).sum(1)
            row = verification_report(scores, same, cal.probability(scores, q) >= 0.5)
            sims = templates[sets.closed] @ id_gal.T
            rank = (sims > sims[np.arange(len(sims)), sets.truth][:, None]).sum(1) + 1
            row |= {"calibration": "single frame" if n == 1 else "pooled templates",
                    "rank_1": rate_report(rank == 1), "rank_5": rate_report(rank <= 5),
                    "reconstruction": _pooled_reconstruction(engine, probes, clean_probe, n)}
            lev["by_frames"][str(n)] = row
        report["levels"][level] = lev
    return report


def _pooled_reconstruction(engine, probes: ClipProbes, clean: np.ndarray, n: int) -> dict:
    """PSNR against the clean face of the reconstruction made from the first ``n`` frames (each frame, in the
    clean face's alignment, reconstructed; the reconstructions averaged with the frames' fusion weights),
    beside that of one frame as it is (bicubic: the level upscales back) and of the average of the n frames."""
    p, f, size = probes.crop_clean_geom.shape[0], n, probes.crop_clean_geom.shape[2]
    geom = probes.crop_clean_geom[:, :n]
    recon = engine.reconstruct(geom.reshape(p * f, size, size)).reshape(p, f, size, size).astype(np.float32)
    w = frame_weights({k: v[:, :n] for k, v in probes.quality.items()})
    w[w.sum(1) == 0] = 1.0
    w = w / w.sum(1, keepdims=True)
    fused = np.clip(np.round((recon * w[:, :, None, None]).sum(1)), 0, 255).astype(np.uint8)
    average = np.clip(np.round(geom.astype(np.float32).mean(1)), 0, 255).astype(np.uint8)
    one, avg, rec = psnr(geom[:, 0], clean), psnr(average, clean), psnr(fused, clean)
    return {"psnr_db": round(float(rec.mean()), 3), "one_frame_psnr_db": round(float(one.mean()), 3),
            "frame_average_psnr_db": round(float(avg.mean()), 3), "ssim": round(float(ssim(fused, clean).mean()), 4),
            "gain_over_one_frame": mean_difference(rec, one), "gain_over_frame_average": mean_difference(rec, avg)}
