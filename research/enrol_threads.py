"""Where enrolment's time goes on two threads: the face step (decode done, detect, align, grey, quality) and the
embedding of faces in calls of ``EMBED_CHUNK``, each timed on one thread and on two threads at once (the bench's
generated 250x250 faces), to see which part the second core speeds up.

    FORENSIC_FACE_PRECISION=float32 .venv/bin/python -m research.enrol_threads [--images 40] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
from skimage import data

from forensic_face.engine.inference import FaceEngine
from forensic_face.engine.probe import ProbePath
from forensic_face.services.enrolment import EMBED_CHUNK
from forensic_face.vision.detect import FaceDetector


def per_item_ms(work, items: list, threads: int) -> float:
    t0 = time.perf_counter()
    if threads == 1:
        for item in items:
            work(item)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, items))
    return (time.perf_counter() - t0) / len(items) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    engine = FaceEngine()
    path = ProbePath(engine, FaceDetector())
    face = cv2.resize(data.astronaut()[:400, 56:456], (250, 250), interpolation=cv2.INTER_AREA)
    images = [np.clip(face.astype(np.int16) + np.random.default_rng(i).integers(-15, 15, face.shape), 0, 255)
              .astype(np.uint8) for i in range(args.images)]
    faces = [path.face(im) for im in images]  # also the warm-up
    chunks = [faces[i:i + EMBED_CHUNK] for i in range(0, len(faces) - EMBED_CHUNK + 1, EMBED_CHUNK)]
    path.embed_faces(chunks[0])
    out: dict[str, list[float]] = {k: [] for k in ("face_step_1", "face_step_2", "embed_1", "embed_2")}
    for _ in range(args.rounds):
        for threads in (1, 2):
            out[f"face_step_{threads}"].append(round(per_item_ms(path.face, images, threads), 1))
            per_chunk = per_item_ms(path.embed_faces, chunks, threads)
            out[f"embed_{threads}"].append(round(per_chunk / EMBED_CHUNK, 1))
    print(json.dumps({"precision": engine.info.params["precision"], "chunk": EMBED_CHUNK,
                      "ms_per_image_by_threads": out}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
