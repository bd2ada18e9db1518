"""Enrolment throughput by the number of images a worker embeds in one call (``enroll_folder``'s ``chunk``):
``forensic-face bench``'s enrolment (generated 250x250 faces, decode, detect, align, embed, store into SQLite, the
default workers), rounds interleaved so that the machine's drift falls on every setting alike.

    FORENSIC_FACE_PRECISION=float32 .venv/bin/python -m research.enrol_chunk [--faces 120] [--rounds 3] [--chunks 1 4]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import cv2
import numpy as np
from skimage import data

from forensic_face.engine.inference import FaceEngine
from forensic_face.services.enrolment import enroll_folder
from forensic_face.store.gallery import open_gallery
from forensic_face.vision.detect import FaceDetector


def people(root: Path, n_faces: int) -> None:
    """The bench's faces: the astronaut portrait with seeded noise, three images a person."""
    face = cv2.resize(data.astronaut()[:400, 56:456], (250, 250), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    for i in range(n_faces):
        d = root / f"person_{i // 3:03d}"
        d.mkdir(parents=True, exist_ok=True)
        img = np.clip(face.astype(np.int16) + rng.integers(-15, 15, face.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(d / f"{i}.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=int, default=120)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--chunks", type=int, nargs="+", default=[1, 4])
    args = ap.parse_args()
    engine, detector = FaceEngine(), FaceDetector()
    out: dict[str, list[float]] = {str(k): [] for k in args.chunks}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "people"
        people(root, args.faces)
        with open_gallery(Path(tmp) / "warm.db", mode="create") as g:  # warm-up: graphs traced, caches filled
            enroll_folder(g, root, engine, detector, chunk=max(args.chunks))
        for r in range(args.rounds):
            for k in args.chunks:
                with open_gallery(Path(tmp) / f"g{r}-{k}.db", mode="create") as g:
                    rep = enroll_folder(g, root, engine, detector, chunk=k)
                out[str(k)].append(round(rep.enrolled / rep.seconds, 1))
                print(f"round {r + 1} chunk {k}: {out[str(k)][-1]} faces/s", flush=True)
    print(json.dumps({"precision": engine.info.params["precision"], "faces": args.faces,
                      "faces_per_s_by_chunk": out}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
