"""The engine's CPU thread count: chosen by measurement under load (inference.CPU_THREADS) and recorded in every
result's engine part, whatever torch's default was."""

from __future__ import annotations

from pathlib import Path


def test_the_engine_runs_on_the_measured_thread_count_and_says_so(tiny_models: Path) -> None:
    import torch

    from forensic_face.engine.inference import CPU_THREADS, FaceEngine

    torch.set_num_threads(2)
    engine = FaceEngine(tiny_models, device="cpu")
    assert torch.get_num_threads() == CPU_THREADS
    assert engine.info.as_dict()["torch_threads"] == CPU_THREADS
