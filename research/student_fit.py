"""How well SFace students fit what they trained on against new people: the mean cosine of a student's embedding
of a degraded variant to the teacher's embedding of the clean face (SFace as published, flip-averaged: the
tuning's target), by the variant's level, on

- ``train``: a sample of the training people's images with the fixed variants ``tune-sface`` makes by default
  (seed 0, 3 per image: exactly the copies a fixed-variant student trained on; a fresh-variant student saw the
  images but never these copies);
- ``calibration_people``: as many of the calibration people's images (held out of all training) with variants
  made the same way.

A student that fits ``train`` far better than ``calibration_people`` has learnt its copies rather than the
degradation. Networks: the installed bundle's recogniser, SFace as published, and each ``--student`` (a tuning
checkpoint or a state dict). Float32, one thread.

    .venv/bin/python -m research.student_fit --student runs/sface-fresh/student.ckpt --out research/student_fit.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from forensic_face.engine.inference import FaceEngine
from forensic_face.models.sface import SFaceNet
from forensic_face.paths import shared_data_dir
from forensic_face.training.distil import _LEVEL_NAMES, DistilConfig, distil_crops, teacher_targets, to_rgb255
from forensic_face.training.sface_onnx import convert, default_onnx_path
from forensic_face.training.split import load_split_data


@torch.inference_mode()
def cosines(net: torch.nn.Module, crops: np.ndarray, level: np.ndarray, targets: np.ndarray) -> dict:
    """Mean cosine to the targets of the degraded variants (crops[:, 1:]) by level, and of the clean crops."""
    n, v = crops.shape[:2]
    flat = crops.reshape(n * v, *crops.shape[2:])
    e = torch.cat([F.normalize(net(to_rgb255(flat[i:i + 64])), dim=1) for i in range(0, n * v, 64)])
    cos = (e.reshape(n, v, -1) * torch.from_numpy(targets)[:, None]).sum(-1).numpy()
    out = {}
    for code in np.unique(level[:, 1:]):
        m = level == code
        m[:, 0] = False
        out[_LEVEL_NAMES[int(code)]] = round(float(cos[m].mean()), 4)
    return out | {"clean_crop": round(float(cos[:, 0].mean()), 4)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--student", type=Path, action="append", default=[])
    ap.add_argument("--images", type=int, default=600, help="images of each side (default: %(default)s)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    index, split, cache = load_split_data(shared_data_dir() / "lfw")
    people = np.array(index.people)
    readable = cache["method"] != "unreadable"
    sides = {}
    for name, group, seed in (("train", split.train_people, 1), ("calibration_people", split.calib_people, 2)):
        rows = np.nonzero(np.isin(people, sorted(group)) & readable)[0]
        rows = np.sort(np.random.default_rng(seed).choice(rows, min(args.images, len(rows)), replace=False))
        crops, level, ok = distil_crops(index, cache, rows, DistilConfig(), workers=1)
        sides[name] = crops[ok], level[ok]
    teacher = SFaceNet()
    teacher.load_state_dict(convert(default_onnx_path()))
    teacher.eval()
    targets = {name: teacher_targets(teacher, crops[:, 0]) for name, (crops, _) in sides.items()}
    nets = {"installed": FaceEngine(Path("resources/models"), device="cpu", precision="float32").rec.eval(),
            "sface_as_published": teacher}
    for path in args.student:
        state = torch.load(path, map_location="cpu", weights_only=True)
        nets[str(path)] = SFaceNet()
        nets[str(path)].load_state_dict(state.get("student", state))
        nets[str(path)].eval()
    out = {"images": {k: len(v[0]) for k, v in sides.items()}, "networks": {}}
    for name, net in nets.items():
        out["networks"][name] = {side: cosines(net, *sides[side], targets[side]) for side in sides}
        print(name, json.dumps(out["networks"][name]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
