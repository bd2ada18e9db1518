"""What running a face's and its mirror image's passes on two cores gains: the shipped recogniser on one face with
its mirror image, in one pass of two (the engine's former form), as two passes one after the other, as two passes at
once on two threads (``FaceEngine._both``), and through the engine (``FaceEngine.embed``) with one call or two
allowed at once; one torch thread per pass, rounds interleaved so that a busy machine slows them alike, the median
of the rounds' medians (ms). Run it quiet and with load beside it (``python3 -c "while True: pass" &``).

    .venv/bin/python -m research.mirror_split [--models resources/models]
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from research.mirror_timing import engine_timing_args, interleaved_ms


def main() -> int:
    args, one, two = engine_timing_args(__doc__, rounds=5)
    run, size = two._rec_run, two.rec_size
    face = torch.rand(1, 1, size, size)
    mirror = torch.flip(face, dims=[3])
    grey = (np.random.default_rng(0).random((1, size, size)) * 255).astype(np.uint8)
    pool = ThreadPoolExecutor(1)

    def at_once():
        other = pool.submit(_inference, run, mirror)
        return run(face), other.result()

    forms = {"one_pass_of_two": lambda: run(torch.cat([face, mirror])),
             "two_passes_one_after_the_other": lambda: (run(face), run(mirror)),
             "two_passes_at_once": at_once,
             "engine_embed_parallel_1": lambda: one.embed(grey),
             "engine_embed_parallel_2": lambda: two.embed(grey)}
    with torch.inference_mode():
        for call in forms.values():
            call()
        ms = interleaved_ms(forms, args.rounds, args.repeats)
    print(json.dumps({"torch_threads": torch.get_num_threads(), "version": two.info.version, **ms}, indent=2))
    return 0


def _inference(run, x):
    with torch.inference_mode():
        return run(x)


if __name__ == "__main__":
    raise SystemExit(main())
