"""The inference engine: loads the shipped weights once, reconstructs and embeds faces in batches.

Weights are stored as a plain tensor dictionary (``models.pt``, float16, read with
``torch.load(weights_only=True)``: no pickled code) beside ``models.json`` (configurations,
calibration, training record, the SHA-256 of the weights file). Runs on CUDA when torch sees a
GPU, on the CPU otherwise; every result carries the device, the model version and the parameters.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from forensic_face.core.errors import ForensicFaceError, ModelsNotTrainedError
from forensic_face.core.hashing import sha256_file
from forensic_face.models.calibration import MatchCalibration
from forensic_face.models.nets import AEConfig, FusionAutoencoder, Recogniser, RecogniserConfig, fold_batch_norms
from forensic_face.paths import models_dir

log = logging.getLogger(__name__)

WEIGHTS_FILE = "models.pt"
META_FILE = "models.json"


def pick_device(preference: str = "auto") -> torch.device:
    """``auto``: CUDA when available, else CPU; ``cpu`` or ``cuda`` to force (CUDA must exist)."""
    if preference == "cpu":
        return torch.device("cpu")
    if preference == "cuda":
        if not torch.cuda.is_available():
            raise ForensicFaceError("CUDA was requested but torch sees no GPU on this machine")
        return torch.device("cuda")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def calibration_digest(calibration: dict | None) -> str | None:
    """SHA-256 of the calibration as stored (canonical JSON), or None without one."""
    if not calibration:
        return None
    return hashlib.sha256(json.dumps(calibration, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def save_bundle(folder: Path, ae: FusionAutoencoder, rec: Recogniser, calibration: MatchCalibration | None,
                record: dict[str, Any]) -> dict:
    """Write ``models.pt`` (float16 tensors) and ``models.json``; returns the metadata written."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"ae.{k}": v.detach().cpu() for k, v in ae.state_dict().items()}
    tensors |= {f"rec.{k}": v.detach().cpu() for k, v in rec.state_dict().items()}
    tensors = {k: (v.half() if v.is_floating_point() else v) for k, v in tensors.items()}
    tmp = folder / (WEIGHTS_FILE + ".tmp")
    torch.save(tensors, tmp)
    tmp.replace(folder / WEIGHTS_FILE)
    digest = sha256_file(folder / WEIGHTS_FILE)
    meta = {
        "format": 1,
        "version": f"ff-{record.get('date', 'undated')}-{digest[:8]}",
        "weights_sha256": digest,
        "ae": ae.config.as_dict(),
        "rec": rec.config.as_dict(),
        "calibration": calibration.as_dict() if calibration else None,
        "record": record,
    }
    _write_meta(folder, meta)
    return meta


def save_calibration(folder: Path, calibration: MatchCalibration, record_update: dict[str, Any]) -> dict:
    """Replace the match calibration of an existing bundle (weights and version unchanged; results record
    the calibration's own digest); ``record_update`` is merged into the training record."""
    meta = json.loads((folder / META_FILE).read_text())
    meta["calibration"] = calibration.as_dict()
    meta["record"] = {**meta.get("record", {}), **record_update}
    _write_meta(folder, meta)
    return meta


def _write_meta(folder: Path, meta: dict) -> None:
    """``models.json``, replaced atomically."""
    tmp = folder / (META_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2))
    tmp.replace(folder / META_FILE)


def load_networks(folder: Path, device: torch.device) -> tuple[FusionAutoencoder, Recogniser, dict]:
    meta_path, weights_path = folder / META_FILE, folder / WEIGHTS_FILE
    if not meta_path.is_file() or not weights_path.is_file():
        raise ModelsNotTrainedError(f"no trained models in {folder} (run `forensic-face train`)")
    meta = json.loads(meta_path.read_text())
    digest = sha256_file(weights_path)
    if digest != meta.get("weights_sha256"):
        raise ForensicFaceError(f"{weights_path}: SHA-256 {digest[:12]}… does not match {META_FILE}; "
                                "the weights were altered or belong to another model")
    tensors = torch.load(weights_path, map_location="cpu", weights_only=True)
    ae = FusionAutoencoder(AEConfig(**meta["ae"]))
    rec = Recogniser(RecogniserConfig(**meta["rec"]))
    ae.load_state_dict({k[3:]: v.float() for k, v in tensors.items() if k.startswith("ae.")})
    rec.load_state_dict({k[4:]: v.float() if v.is_floating_point() else v
                         for k, v in tensors.items() if k.startswith("rec.")})
    return ae.to(device).eval(), rec.to(device).eval(), meta


@dataclass
class EngineInfo:
    version: str
    device: str
    weights_sha256: str
    size: int
    torch: str
    params: dict = field(default_factory=dict)
    calibration_sha256: str | None = None  # the match calibration's own digest (it can be refitted on the same weights)

    def as_dict(self) -> dict:
        return {"model_version": self.version, "device": self.device, "weights_sha256": self.weights_sha256,
                "calibration_sha256": self.calibration_sha256, "input_size": self.size, "torch": self.torch,
                **self.params}


class FaceEngine:
    """Reconstruction and embedding of aligned grey faces (uint8, (N, S, S)), batched.

    Thread-safe: one lock around the networks (the GUI calls it from worker threads).
    """

    def __init__(self, folder: str | Path | None = None, device: str = "auto", batch: int = 64) -> None:
        self.folder = Path(folder) if folder else models_dir()
        self.device = pick_device(device)
        self.ae, self.rec, self.meta = load_networks(self.folder, self.device)
        # what runs: the recogniser with its batch norms folded into the layers before them and, on the CPU,
        # the autoencoder in channels-last layout (oneDNN's fast path; not faster for the recogniser here):
        # the same outputs to float rounding, in 6-20 % (recogniser) and 20-25 % (autoencoder) less time
        # per face on 2 cores (scripts/bench_inference.py). self.ae and self.rec stay the networks as
        # stored, for export.
        self._ae_run, self._rec_run = self.ae, fold_batch_norms(self.rec)
        if self.device.type == "cpu":
            self._ae_run = copy.deepcopy(self.ae).to(memory_format=torch.channels_last)
        self.size = int(self.meta["ae"]["size"])
        self.audio_dim = int(self.meta["ae"]["audio_dim"])
        cal = self.meta.get("calibration")
        self.calibration = MatchCalibration.from_dict(cal) if cal else None
        self.batch = batch
        self._lock = threading.Lock()
        self.info = EngineInfo(version=self.meta["version"], device=str(self.device),
                               weights_sha256=self.meta["weights_sha256"], size=self.size, torch=torch.__version__,
                               calibration_sha256=calibration_digest(cal))

    @staticmethod
    def available(folder: str | Path | None = None) -> bool:
        f = Path(folder) if folder else models_dir()
        return (f / META_FILE).is_file() and (f / WEIGHTS_FILE).is_file()

    def _to_tensor(self, faces: np.ndarray) -> torch.Tensor:
        faces = np.asarray(faces)
        if faces.ndim == 2:
            faces = faces[None]
        if faces.ndim == 4:  # (N, S, S, 3) RGB -> grey
            faces = (faces[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
        if faces.shape[1:] != (self.size, self.size):
            raise ForensicFaceError(f"faces must be {self.size}x{self.size} aligned crops, got {faces.shape[1:]}")
        x = torch.from_numpy(np.ascontiguousarray(faces, dtype=np.float32) / 255.0)
        return x[:, None].to(self.device)

    @torch.inference_mode()
    def reconstruct(self, faces: np.ndarray, audio: np.ndarray | None = None) -> np.ndarray:
        """Reconstructed faces (N, S, S) uint8 from degraded aligned faces; ``audio`` (N, D) or None."""
        x = self._to_tensor(faces)
        a = None
        if audio is not None:
            a = torch.as_tensor(np.asarray(audio, np.float32).reshape(x.shape[0], -1), device=self.device)
            if a.shape[1] != self.audio_dim:
                raise ForensicFaceError(f"audio vectors must have {self.audio_dim} values, got {a.shape[1]}")
        out = []
        with self._lock:
            for i in range(0, x.shape[0], self.batch):
                out.append(self._ae_run(x[i:i + self.batch], None if a is None else a[i:i + self.batch]))
        y = torch.cat(out)[:, 0].clamp(0, 1).mul(255).round().to(torch.uint8)
        return y.cpu().numpy()

    @torch.inference_mode()
    def embed(self, faces: np.ndarray) -> np.ndarray:
        """L2-normalised embeddings (N, 128) float32 of aligned faces (clean, degraded or reconstructed)."""
        x = self._to_tensor(faces)
        out = []
        with self._lock:
            for i in range(0, x.shape[0], self.batch):
                xb = x[i:i + self.batch]
                # flip-averaged: the face and its mirror image in one forward pass (one batch is faster than two)
                e = self._rec_run(torch.cat([xb, torch.flip(xb, dims=[3])]))
                out.append(torch.nn.functional.normalize(e[:xb.shape[0]] + e[xb.shape[0]:], dim=1))
        return torch.cat(out).float().cpu().numpy()
