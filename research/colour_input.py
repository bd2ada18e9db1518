"""Colour frames (issue 24: "evaluate on colour input too ... at least show that colour frames are converted the way
training saw them, and that the result does not depend on it").

The LFW copy here is grey (one channel, "re-encoded in grey"), and no colour face set is on this machine; the colour
faces at hand are the two public-domain portraits that the installed libraries ship (Grace Hopper, matplotlib's
``grace_hopper.jpg``; Eileen Collins, scikit-image's ``astronaut.png``). Two people are no evaluation of accuracy;
what they can show, measured on the product's own path (``ProbePath``, the installed bundle):

1. **The conversion.** The product turns a colour frame grey once (``vision.frames.to_grey``: ITU-R BT.601 luma,
   0.299 R + 0.587 G + 0.114 B). A JPEG stores exactly that luma as its Y channel (JFIF), and a grey re-encoding of a
   colour JPEG keeps it (libjpeg's own grey decoding returns Y). So for each portrait written as a colour JPEG
   (quality 90, 4:2:0 chroma as CCTV exports are), the product's grey of the decoded colour frame against the JPEG
   decoder's grey of the same file: the grey levels' difference.
2. **Whether the result depends on it.** Each portrait enrolled as the product enrols a colour photograph, then
   degraded in colour at clean / mild / severe (``vision.degrade``, the evaluation's levels, ``--seeds`` seeds each)
   and searched as: the colour frame (the product), its BT.601 grey (must be the same to the last bit), other grey
   conversions an export tool might have used (BT.709 luma, the mean of the channels, the green channel), and the
   portrait made grey first and degraded in grey (as the evaluation's grey LFW frames are). For each: the joined
   similarity to the person's own gallery entry and to the other person's, the match probability, decisions at 0.5
   that differ from the colour frame's, and faces not found. Beside it, the spread of the same-person similarity over
   the seeds (how much a different draw of the same degradation moves it), for scale.
3. **The clips' detector** (YuNet, which takes colour): its detection on the colour frame against the same frame's
   grey, repeated in three channels (as the evaluation's synthetic clips give it): the face found or not, box IoU,
   mean landmark distance in pixels.

Prints JSON; asserts nothing.

    .venv/bin/python -m research.colour_input [--seeds 30] > research/colour_input.json
"""

from __future__ import annotations

import argparse
import json
import sys

import cv2
import numpy as np

from forensic_face.core.errors import NoFaceFoundError
from forensic_face.engine.inference import FaceEngine
from forensic_face.engine.probe import ProbePath
from forensic_face.vision.degrade import EVAL_LEVELS, degrade
from forensic_face.vision.detect import FaceDetector
from forensic_face.vision.frames import decode_image_bytes, to_grey
from forensic_face.vision.track import box_iou
from forensic_face.vision.yunet import YuNetDetector


def portraits() -> dict[str, np.ndarray]:
    """The two colour portraits (RGB uint8), as the installed libraries ship them."""
    import matplotlib.cbook as cbook
    import skimage.data

    hopper = cv2.cvtColor(cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))),
                          cv2.COLOR_BGR2RGB)
    return {"Grace Hopper": hopper, "Eileen Collins": skimage.data.astronaut()}


def conversions(rgb: np.ndarray) -> dict[str, np.ndarray]:
    """A colour frame as the product takes it and as other grey conversions would have given it."""
    f = rgb.astype(np.float32)

    def u8(x: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(x), 0, 255).astype(np.uint8)

    return {"colour frame (product)": rgb, "BT.601 grey": to_grey(rgb),
            "BT.709 grey": u8(0.2126 * f[..., 0] + 0.7152 * f[..., 1] + 0.0722 * f[..., 2]),
            "channel mean": u8(f.mean(axis=2)), "green channel": rgb[..., 1].copy()}


def jpeg_luma(rgb: np.ndarray) -> dict:
    """The product's grey of a colour JPEG's decoded frame against the decoder's own grey (its Y channel)."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    data = buf.tobytes()
    product = to_grey(decode_image_bytes(data, suffix=".jpg").image)
    y = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    d = np.abs(product.astype(np.int16) - y.astype(np.int16))
    return {"pixels": int(d.size), "max_abs_grey_levels": int(d.max()),
            "mean_abs_grey_levels": round(float(d.mean()), 4), "share_equal": round(float((d == 0).mean()), 4),
            "share_within_1": round(float((d <= 1).mean()), 4)}


def yunet_agreement(detector: YuNetDetector, rgb: np.ndarray) -> dict | None:
    """YuNet on the colour frame against on its grey in three channels; None when neither finds a face."""
    a, b = detector.detect(rgb), detector.detect(to_grey(rgb))
    if not a and not b:
        return None
    if not a or not b:
        return {"found_colour": bool(a), "found_grey": bool(b)}
    da, db = a[0], b[0]
    marks = float(np.linalg.norm(np.asarray(da.landmarks) - np.asarray(db.landmarks), axis=1).mean())
    return {"found_colour": True, "found_grey": True, "iou": box_iou(da.box, db.box), "landmarks_px": marks,
            "face_px": float(da.width)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=30)
    args = ap.parse_args()
    engine = FaceEngine(device="cpu")
    path = ProbePath(engine, FaceDetector())
    yunet = YuNetDetector()
    faces = portraits()
    names = list(faces)
    gallery = np.stack([path.embed_faces([path.face(faces[n])])[0] for n in names])
    out: dict = {"models": engine.info.version, "precision": engine.info.params["precision"], "seeds": args.seeds,
                 "portraits": {n: list(faces[n].shape) for n in names}, "jpeg_luma": {}, "levels": {}}
    for n in names:
        out["jpeg_luma"][n] = jpeg_luma(faces[n])
    for level in EVAL_LEVELS:
        rows: dict = {}
        missed: dict = {}
        yunet_rows = []
        for k, n in enumerate(names):
            for seed in range(args.seeds):
                colour = degrade(faces[n], level, seed=seed)
                variants = conversions(colour)
                variants["grey first, then degraded"] = degrade(to_grey(faces[n]), level, seed=seed)
                for name, img in variants.items():
                    try:
                        probe = path.run(img)
                    except NoFaceFoundError:
                        missed[name] = missed.get(name, 0) + 1
                        continue
                    sims = gallery @ probe.embedding
                    p = engine.calibration.probability(sims, probe.face.quality.sharpness)
                    rows.setdefault(name, []).append((n, seed, float(sims[k]), float(sims[1 - k]), float(p[k]),
                                                      float(p[1 - k])))
                yunet_rows.append(yunet_agreement(yunet, colour))
        base = {(r[0], r[1]): r for r in rows["colour frame (product)"]}
        level_out: dict = {}
        for name, all_rs in rows.items():
            rs = [r for r in all_rs if (r[0], r[1]) in base]  # found in both
            b = [base[(r[0], r[1])] for r in rs]
            same = np.array([r[2] for r in rs])
            level_out[name] = {
                "same_person_similarity_mean": round(float(same.mean()), 4),
                "same_person_similarity_sd_over_seeds": round(float(np.mean(
                    [np.std([r[2] for r in rs if r[0] == n]) for n in names])), 4),
                "abs_change_same_person_similarity": {
                    "mean": round(float(np.mean([abs(r[2] - q[2]) for r, q in zip(rs, b, strict=True)])), 4),
                    "max": round(float(np.max([abs(r[2] - q[2]) for r, q in zip(rs, b, strict=True)])), 4)},
                "abs_change_match_probability_max": round(float(np.max(
                    [max(abs(r[4] - q[4]), abs(r[5] - q[5])) for r, q in zip(rs, b, strict=True)])), 4),
                "same_person_accepted": int(sum(r[4] >= 0.5 for r in rs)),
                "other_person_accepted": int(sum(r[5] >= 0.5 for r in rs)),
                "decisions_differing_from_colour_frame": int(sum(
                    ((r[4] >= 0.5) != (q[4] >= 0.5)) + ((r[5] >= 0.5) != (q[5] >= 0.5))
                    for r, q in zip(rs, b, strict=True))),
                "searches": len(rs), "no_face_found": missed.get(name, 0),
            }
        found = [r for r in yunet_rows if r is not None]
        both = [r for r in found if r.get("found_colour") and r.get("found_grey")]
        level_out["yunet_colour_against_grey"] = {
            "frames": len(yunet_rows), "found_colour": sum(r["found_colour"] for r in found),
            "found_grey": sum(r["found_grey"] for r in found),
            "iou_min": round(min((r["iou"] for r in both), default=float("nan")), 4),
            "iou_mean": round(float(np.mean([r["iou"] for r in both])) if both else float("nan"), 4),
            "landmarks_px_mean": round(float(np.mean([r["landmarks_px"] for r in both])) if both else float("nan"), 3),
            "landmarks_px_max": round(max((r["landmarks_px"] for r in both), default=float("nan")), 3),
            "face_px_median": round(float(np.median([r["face_px"] for r in both])) if both else float("nan"), 1)}
        out["levels"][level] = level_out
        print(level, json.dumps({k: v for k, v in level_out.items() if k != "yunet_colour_against_grey"}),
              file=sys.stderr, flush=True)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
