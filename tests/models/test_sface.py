"""The torch SFace (forensic_face.models.sface) against OpenCV's DNN running the ONNX file it was converted from:
the same embedding, and gradients that reach the input (it can be fine-tuned or used as an identity loss)."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from forensic_face.models.sface import SFaceNet, load_sface
from forensic_face.vision.align import AlignSpec, align_face

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT.parent / "shared" / "weights"
ONNX = WEIGHTS / "face_recognition_sface_2021dec.onnx"


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The state dict that ``python -m forensic_face.training.sface_onnx`` writes from the shared ONNX file."""
    if not ONNX.is_file():
        pytest.skip(f"{ONNX} is not present (the pre-trained weights live in ../shared/weights)")
    pytest.importorskip("onnx", reason="the converter needs the onnx package (pip install -e '.[dev]')")
    out = tmp_path_factory.mktemp("sface") / "sface.pt"
    subprocess.run([sys.executable, "-m", "forensic_face.training.sface_onnx", str(out), "--onnx", str(ONNX)], cwd=ROOT,
                   check=True, capture_output=True)
    return out


def test_the_onnx_file_is_the_one_the_readme_records() -> None:
    if not ONNX.is_file():
        pytest.skip(f"{ONNX} is not present")
    recorded = re.search(r"`face_recognition_sface_2021dec\.onnx`.*?`([0-9a-f]{64})`",
                         (WEIGHTS / "README.md").read_text())
    assert recorded is not None
    assert hashlib.sha256(ONNX.read_bytes()).hexdigest() == recorded[1]


@pytest.fixture(scope="module")
def faces(detector, face_rgb: np.ndarray) -> list[np.ndarray]:
    """112 px RGB crops on the ArcFace template: the astronaut, her grey and mildly degraded copies, a mirror and a
    rotated frame (what the recogniser will see), and one noise image."""
    from forensic_face.vision.degrade import degrade

    grey = cv2.cvtColor(cv2.cvtColor(face_rgb, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    rotated = cv2.warpAffine(face_rgb, cv2.getRotationMatrix2D((256, 256), 15, 1.0), (512, 512))
    frames = [face_rgb, grey, degrade(face_rgb, "mild", seed=3), face_rgb[:, ::-1].copy(), rotated]
    spec = AlignSpec(size=112, mode="arcface")
    crops = [align_face(f, detector.detect_one(f), spec).image for f in frames]
    return crops + [np.random.default_rng(0).integers(0, 256, (112, 112, 3), dtype=np.uint8)]


def test_torch_sface_matches_opencv_dnn(converted: Path, faces: list[np.ndarray]) -> None:
    net = load_sface(converted)
    dnn = cv2.dnn.readNetFromONNX(str(ONNX))
    for rgb in faces:
        # OpenCV's FaceRecognizerSF.feature: blobFromImage(BGR crop, 1, (112, 112), 0, swapRB=True): RGB, 0..255
        blob = cv2.dnn.blobFromImage(np.ascontiguousarray(rgb[:, :, ::-1]), 1.0, (112, 112), (0, 0, 0), True, False)
        np.testing.assert_array_equal(blob[0], rgb.transpose(2, 0, 1))  # the convention the module documents
        dnn.setInput(blob)
        ref = dnn.forward()[0]
        with torch.no_grad():
            ours = net(torch.from_numpy(blob)).numpy()[0]
        cosine = float(ref @ ours / np.linalg.norm(ref) / np.linalg.norm(ours))
        assert cosine >= 0.99999, cosine
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-3 * np.abs(ref).max())  # not normalised, like ONNX


def test_gradients_reach_the_input(converted: Path, faces: list[np.ndarray]) -> None:
    net = load_sface(converted)
    x = torch.from_numpy(np.stack(faces[:2]).transpose(0, 3, 1, 2).astype(np.float32)).requires_grad_(True)
    emb = torch.nn.functional.normalize(net(x), dim=1)
    (emb[0] @ emb[1]).backward()
    grad = x.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_the_definition_fixes_its_input_size() -> None:
    net = SFaceNet().eval()
    assert net(torch.zeros(2, 3, 112, 112)).shape == (2, 128)
    with pytest.raises(ValueError, match="112x112"):
        SFaceNet(type(net.config)(size=96))


def test_the_engines_copy_folds_the_batch_norms_and_gives_the_same_embedding() -> None:
    """for_inference(): grey 0..1 faces in, the network's embedding of the same grey in its three channels out,
    with the batch norms folded away (trained statistics, not the initial ones, so the folding is exercised)."""
    import torch

    from forensic_face.models.sface import SFaceNet

    torch.manual_seed(0)
    net = SFaceNet()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
    net.eval()
    run = net.for_inference()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) and m is not run.net.feature_bn for m in run.modules())
    grey = torch.rand(3, 1, 112, 112)
    with torch.no_grad():
        want, got = net(grey.expand(-1, 3, -1, -1) * 255.0), run(grey)
    assert float(torch.nn.functional.cosine_similarity(want, got).min()) > 0.99999
    assert float((want - got).abs().max()) < 1e-3 * float(want.abs().max())


def test_the_evaluations_published_reference_is_sface_as_opencv_runs_it(faces: list[np.ndarray],
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Path) -> None:
    """`forensic-face evaluate` measures SFace as published beside the product: read from the shared weights
    folder, checked against its recorded hash, fed the grey face in each channel as the product's recogniser is,
    same person at OpenCV Zoo's 0.363; without the file it says why not instead of measuring something else."""
    from forensic_face.training.evaluate import SFACE_THRESHOLD, published_sface
    from forensic_face.training.sface_onnx import ONNX_SHA256

    monkeypatch.setenv("FORENSIC_FACE_WEIGHTS", str(tmp_path))
    ref, why = published_sface()
    assert ref is None and why is not None and "face_recognition_sface_2021dec.onnx" in why
    (tmp_path / "face_recognition_sface_2021dec.onnx").write_bytes(b"not the published file")
    ref, why = published_sface()
    assert ref is None and "is not the recorded" in why
    if not ONNX.is_file():
        pytest.skip(f"{ONNX} is not present (the pre-trained weights live in ../shared/weights)")
    pytest.importorskip("onnx", reason="the converter needs the onnx package (pip install -e '.[dev]')")
    monkeypatch.setenv("FORENSIC_FACE_WEIGHTS", str(WEIGHTS))
    ref, why = published_sface()
    assert why is None and ref.threshold == SFACE_THRESHOLD == 0.363 and ONNX_SHA256 in ref.source
    greys = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in faces])
    ours = ref.embed(greys)
    assert ours.shape == (len(faces), 128) and np.allclose(np.linalg.norm(ours, axis=1), 1, atol=1e-5)
    dnn = cv2.dnn.readNetFromONNX(str(ONNX))
    for grey, e in zip(greys, ours, strict=True):
        dnn.setInput(cv2.dnn.blobFromImage(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), 1.0, (112, 112), (0, 0, 0), True,
                                           False))
        opencv = dnn.forward()[0]
        assert float(e @ opencv / np.linalg.norm(opencv)) >= 0.99999
    # the astronaut against her mirror image and her rotated frame: one person at the publisher's threshold;
    # against noise: not
    assert min(ours[0] @ ours[3], ours[0] @ ours[4]) >= SFACE_THRESHOLD > ours[0] @ ours[-1]
