"""The engine's CPU threads: torch's thread count chosen by measurement under load (inference.CPU_THREADS) and
recorded in every result's engine part, whatever torch's default was; calls from several threads (enrolment's
workers) run the networks at once, one per usable core, with the same results as alone."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch


def test_the_engine_runs_on_the_measured_thread_count_and_says_so(tiny_models: Path) -> None:
    from forensic_face.engine.inference import CPU_THREADS, FaceEngine

    torch.set_num_threads(2)
    engine = FaceEngine(tiny_models, device="cpu")
    assert torch.get_num_threads() == CPU_THREADS
    assert engine.info.as_dict()["torch_threads"] == CPU_THREADS


class _Watched(torch.nn.Module):
    """A network that counts how many calls run it at once (each call stays inside long enough for the others
    to arrive: the count, not the time, is checked)."""

    def __init__(self, net) -> None:
        super().__init__()
        self.net, self.running, self.most = net, 0, 0
        self._count = threading.Lock()

    def forward(self, x):
        with self._count:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.1)
            return self.net(x)
        finally:
            with self._count:
                self.running -= 1


@pytest.mark.parametrize("parallel", [1, 2])
def test_calls_from_several_threads_run_at_once_up_to_the_engines_limit_and_give_the_same_embeddings(
        tiny_models: Path, parallel: int) -> None:
    from forensic_face.engine.inference import FaceEngine

    engine = FaceEngine(tiny_models, device="cpu", parallel=parallel)
    faces = np.random.default_rng(0).integers(0, 256, (6, engine.rec_size, engine.rec_size), dtype=np.uint8)
    alone = [engine.embed(f[None]) for f in faces]
    engine._rec_run = watched = _Watched(engine._rec_run)
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda f: engine.embed(f[None]), faces))
    assert watched.most == parallel
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_engine_runs_one_call_per_usable_core_by_default(tiny_models: Path) -> None:
    from forensic_face.engine.inference import FaceEngine, usable_cores

    assert FaceEngine(tiny_models, device="cpu").parallel == usable_cores() >= 1


def test_a_face_and_its_mirror_image_run_side_by_side_when_a_core_is_free_with_the_same_embedding(
        tiny_sface_clip_models: Path) -> None:
    """The recogniser's pass over the mirror images runs beside the faces' pass when the engine may run another
    call (parallel 2, nothing else running), one after the other when not (parallel 1): the same numbers."""
    from forensic_face.engine.inference import FaceEngine

    one = FaceEngine(tiny_sface_clip_models, device="cpu", parallel=1)
    two = FaceEngine(tiny_sface_clip_models, device="cpu", parallel=2)
    assert one.mirror and two.mirror
    faces = np.random.default_rng(1).integers(0, 256, (3, two.rec_size, two.rec_size), dtype=np.uint8)
    for engine in (one, two):
        engine._rec_run = _Watched(engine._rec_run)
    a, b = one.embed(faces), two.embed(faces)
    assert (one._rec_run.most, two._rec_run.most) == (1, 2)
    np.testing.assert_array_equal(a, b)
    assert two.info.as_dict()["parallel_calls"] == 2
