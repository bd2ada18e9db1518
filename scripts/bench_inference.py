"""A/B of the engine's inference forms on the CPU: the networks as stored against the forms the engine
runs (the recogniser's ``for_inference()``: its batch norms folded; channels-last layout), one face (the
recogniser sees it, in its own crop size, with its mirror image, as ``FaceEngine.embed`` does). Rounds
alternate between the forms so that a busy machine slows them alike; each figure is the median of its rounds'
medians.

    .venv/bin/python scripts/bench_inference.py [--models resources/models] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import torch

from forensic_face.models.bundle import load_networks
from forensic_face.models.sface import SFaceNet
from forensic_face.paths import models_dir


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=str(models_dir()))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ae, rec, meta = load_networks(Path(args.models), torch.device("cpu"))
    size, rec_size = int(meta["ae"]["size"]), int(meta["rec"]["size"])
    x = torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(0))
    face = torch.rand(1, 1, rec_size, rec_size, generator=torch.Generator().manual_seed(1))
    pair = torch.cat([face, torch.flip(face, dims=[3])])
    cl = torch.channels_last
    # the recogniser as stored, given the engine's grey 0..1 faces (SFace takes RGB 0..255: the grey in each channel)
    stored = (lambda t: rec(t.expand(-1, 3, -1, -1) * 255.0)) if isinstance(rec, SFaceNet) else rec
    engine_form = rec.for_inference()
    forms = {
        "autoencoder, as stored": (ae, x),
        "autoencoder, channels-last": (copy.deepcopy(ae).to(memory_format=cl), x),
        "recogniser, as stored": (stored, pair),
        "recogniser, batch norms folded": (engine_form, pair),
        "recogniser, folded, channels-last": (copy.deepcopy(engine_form).to(memory_format=cl), pair),
    }
    times = {k: [] for k in forms}
    with torch.inference_mode():
        ref_e, ref_r = stored(pair), ae(x)
        for name, (net, inp) in forms.items():
            ref = ref_r if name.startswith("auto") else ref_e
            print(f"{name}: largest difference from the stored network {float((net(inp) - ref).abs().max()):.2e}")
        for _ in range(args.rounds):
            for name, (net, inp) in forms.items():
                for _ in range(3):
                    net(inp)
                t = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    net(inp)
                    t.append((time.perf_counter() - t0) * 1000)
                times[name].append(statistics.median(t))
    print(f"{args.threads} threads, {args.rounds} rounds of {args.repeats}")
    for name, v in times.items():
        print(f"{name:36s} {statistics.median(v):6.2f} ms   rounds {', '.join(f'{a:.2f}' for a in v)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
