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


@pytest.mark.parametrize("share", [(0.2, 0.0), (0.3, 0.3)])
def test_a_probe_through_the_overlapped_networks_gives_what_the_calls_in_turn_give(
        tiny_joined_clip_models: Path, share: tuple[float, float]) -> None:
    """``FaceEngine.probe`` runs the autoencoder, the recogniser's mirror pass and the reconstruction without audio
    on the engine's second thread while this one runs the recogniser's face pass and the companion: the same
    reconstructions and searched embedding, bit for bit, as the engine's calls one after the other, for probes
    whose share leaves the companion out and for those it embeds, with and without audio; and with one permit
    (parallel 1) nothing overlaps."""
    from dataclasses import replace

    from forensic_face.engine.inference import FaceEngine

    rng = np.random.default_rng(3)
    for parallel in (1, 2):
        engine = FaceEngine(tiny_joined_clip_models, device="cpu", parallel=parallel)
        engine.companion = replace(engine.companion, probe_weight=share, quality_range=(3.0, 6.0))
        engine._rec_run = watched = _Watched(engine._rec_run)
        ae, ran_on = engine._ae_run, set()

        def noted(*args, ae=ae, ran_on=ran_on):
            ran_on.add(threading.current_thread().name.split("_")[0])
            return ae(*args)

        engine._ae_run = noted
        engine.probe(np.zeros((engine.rec_size,) * 2, np.uint8), np.zeros((engine.size,) * 2, np.uint8), None, 5.0)
        assert ran_on == ({"MainThread"} if parallel == 1 else {"engine-mirror"})
        for sharpness in (5.0, 2000.0):  # q = 1.8 (the blurred end) and 7.6 (the sharp end)
            found = rng.integers(0, 256, (engine.rec_size, engine.rec_size), dtype=np.uint8)
            face = rng.integers(0, 256, (engine.size, engine.size), dtype=np.uint8)
            audio = rng.random(engine.audio_dim).astype(np.float32)
            for voice in (None, audio):
                recon, bare, emb = engine.probe(found, face, voice, sharpness, plain=True)
                alone = engine.reconstruct(face[None], voice)
                np.testing.assert_array_equal(recon, alone[0])
                if voice is None:
                    assert bare is None
                else:
                    np.testing.assert_array_equal(bare, engine.reconstruct(face[None])[0])
                searched = engine.embed_searched(found[None], alone, sharpness=np.array([sharpness]))
                np.testing.assert_array_equal(emb, searched[0])
                assert engine.probe(found, face, voice, sharpness, plain=False)[1] is None
        assert watched.most == parallel  # the face's and the mirror image's passes at once only with two permits
