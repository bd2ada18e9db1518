"""What running the recogniser as a frozen TorchScript graph gains on the CPU (``engine.inference.cpu_graph``):
the shipped bundle's recogniser as stored for inference (batch norms folded, eager) against the graph the engine
runs, one torch thread, batches of 1 and 2 faces, rounds interleaved (the median of the rounds' medians, ms), and
the largest difference of their embeddings on random faces; the companion made a graph the same way; then whole probes
through ``FaceEngine.probe`` (a sharp one and a blurred one, as research/probe_overlap.py makes them) by an engine
running the graph and one running the eager recogniser. In bfloat16 (``FaceEngine(precision="bfloat16")``):
the recogniser's and the companion's graphs, their largest cosine distance from float32's embeddings, and probes
by an engine in bfloat16. Run it quiet and with load beside it. ``--enrol N``: instead, N rounds of the bench's
enrolment (``services.bench.bench_enrol``, 60 faces, the installed models) with the float32 graph, eager and in
bfloat16 in turn, faces per second.

    .venv/bin/python -m research.cpu_graph [--models resources/models] [--enrol 3]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

from forensic_face.engine.inference import PRECISION_ENV, FaceEngine, cpu_graph
from research.mirror_timing import interleaved_ms
from research.probe_overlap import BLURRED, SHARP


def enrol_rounds(rounds: int) -> int:
    """The bench's enrolment rate with the recogniser's graph and without it (``SFaceNet.cpu_graph``), in turn."""
    from forensic_face.models.sface import SFaceNet
    from forensic_face.services.bench import bench_enrol

    rates: dict[str, list[float]] = {"graph": [], "eager": [], "bfloat16": []}
    before = os.environ.get(PRECISION_ENV)
    try:
        for _ in range(rounds):
            for name, flag, precision in (("graph", True, "float32"), ("eager", False, "float32"),
                                          ("bfloat16", True, "bfloat16")):
                SFaceNet.cpu_graph = flag
                os.environ[PRECISION_ENV] = precision
                rates[name].append(round(bench_enrol(60)["faces_per_s"], 1))
    finally:
        SFaceNet.cpu_graph = True
        if before is None:
            os.environ.pop(PRECISION_ENV, None)
        else:
            os.environ[PRECISION_ENV] = before
    print(json.dumps({"enrolment_faces_per_s": rates}))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=Path("resources/models"))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--enrol", type=int, default=0, help="rounds of the bench's enrolment, graph and eager in turn")
    args = ap.parse_args()
    if args.enrol:
        return enrol_rounds(args.enrol)
    torch.set_num_threads(1)
    engine = FaceEngine(args.models, device="cpu", precision="float32")
    half = FaceEngine(args.models, device="cpu", precision="bfloat16")
    eager = engine.rec.for_inference().eval()
    graph = cpu_graph(eager, engine.rec_size)
    rng = torch.Generator().manual_seed(0)
    faces = {b: [(torch.rand(b, 1, engine.rec_size, engine.rec_size, generator=rng),) for _ in range(4)]
             for b in (1, 2)}
    with torch.inference_mode():
        diff = max(float((graph(*f) - eager(*f)).abs().max()) for b in (1, 2) for f in faces[b])
    runs = {"recogniser eager": (eager, faces), "recogniser graph": (graph, faces),
            "recogniser bfloat16": (half._rec_run, faces)}
    small = {b: [(torch.rand(b, 1, engine.size, engine.size, generator=rng),) for _ in range(4)] for b in (1, 2)}
    cosine = {}
    with torch.inference_mode():
        def far(a, b, data) -> float:  # the largest cosine distance between two networks' embeddings
            return max(float(1 - torch.nn.functional.cosine_similarity(a(*f), b(*f)).min())
                       for n in (1, 2) for f in data[n])
        cosine["recogniser"] = far(half._rec_run, graph, faces)
    if engine.companion is not None:
        comp = engine._comp_run  # the graph the engine would make of it, were it marked cpu_graph
        runs |= {"companion eager": (comp, small), "companion graph": (cpu_graph(comp, engine.size), small),
                 "companion bfloat16": (half._comp_run, small)}
        with torch.inference_mode():
            cosine["companion"] = far(half._comp_run, comp, small)
    forms = {f"{name}, batch {b}": (lambda run=run, f=data[b][0]: run(*f)) for name, (run, data) in runs.items()
             for b in (1, 2)}
    plain = FaceEngine(args.models, device="cpu", precision="float32")
    plain._rec_run = eager  # the same engine with the recogniser as it ran before
    face = np.random.default_rng(0).integers(0, 256, (engine.size, engine.size), dtype=np.uint8)
    found = np.random.default_rng(1).integers(0, 256, (engine.rec_size, engine.rec_size), dtype=np.uint8)
    audio = np.random.default_rng(2).random(engine.audio_dim).astype(np.float32)
    for kind, s in (("sharp", SHARP), ("blurred", BLURRED)):
        for name, e in (("graph", engine), ("eager", plain), ("bfloat16", half)):
            forms[f"probe {kind}, {name}"] = lambda e=e, s=s: e.probe(found, face, audio, s)
    with torch.inference_mode():
        for call in forms.values():  # warm: the graphs specialise on their first calls of each shape
            for _ in range(8):
                call()
        figures = interleaved_ms(forms, args.rounds, 20, digits=2)
    print(json.dumps({"recogniser_max_abs_difference": diff, "bfloat16_max_cosine_distance": cosine,
                      "median_ms": figures}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
