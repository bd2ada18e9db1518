"""SFace as it is, in torch (forensic_face.models.sface), on LFW View 1 DevTest: the figures issue 24 starts from.

Gallery: each pair's first image, clean, the face the project's face cache finds on it (``build_face_cache`` on
the DevTest images: the detector cascade, the most central face, the LFW centre box when none). Probe: the
second image degraded at each of ``EVAL_LEVELS`` with the pair's index as seed (as the evaluation's probe step
does), the detector cascade on the degraded frame, the most central face or the centre box. Both aligned with
``AlignSpec(size=112, mode="arcface")``; the grey LFW crop is replicated to three channels. Cosine of the
embeddings; verification accuracy at a threshold chosen by 10-fold cross-validation (pair k in fold k % 10),
ROC-AUC with DeLong's 95 % interval; "flip": the embedding of the face plus that of its mirror image. Then the
time per face of the torch module and of OpenCV's DNN on the ONNX file, batch 1 and 32, medians.

    nice .venv/bin/python -m research.sface_devtest --weights sface.pt [--pairs N] [--threads 1] [--flip]

``--weights``: the state dict of ``forensic_face/training/sface_onnx.py``. Detections are cached in ``--work``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from forensic_face.models.sface import load_sface
from forensic_face.paths import shared_data_dir
from forensic_face.training.evaluate import identification_sets
from forensic_face.training.lfw import FolderIndex, Pair, _centre_box, _most_central, build_face_cache, index_folder
from forensic_face.training.metrics import auc_interval, roc_curve
from forensic_face.training.sface_onnx import default_onnx_path
from forensic_face.training.split import make_split
from forensic_face.vision.align import ARCFACE_TEMPLATE_112, AlignSpec, align_face, similarity_fit, warp_to_crop
from forensic_face.vision.degrade import EVAL_LEVELS, degrade
from forensic_face.vision.detect import FaceDetection, FaceDetector

SPEC = AlignSpec(size=112, mode="arcface")


def _detection(box: np.ndarray, marks: np.ndarray, method: str) -> FaceDetection:
    return FaceDetection(box=tuple(float(v) for v in box), score=float("nan"), method=str(method),
                         landmarks=marks.astype(np.float32) if np.any(marks) else None)


def aligned(frame: np.ndarray, det: FaceDetection, how: str) -> tuple[np.ndarray, str]:
    """The 112-px crop and how it was aligned. ``arcface``: the product's five-point mode; ``naive``: dlib's eye
    centres and nose point fitted to the template's eyes and nose tip, as if dlib's nose were the tip."""
    if how == "naive" and det.landmarks is not None:
        left, right = det.eye_centres()
        m = similarity_fit(np.stack([left, right, det.landmarks[4]]), ARCFACE_TEMPLATE_112[:3])
        return warp_to_crop(frame, m, 112), "three-point"
    face = align_face(frame, det, SPEC)
    return face.image, face.method


def gallery_crops(index: FolderIndex, pairs: list[Pair], how: str) -> tuple[np.ndarray, list[str]]:
    """Aligned clean crops of every pair's first image, from the face cache of those images."""
    paths = sorted({p.a for p in pairs})
    sub = FolderIndex(index.root, paths, [p.split("/")[0] for p in paths])
    cache = build_face_cache(sub, with_teacher=False, workers=1)
    row = {p: i for i, p in enumerate(paths)}
    crops, methods = [], []
    for p in pairs:
        i = row[p.a]
        grey = cv2.imread(str(index.root / p.a), cv2.IMREAD_GRAYSCALE)
        crop, method = aligned(grey, _detection(cache["boxes"][i], cache["landmarks"][i], cache["method"][i]), how)
        crops.append(crop)
        methods.append(method)
    return np.stack(crops), methods


def _frame(index: FolderIndex, pair: Pair, seed: int, level: str) -> np.ndarray:
    grey = cv2.imread(str(index.root / pair.b), cv2.IMREAD_GRAYSCALE)
    return grey if level == "clean" else degrade(grey, level, seed=seed)


def probe_detections(index: FolderIndex, pairs: list[Pair], seeds: list[int], level: str, work: Path) -> dict:
    """The detection on every pair's second image degraded at ``level`` (seed: the pair's index in DevTest):
    the most central face, or the LFW centre box when the cascade finds none; cached in ``work``."""
    path = work / f"detections-{level}-{len(pairs)}-{seeds[-1]}.npz"
    if path.is_file():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    detector = FaceDetector()
    dets, found = [], []
    for k, p in zip(seeds, pairs, strict=True):
        frame = _frame(index, p, k, level)
        faces = detector.detect(frame)
        dets.append(_most_central(faces, frame.shape) if faces else detector.from_box(frame, _centre_box(frame.shape)))
        found.append(bool(faces))
    out = {"boxes": np.array([d.box for d in dets]), "method": np.array([d.method for d in dets]),
           "landmarks": np.array([np.zeros((5, 2)) if d.landmarks is None else d.landmarks for d in dets]),
           "found": np.array(found)}
    work.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def probe_crops(index: FolderIndex, pairs: list[Pair], seeds: list[int], level: str, work: Path,
                how: str) -> tuple[np.ndarray, dict]:
    """Aligned crops of the degraded probes, and what the detector and the alignment did."""
    d = probe_detections(index, pairs, seeds, level, work)
    crops, methods = [], []
    for j, (k, p) in enumerate(zip(seeds, pairs, strict=True)):
        det = _detection(d["boxes"][j], d["landmarks"][j], d["method"][j])
        crop, method = aligned(_frame(index, p, k, level), det, how)
        crops.append(crop)
        methods.append(method)
    info = {"faces_found": int(d["found"].sum()),
            "detector_methods": {str(m): int((d["method"] == m).sum()) for m in np.unique(d["method"])},
            "aligned_by": {m: methods.count(m) for m in sorted(set(methods))}}
    return np.stack(crops), info


def to_input(crops: np.ndarray) -> torch.Tensor:
    """(N, 112, 112) grey uint8 -> (N, 3, 112, 112) float 0..255, the grey replicated to R, G and B."""
    return torch.from_numpy(np.repeat(crops[:, None].astype(np.float32), 3, axis=1))


@torch.inference_mode()
def embed(net, crops: np.ndarray, flip: bool, batch: int = 1) -> np.ndarray:
    out = []
    for i in range(0, len(crops), batch):
        x = to_input(crops[i:i + batch])
        e = net(x) if not flip else net(x) + net(torch.flip(x, dims=[3]))
        out.append(torch.nn.functional.normalize(e, dim=1))
    return torch.cat(out).numpy()


def net_tag(net) -> str:
    """A short digest of the network's weights (names the per-pair score files, for paired tests)."""
    import hashlib

    h = hashlib.sha256()
    for v in net.state_dict().values():
        h.update(v.detach().numpy().tobytes())
    return h.hexdigest()[:12]


def cv_accuracy(scores: np.ndarray, same: np.ndarray, folds: int = 10) -> tuple[float, float]:
    """Mean and standard deviation over folds of the accuracy at the threshold best on the other folds."""
    fold = np.arange(len(scores)) % folds
    accs = []
    for f in range(folds):
        fit = fold != f
        _, _, thr = roc_curve(scores[fit], same[fit])
        best = thr[int(np.argmax([((scores[fit] >= t) == same[fit]).mean() for t in thr]))]
        accs.append(((scores[~fit] >= best) == same[~fit]).mean())
    return float(np.mean(accs)), float(np.std(accs))


def _median_ms(fn, reps: int, per: int) -> float:
    fn()  # warm
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000 / per)
    return round(float(np.median(times)), 2)


def timing(net, crops: np.ndarray, reps: int = 25) -> dict:
    """Median ms per face, torch and OpenCV's DNN, batch 1 and 32 (the threads as set)."""
    dnn = cv2.dnn.readNetFromONNX(str(default_onnx_path()))
    x32 = to_input(crops[:32])
    blob32 = np.ascontiguousarray(x32.numpy())
    out = {}
    with torch.inference_mode():
        out["torch_batch1"] = _median_ms(lambda: net(x32[:1]), reps, 1)
        out["torch_batch32"] = _median_ms(lambda: net(x32), max(3, reps // 5), 32)
    for name, blob, per in (("opencv_dnn_batch1", blob32[:1], 1), ("opencv_dnn_batch32", blob32, 32)):
        def run(blob=blob):
            dnn.setInput(blob)
            return dnn.forward()
        try:
            out[name] = _median_ms(run, reps if per == 1 else max(3, reps // 5), per)
        except cv2.error as exc:  # the graph's batch dimension is fixed at 1 in the file
            out[name] = f"failed: {str(exc).splitlines()[-1][:120]}"
    return out


def rank_one(gal: np.ndarray, probe: np.ndarray, pairs: list[Pair]) -> dict:
    """Closed-set rank-1 of the evaluation's identification sets (``identification_sets``: one clean image per
    DevTest person, the first ``a`` image; probes: the pairs' ``b`` images of enrolled people, another image)."""
    sets = identification_sets(pairs)
    row = {p.a: k for k, p in enumerate(pairs)}
    g = gal[[row[path] for path in sets.gallery_paths]]
    sims = probe[sets.closed] @ g.T
    top1 = sims.argmax(1) == sets.truth
    return {"rank_1": round(float(top1.mean()), 4), "searches": int(top1.size), "gallery": len(g)}


def measure(net, index: FolderIndex, pairs: list[Pair], seeds: list[int], work: Path, how: str,
            flips: tuple[bool, ...]) -> dict:
    same = np.array([p.same for p in pairs])
    gallery, gal_methods = gallery_crops(index, pairs, how)
    report: dict = {"pairs": len(pairs), "matched": int(same.sum()), "alignment": how,
                    "gallery_aligned_by": {m: gal_methods.count(m) for m in sorted(set(gal_methods))}, "levels": {}}
    for flip in flips:
        gal = embed(net, gallery, flip)
        for level in EVAL_LEVELS:
            crops, info = probe_crops(index, pairs, seeds, level, work, how)
            probe = embed(net, crops, flip)
            scores = (gal * probe).sum(1)
            acc, sd = cv_accuracy(scores, same)
            auc, lo, hi = auc_interval(scores, same)
            lev = report["levels"].setdefault(level, info)
            lev["flip" if flip else "as_is"] = {"accuracy_10fold": round(acc, 4), "accuracy_sd": round(sd, 4),
                                                "roc_auc": round(auc, 4), "roc_auc_95": [round(lo, 4), round(hi, 4)],
                                                "search": rank_one(gal, probe, pairs)}
            np.save(work / f"scores-{'flip' if flip else 'as_is'}-{level}-{net_tag(net)}.npy", scores)
    report["timing_ms_per_face"] = timing(net, gallery)
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, required=True, help="state dict from forensic_face/training/sface_onnx.py")
    ap.add_argument("--pairs", type=int, default=0, help="only the first N matched and N mismatched pairs (0: all)")
    ap.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads")
    ap.add_argument("--work", type=Path, default=Path("/tmp/sface_devtest"), help="detection cache")
    ap.add_argument("--out", type=Path, help="write the report here as JSON")
    ap.add_argument("--align", choices=("arcface", "naive"), default="arcface", help="see aligned()")
    ap.add_argument("--flip", action="store_true", help="also the flip-averaged embedding")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    index = index_folder(shared_data_dir() / "lfw")
    devtest = make_split(index, 0).test_pairs
    seeds = list(range(len(devtest)))
    if args.pairs:
        seeds = ([k for k in seeds if devtest[k].same][:args.pairs]
                 + [k for k in seeds if not devtest[k].same][:args.pairs])
    t0 = time.perf_counter()
    report = measure(load_sface(args.weights), index, [devtest[k] for k in seeds], seeds, args.work, args.align,
                     (False, True) if args.flip else (False,))
    report |= {"threads": args.threads, "seconds": round(time.perf_counter() - t0, 1)}
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
