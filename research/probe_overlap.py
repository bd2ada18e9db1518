"""What sharing one probe's network passes between two cores gains (``FaceEngine.probe``): the shipped join on a
sharp probe (companion share 0: the autoencoder and the recogniser's two passes) and a blurred one (share above 0:
the companion's two passes too), with audio, through ``probe`` (the passes shared out between the caller's thread and
the engine's second thread) against the engine's calls in turn (``reconstruct`` then ``embed_searched``: the
recogniser's two passes at once, the rest one after the other) and against ``probe`` with one call allowed at once
(everything in turn on one core); rounds interleaved so that a busy machine slows them alike, the median of the
rounds' medians (ms), and each network's pass alone. Run it quiet and with load beside it.

    .venv/bin/python -m research.probe_overlap [--models resources/models]
"""

from __future__ import annotations

import json

import numpy as np
import torch

from research.mirror_timing import engine_timing_args, interleaved_ms

#: the probes' sharpness (variance of the Laplacian): q = log(1 + s) 1.8, below the join's ramp, and 8.5, above it
BLURRED, SHARP = 5.0, 5000.0


def main() -> int:
    args, one, two = engine_timing_args(__doc__, rounds=7)
    rng = np.random.default_rng(0)
    face = rng.integers(0, 256, (two.size, two.size), dtype=np.uint8)
    found = rng.integers(0, 256, (two.rec_size, two.rec_size), dtype=np.uint8)
    audio = rng.random(two.audio_dim).astype(np.float32)

    def in_turn(s: float) -> None:
        two.embed_searched(found[None], two.reconstruct(face[None], audio), sharpness=np.array([s]))

    x = torch.from_numpy(face[None, None] / np.float32(255))
    f = torch.from_numpy(found[None, None] / np.float32(255))
    a = torch.from_numpy(audio[None])
    forms = {f"{kind}_{how}": call for kind, s in (("sharp", SHARP), ("blurred", BLURRED)) for how, call in (
        ("shared", lambda s=s: two.probe(found, face, audio, s)),
        ("in_turn", lambda s=s: in_turn(s)),
        ("one_core", lambda s=s: one.probe(found, face, audio, s)))}
    with torch.inference_mode():
        forms |= {"autoencoder_pass": lambda: two._ae_run(x, a), "recogniser_pass": lambda: two._rec_run(f)}
        if two.companion is not None:
            forms["companion_pass"] = lambda: two._comp_run(x)
        figures = interleaved_ms(forms, args.rounds, args.repeats, digits=1)
    print(json.dumps({"models": two.info.version, "share_blurred": float(two.companion.probe_weights(BLURRED)[0])
                      if two.companion is not None else None} | figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
