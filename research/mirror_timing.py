"""What the mirror image and a companion cost per face on the CPU: a bundle's recogniser on one face and on the face
with its mirror image, its autoencoder, and (with ``--companion``) another bundle's recogniser of the 64 px crop on
one face and with its mirror; one torch thread, rounds interleaved so that a busy machine slows them alike, the
median of the rounds' medians (ms).

    .venv/bin/python -m research.mirror_timing [--models resources/models] [--companion /tmp/prev/resources/models]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from forensic_face.engine.inference import FaceEngine
from forensic_face.models.bundle import load_networks
from forensic_face.paths import models_dir


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=models_dir())
    ap.add_argument("--companion", type=Path, help="a bundle whose recogniser takes the autoencoder's crop")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(1)
    ae, rec, meta = load_networks(args.models, torch.device("cpu"))
    run, size, rec_size = rec.for_inference(), int(meta["ae"]["size"]), int(meta["rec"]["size"])
    face, small = torch.rand(1, 1, rec_size, rec_size), torch.rand(1, 1, size, size)
    forms = {"recogniser_once": lambda: run(face),
             "recogniser_with_mirror": lambda: run(torch.cat([face, torch.flip(face, dims=[3])])),
             "autoencoder": lambda: ae(small, None)}
    if args.companion:
        comp = load_networks(args.companion, torch.device("cpu"))[1].for_inference()
        forms |= {"companion_once": lambda: comp(small),
                  "companion_with_mirror": lambda: comp(torch.cat([small, torch.flip(small, dims=[3])]))}
    with torch.inference_mode():
        print(json.dumps(interleaved_ms(forms, args.rounds, args.repeats, digits=2), indent=2))
    return 0


def engine_timing_args(doc: str, rounds: int) -> tuple[argparse.Namespace, FaceEngine, FaceEngine]:
    """The command line of a timing script of the engine (``--models``, ``--rounds``, ``--repeats``) and the
    engines it compares: one call at a time (parallel 1) and two (parallel 2)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=models_dir())
    ap.add_argument("--rounds", type=int, default=rounds)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    return args, FaceEngine(args.models, device="cpu", parallel=1), FaceEngine(args.models, device="cpu", parallel=2)


def interleaved_ms(forms: dict, rounds: int, repeats: int, digits: int = 1) -> dict[str, float]:
    """Each of ``forms`` (name -> call) timed ``repeats`` times per round, the forms taking turns round by round
    so that a busy machine slows them alike: the median of the rounds' medians, ms."""
    times: dict[str, list[float]] = {k: [] for k in forms}
    for _ in range(rounds):
        for name, call in forms.items():
            one = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                call()
                one.append(time.perf_counter() - t0)
            times[name].append(statistics.median(one))
    return {k: round(1000 * statistics.median(v), digits) for k, v in times.items()}


if __name__ == "__main__":
    raise SystemExit(main())
