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
    rounds: dict[str, list[float]] = {k: [] for k in forms}
    with torch.inference_mode():
        for _ in range(args.rounds):
            for name, call in forms.items():
                times = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    call()
                    times.append(time.perf_counter() - t0)
                rounds[name].append(statistics.median(times))
    print(json.dumps({k: round(1000 * statistics.median(v), 2) for k, v in rounds.items()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
