"""On the CPU the engine runs SFace's recogniser as a frozen TorchScript graph (``inference.cpu_graph``): the
embeddings of the network as stored, to float rounding, at the batch sizes the engine uses, and every result says
how the recogniser ran. In bfloat16 (``precision``; the default where the CPU multiplies it natively) both
recognisers run as such graphs, with embeddings close to float32's, and every result says which arithmetic ran."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch


def test_the_sface_recogniser_runs_as_a_graph_with_the_stored_networks_embeddings(
        tiny_sface_clip_models: Path) -> None:
    from forensic_face.engine.inference import FaceEngine

    engine = FaceEngine(tiny_sface_clip_models, device="cpu", precision="float32")
    assert isinstance(engine._rec_run, torch.jit.ScriptModule)
    assert engine.info.as_dict()["recogniser_runs"] == "torchscript graph"
    assert engine.info.as_dict()["precision"] == "float32"
    faces = np.random.default_rng(3).integers(0, 256, (5, engine.rec_size, engine.rec_size), dtype=np.uint8)
    graph = engine.embed(faces)
    engine._rec_run = engine.rec.for_inference().eval()  # the network as stored, eager
    eager = engine.embed(faces)
    assert graph.shape == eager.shape == (5, 128)
    np.testing.assert_allclose(graph, eager, atol=1e-5)
    assert not np.array_equal(graph[0], graph[1])  # different faces, different embeddings


def test_where_no_graph_can_be_made_the_recogniser_runs_eager_and_the_result_says_so(
        tiny_sface_clip_models: Path, monkeypatch, caplog) -> None:
    from forensic_face.engine import inference

    def broken(*_a, **_k):
        raise RuntimeError("no TorchScript in this torch")

    monkeypatch.setattr(torch.jit, "trace", broken)
    engine = inference.FaceEngine(tiny_sface_clip_models, device="cpu", precision="float32")
    assert not isinstance(engine._rec_run, torch.jit.ScriptModule)
    assert engine.info.as_dict()["recogniser_runs"] == "eager"
    assert "could not be made" in caplog.text
    faces = np.random.default_rng(4).integers(0, 256, (2, engine.rec_size, engine.rec_size), dtype=np.uint8)
    assert engine.embed(faces).shape == (2, 128)


def test_the_projects_own_cnn_runs_eager_in_float32(tiny_models: Path) -> None:
    from forensic_face.engine.inference import FaceEngine

    engine = FaceEngine(tiny_models, device="cpu", precision="float32")
    assert engine.info.as_dict()["recogniser_runs"] == "eager"


def _faces(n: int, size: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size), dtype=np.uint8)


def test_in_bfloat16_both_recognisers_run_as_graphs_close_to_float32_and_the_result_says_so(
        tiny_joined_clip_models: Path) -> None:
    from forensic_face.engine.inference import FaceEngine

    half = FaceEngine(tiny_joined_clip_models, device="cpu", precision="bfloat16")
    full = FaceEngine(tiny_joined_clip_models, device="cpu", precision="float32")
    assert half.info.as_dict()["precision"] == "bfloat16" and full.info.as_dict()["precision"] == "float32"
    assert isinstance(half._rec_run, torch.jit.ScriptModule) and isinstance(half._comp_run, torch.jit.ScriptModule)
    assert not isinstance(full._comp_run, torch.jit.ScriptModule)  # float32: the companion gains nothing as a graph
    found = _faces(6, half.rec_size, 5)
    recon = _faces(6, half.size, 6)
    sharp = np.linspace(3.0, 7.0, 6)  # blurred to sharp: the companion's share from a third to none
    probes = [e.embed_searched(found, recon, sharpness=sharp) for e in (half, full)]
    for a, b in ((half.embed(found), full.embed(found)), probes,
                 (half.embed_searched(found, recon), full.embed_searched(found, recon))):
        assert a.dtype == np.float32 and a.shape == b.shape
        cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        assert cos.min() > 0.99, cos  # bfloat16's rounding, not another network
        assert not np.array_equal(a, b)  # bfloat16 did run
    # the probe's passes shared between two threads give the calls' numbers in bfloat16 too
    audio = np.zeros(half.audio_dim, np.float32)
    recon1, _, emb = half.probe(found[0], recon[0], audio, sharpness=3.0)
    np.testing.assert_array_equal(emb, half.embed_searched(found[:1], recon1[None], sharpness=np.array([3.0]))[0])


def test_the_precision_follows_the_setting_the_environment_and_the_cpu(
        tiny_sface_clip_models: Path, monkeypatch) -> None:
    from forensic_face.core.errors import ForensicFaceError
    from forensic_face.engine import inference

    monkeypatch.setenv(inference.PRECISION_ENV, "float32")
    assert inference.FaceEngine(tiny_sface_clip_models, device="cpu").info.params["precision"] == "float32"
    monkeypatch.setenv(inference.PRECISION_ENV, "BFloat16")
    assert inference.FaceEngine(tiny_sface_clip_models, device="cpu").info.params["precision"] == "bfloat16"
    # the engine's own setting comes before the environment's
    assert inference.FaceEngine(tiny_sface_clip_models, device="cpu",
                                precision="float32").info.params["precision"] == "float32"
    monkeypatch.setenv(inference.PRECISION_ENV, "half")
    with pytest.raises(ForensicFaceError, match=f"unknown precision 'half' .*{inference.PRECISION_ENV}"):
        inference.FaceEngine(tiny_sface_clip_models, device="cpu")
    monkeypatch.delenv(inference.PRECISION_ENV)
    # auto: bfloat16 only where the CPU multiplies it natively (elsewhere emulated, slower than float32)
    for native, expected in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr(inference, "native_bfloat16", lambda native=native: native)
        assert inference.pick_precision(None, torch.device("cpu")) == expected
        assert inference.pick_precision("auto", torch.device("cpu")) == expected
    # a GPU runs float32 as before; bfloat16 is not offered there
    assert inference.pick_precision("auto", torch.device("cuda")) == torch.float32
    with pytest.raises(ForensicFaceError, match="CPU only"):
        inference.pick_precision("bfloat16", torch.device("cuda"))
