"""On the CPU the engine runs SFace's recogniser as a frozen TorchScript graph (``inference.cpu_graph``): the
embeddings of the network as stored, to float rounding, at the batch sizes the engine uses, and every result says
how the recogniser ran."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def test_the_sface_recogniser_runs_as_a_graph_with_the_stored_networks_embeddings(
        tiny_sface_clip_models: Path) -> None:
    from forensic_face.engine.inference import FaceEngine

    engine = FaceEngine(tiny_sface_clip_models, device="cpu")
    assert isinstance(engine._rec_run, torch.jit.ScriptModule)
    assert engine.info.as_dict()["recogniser_runs"] == "torchscript graph"
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
    engine = inference.FaceEngine(tiny_sface_clip_models, device="cpu")
    assert not isinstance(engine._rec_run, torch.jit.ScriptModule)
    assert engine.info.as_dict()["recogniser_runs"] == "eager"
    assert "could not be made" in caplog.text
    faces = np.random.default_rng(4).integers(0, 256, (2, engine.rec_size, engine.rec_size), dtype=np.uint8)
    assert engine.embed(faces).shape == (2, 128)


def test_the_projects_own_cnn_runs_eager(tiny_models: Path) -> None:
    from forensic_face.engine.inference import FaceEngine

    engine = FaceEngine(tiny_models, device="cpu")
    assert engine.info.as_dict()["recogniser_runs"] == "eager"
