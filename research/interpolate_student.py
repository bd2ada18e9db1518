"""The shipped student moved back towards its teacher in weight space (WiSE-FT: Wortsman et al., 'Robust
fine-tuning of zero-shot models', 2022): theta(a) = a * teacher + (1 - a) * student for every tensor of the
state dict (the frozen stem and blocks are equal in both; batch-norm statistics are SFace's in both).

    .venv/bin/python -m research.interpolate_student --share 0.2 --out runs/interp-0.2/student.pt \
        [--models resources/models]

The student is the installed bundle's recogniser (or ``--student``, a tuning checkpoint); the teacher is SFace as
published, converted from ``../shared/weights`` (research only: the product never reads it). Scored by
``research.student_heldout``. The product's own command for the same: ``forensic-face tune-sface --teacher-share``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from forensic_face.engine.inference import FaceEngine
from forensic_face.models.sface import SFaceNet
from forensic_face.training.distil import toward_teacher
from forensic_face.training.sface_onnx import convert, default_onnx_path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--share", type=float, required=True, help="the teacher's share a, 0 .. 1")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--models", type=Path, default=Path("resources/models"))
    ap.add_argument("--student", type=Path, help="a tuning checkpoint (student.ckpt) or state dict to move instead "
                    "of the installed bundle's recogniser")
    args = ap.parse_args()
    if args.student:
        state = torch.load(args.student, map_location="cpu", weights_only=True)
        state = state.get("student", state)
    else:
        state = FaceEngine(args.models, device="cpu").rec.state_dict()  # float16 as the bundle stores it
    student = SFaceNet()
    student.load_state_dict(state)  # copied into the network's float32 tensors
    teacher = SFaceNet()
    teacher.load_state_dict(convert(default_onnx_path()))
    a = args.share
    mixed = toward_teacher(student, teacher, a).state_dict()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(mixed, args.out)
    # the bundle stores float16: a tensor the tuning left alone there equals the teacher's rounded to float16
    t, s = teacher.state_dict(), student.state_dict()
    same = sum(any(torch.equal(w, v) for w in (t[k], t[k].half().float()))
               for k, v in s.items() if v.is_floating_point())
    print(f"{args.out}: teacher share {a:g}; {same} of {len(s)} tensors equal in both (to float16)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
