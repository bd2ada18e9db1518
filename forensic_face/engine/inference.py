"""The inference engine: loads a model bundle once, reconstructs and embeds aligned grey faces in batches.

Runs on CUDA when torch sees a GPU, on the CPU otherwise; every result carries the device, the model
version and the parameters (:class:`EngineInfo`). The bundle's format is :mod:`forensic_face.models.bundle`;
the steps from a frame to the faces this engine takes are :mod:`forensic_face.engine.probe`.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from forensic_face.core.errors import ForensicFaceError
from forensic_face.engine.fusion import Pooling
from forensic_face.models.bundle import (
    bundle_available,
    calibration_digest,
    load_bundle,
    recogniser_embeds,
    recogniser_mirror,
)
from forensic_face.models.calibration import MatchCalibration
from forensic_face.models.sface import SFaceNet, TwoHeads, shared_blocks
from forensic_face.paths import models_dir
from forensic_face.vision.frames import to_grey

log = logging.getLogger(__name__)


#: torch's intra-op threads for inference on the CPU. Measured on the 2-core machine with other work beside it
#: (scripts/bench_inference.py, one face and its mirror image): the SFace-derived recogniser 40.6 ms with one
#: thread against 101 ms with two; the project's CNN before it 0.034 s against 0.26 s. An analyst's machine is
#: rarely idle, so one thread per call; the cores are used by running calls side by side instead (``FaceEngine``'s
#: ``parallel``: enrolment's workers, a face's mirror-image pass), which a busy machine slows far less.
CPU_THREADS = 1

#: The arithmetic of the recognisers' passes on the CPU, chosen by ``FaceEngine(precision=...)`` (the CLI's
#: ``--precision``, the GUI's Settings): ``float32``, ``bfloat16`` or ``auto`` (the default: this environment
#: variable's choice where it is set, else bfloat16 where the CPU multiplies bfloat16 natively and float32
#: elsewhere). Every result records the one used (``precision``).
PRECISION_ENV = "FORENSIC_FACE_PRECISION"
PRECISIONS = ("auto", "float32", "bfloat16")


def native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware as oneDNN uses it (AVX-512 BF16 or AMX): elsewhere oneDNN
    emulates it, slower than float32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch without oneDNN or without the query
        return False


def pick_precision(preference: str | None, device: torch.device) -> torch.dtype:
    """The recognisers' arithmetic: ``preference`` (None or ``auto``: the environment's :data:`PRECISION_ENV`
    where set, else bfloat16 where native) on ``device``. CUDA runs float32 (``auto``) as before; ``bfloat16`` is
    honoured on the CPU only."""
    given = (preference or "auto").strip().lower()
    choice = given if given != "auto" else (os.environ.get(PRECISION_ENV) or "auto").strip().lower()
    if choice not in PRECISIONS:
        source = "the engine" if given != "auto" else PRECISION_ENV
        raise ForensicFaceError(f"unknown precision {choice!r} (from {source}): use one of {', '.join(PRECISIONS)}")
    if device.type != "cpu" or choice == "float32":
        if device.type != "cpu" and choice == "bfloat16":
            raise ForensicFaceError("bfloat16 arithmetic is offered on the CPU only; this engine runs on "
                                    f"{device.type}")
        return torch.float32
    if choice == "auto":
        return torch.bfloat16 if native_bfloat16() else torch.float32
    return torch.bfloat16


def usable_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def pick_device(preference: str = "auto") -> torch.device:
    """``auto``: CUDA when available, else CPU; ``cpu`` or ``cuda`` to force (CUDA must exist)."""
    if preference == "cpu":
        return torch.device("cpu")
    if preference == "cuda":
        if not torch.cuda.is_available():
            raise ForensicFaceError("CUDA was requested but torch sees no GPU on this machine")
        return torch.device("cuda")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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

    Thread-safe, and parallel across threads: on the CPU up to ``parallel`` calls (default: one per usable core)
    run the networks at once, each on one torch thread (enrolment's workers use every core that way; the networks'
    forward passes change no state); on CUDA one call at a time.
    """

    def __init__(self, folder: str | Path | None = None, device: str = "auto", batch: int = 64,
                 parallel: int | None = None, precision: str | None = None) -> None:
        self.folder = Path(folder) if folder else models_dir()
        self.device = pick_device(device)
        self.precision = pick_precision(precision, self.device)
        if self.device.type == "cpu":
            torch.set_num_threads(CPU_THREADS)
        self.ae, self.rec, self.companion, self.meta = load_bundle(self.folder, self.device)
        # what runs: the recogniser with its batch norms folded into the layers before them and, on the CPU,
        # the autoencoder in channels-last layout (oneDNN's fast path; not faster for the recogniser here):
        # the same outputs to float rounding, in 6-20 % (recogniser) and 20-25 % (autoencoder) less time
        # per face on 2 cores (scripts/bench_inference.py). self.ae and self.rec stay the networks as
        # stored, for export.
        # In bfloat16 (where the CPU multiplies it natively: ``precision``) both recognisers run as such graphs,
        # in about half the time (embeddings within cosine 0.999 of float32's; research/cpu_graph.py); the
        # autoencoder stays float32, its reconstruction an exhibit.
        self._ae_run, self._rec_run = self.ae, self.rec.for_inference()
        if self.device.type == "cpu":
            self._ae_run = copy.deepcopy(self.ae).to(memory_format=torch.channels_last)
            if getattr(type(self.rec), "cpu_graph", False) or self.precision != torch.float32:
                # SFace's student: a frozen graph, a sixth faster in float32
                self._rec_run = cpu_graph(self._rec_run, int(self.meta["rec"]["size"]), self.precision)
        # the autoencoder's faces (size, alignment) and the recogniser's (rec_size, rec_alignment): the same crop
        # for the project's own CNN, which embeds the reconstruction; SFace's student takes its own 112-px
        # five-point crop of the face as found (``embeds == "input"``), and the reconstruction is shown beside it
        self.size, self.alignment = int(self.meta["ae"]["size"]), type(self.ae).alignment
        self.rec_size, self.rec_alignment = int(self.meta["rec"]["size"]), type(self.rec).alignment
        self.embeds = recogniser_embeds(self.meta)
        self.mirror = recogniser_mirror(self.meta)
        if self.embeds == "reconstruction" and not self.same_crop:
            raise ForensicFaceError(
                f"{self.folder}: the recogniser embeds the reconstruction but takes {self.rec_size} px "
                f"{self.rec_alignment}-aligned faces, and the autoencoder gives {self.size} px "
                f"{self.alignment}-aligned ones; the bundle is inconsistent")
        self._comp_run = self.companion.net.for_inference() if self.companion is not None else None
        if self._comp_run is not None and self.device.type == "cpu" and self.precision != torch.float32:
            self._comp_run = cpu_graph(self._comp_run, int(self.companion.net.config.size), self.precision)
        if self.companion is not None and (int(self.companion.net.config.size), type(self.companion.net).alignment
                                           ) != (self.size, self.alignment):
            raise ForensicFaceError(f"{self.folder}: the companion recogniser does not take the autoencoder's "
                                    f"{self.size} px {self.alignment}-aligned faces; the bundle is inconsistent")
        # a joined bundle's third part for sharp probes (SFace as published): the face as found, the recogniser's crop
        self.sharp = self.companion.sharp if self.companion is not None else None
        self._pair_run = self._sharp_graph = None
        self._sharp_made = threading.Lock()
        if self.sharp is not None:
            if (int(self.sharp.net.config.size), type(self.sharp.net).alignment) != (self.rec_size, self.rec_alignment):
                raise ForensicFaceError(f"{self.folder}: the sharp recogniser does not take the recogniser's "
                                        f"{self.rec_size} px {self.rec_alignment}-aligned faces; the bundle is "
                                        "inconsistent")
            if self.embeds != "input":
                raise ForensicFaceError(f"{self.folder}: a sharp recogniser joins only a recogniser of the face as "
                                        "found; the bundle is inconsistent")
            if self.sharp.cross and int(self.sharp.net.config.embed_dim) != int(self.meta["rec"]["embed_dim"]):
                raise ForensicFaceError(f"{self.folder}: a cross share compares the recogniser's embedding with the "
                                        "sharp recogniser's, which must be of one length; the bundle is inconsistent")
            # a student tuned from the sharp network with its first blocks frozen shares them (stored once): a face
            # both embed goes through them once (TwoHeads), about a third less time than the two networks apart
            shared = (shared_blocks(self.rec, self.sharp.net) if isinstance(self.rec, SFaceNet)
                      and isinstance(self.sharp.net, SFaceNet) and self.sharp.mirror == self.mirror else 0)
            if shared:
                self._pair_run = TwoHeads(self.rec, self.sharp.net, shared).eval()
                if self.device.type == "cpu":
                    self._pair_run = cpu_graph(self._pair_run, self.rec_size, self.precision)
        self.audio_dim = int(self.meta["ae"]["audio_dim"])
        cal = self.meta.get("calibration")
        self.calibration = MatchCalibration.from_dict(cal) if cal else None
        clip_cal = self.meta.get("clip_calibration")
        # pooled templates of a clip's frames are read with their own calibration, never the single frame's
        self.clip_calibration = MatchCalibration.from_dict(clip_cal) if clip_cal else None
        self.clip_calibration_sha256 = calibration_digest(clip_cal)
        # a joined bundle's frames pooled into a clip template take this times their companion share
        self.pooled_share = float(clip_cal.get("companion_share", 1.0)) if clip_cal else 1.0
        self.batch = batch
        # the recogniser's batches: SFace's 112-px faces run fastest on the CPU a few at a time (40 ms per face
        # in batches of 1-2, 47 at 4, 69 at 8, one thread), the small CNN's in large batches
        self.rec_batch = min(batch, getattr(type(self.rec), "inference_batch", batch))
        self.parallel = 1 if self.device.type != "cpu" else max(1, parallel or usable_cores())
        self._calls = threading.BoundedSemaphore(self.parallel)  # the calls running the networks at once
        self._pool: ThreadPoolExecutor | None = None
        self._pool_made = threading.Lock()
        rec = self.meta.get("recogniser") or {}
        params = {"recogniser": rec.get("architecture", "ff-cnn"), "recogniser_embeds": self.embeds,
                  "recogniser_mirror_averaged": self.mirror,
                  "torch_threads": torch.get_num_threads(),
                  "parallel_calls": self.parallel,  # network calls at once, a face's mirror pass among them
                  "recogniser_runs": "torchscript graph" if isinstance(self._rec_run, torch.jit.ScriptModule)
                  else "eager",  # the same embeddings to float rounding
                  # the recognisers' arithmetic (bfloat16: embeddings within cosine 0.999 of float32's)
                  "precision": str(self.precision).removeprefix("torch."),
                  "recogniser_input": f"{self.rec_size} px, {self.rec_alignment} alignment"}
        if self.companion is not None:
            c = self.companion
            params["companion"] = {"recogniser": self.meta["companion"]["architecture"], "embeds": c.embeds,
                                   "mirror_averaged": c.mirror, "weight": c.weight,
                                   "input": f"{self.size} px, {self.alignment} alignment"}
            if c.probe_weight is not None:
                params["companion"] |= {"probe_weight": list(c.probe_weight), "quality_range": list(c.quality_range)}
            if self.sharp is not None:
                sh = self.sharp
                params["companion"]["sharp"] = {"recogniser": self.meta["companion"]["sharp"]["architecture"],
                                                "source": sh.source, "embeds": "input", "mirror_averaged": sh.mirror,
                                                "share": sh.share, "quality_range": list(sh.quality_range),
                                                "gallery_weight": sh.weight,
                                                "input": f"{self.rec_size} px, {self.rec_alignment} alignment"}
                if sh.cross:
                    params["companion"]["sharp"]["cross"] = sh.cross
        self.info = EngineInfo(version=self.meta["version"], device=str(self.device),
                               weights_sha256=self.meta["weights_sha256"], size=self.size, torch=torch.__version__,
                               params=params, calibration_sha256=calibration_digest(cal))

    @property
    def same_crop(self) -> bool:
        """Whether the recogniser takes the autoencoder's crop (one alignment serves both networks)."""
        return (self.rec_size, self.rec_alignment) == (self.size, self.alignment)

    @staticmethod
    def available(folder: str | Path | None = None) -> bool:
        """Whether ``folder`` (default: the shipped models) holds a model bundle."""
        return bundle_available(folder)

    def _to_tensor(self, faces: np.ndarray, size: int) -> torch.Tensor:
        faces = np.asarray(faces)
        if faces.ndim == 2:
            faces = faces[None]
        if faces.ndim == 4:  # (N, S, S, 3) RGB: the package's one grey conversion, as the probe path makes it
            faces = np.stack([to_grey(f) for f in faces])
        if faces.shape[1:] != (size, size):
            raise ForensicFaceError(f"faces must be {size}x{size} aligned crops, got {faces.shape[1:]}")
        x = torch.from_numpy(np.ascontiguousarray(faces, dtype=np.float32) / 255.0)
        return x[:, None].to(self.device)

    @torch.inference_mode()
    def reconstruct(self, faces: np.ndarray, audio: np.ndarray | None = None) -> np.ndarray:
        """Reconstructed faces (N, S, S) uint8 from degraded aligned faces (the autoencoder's crop: ``size``,
        ``alignment``); ``audio`` (N, D) or None."""
        x = self._to_tensor(faces, self.size)
        a = self._audio_tensor(audio, x.shape[0])
        with self._calls:
            return self._reconstruct_held(x, a)

    def _audio_tensor(self, audio: np.ndarray | None, n: int) -> torch.Tensor | None:
        if audio is None:
            return None
        a = torch.as_tensor(np.asarray(audio, np.float32).reshape(n, -1), device=self.device)
        if a.shape[1] != self.audio_dim:
            raise ForensicFaceError(f"audio vectors must have {self.audio_dim} values, got {a.shape[1]}")
        return a

    def _reconstruct_held(self, x: torch.Tensor, a: torch.Tensor | None) -> np.ndarray:
        """:meth:`reconstruct` of tensors, by a caller that holds one of the engine's permits."""
        with torch.inference_mode():
            out = [self._ae_run(x[i:i + self.batch], None if a is None else a[i:i + self.batch])
                   for i in range(0, x.shape[0], self.batch)]
            y = torch.cat(out)[:, 0].clamp(0, 1).mul(255).round().to(torch.uint8)
        return y.cpu().numpy()

    def embed(self, faces: np.ndarray) -> np.ndarray:
        """L2-normalised embeddings (N, 128) float32 of the recogniser alone, of aligned faces in its crop
        (``rec_size``, ``rec_alignment``): clean, degraded or reconstructed; averaged with the mirror image's where
        the bundle says so (``mirror``). What is searched with is :meth:`embed_searched`'s."""
        return self._embed(self._rec_run, self.rec_batch, self.mirror, self._to_tensor(faces, self.rec_size))

    @property
    def searches_reconstruction(self) -> bool:
        """Whether the embedding searched with depends on the reconstruction (a recogniser or a companion of it)."""
        return self.embeds == "reconstruction" or self.companion is not None

    def embed_searched(self, found: np.ndarray, recon: np.ndarray, main: np.ndarray | None = None,
                       sharpness: np.ndarray | None = None) -> np.ndarray:
        """The embeddings (N, D) searched with: the recogniser's of ``found`` (the faces as found, in its crop) or of
        ``recon`` (the autoencoder's crop: a probe's reconstruction, or a gallery face as it is) as it embeds,
        joined to the companion's when the bundle has one (:meth:`join`: ``sharpness``, each probe's, makes them
        probes; None, gallery faces). ``main``: the recogniser's embeddings of ``found``, when already made (a
        recogniser of the face as found)."""
        # a probe of share 0 is the recogniser's alone (and of sharp share 0, without the sharp part)
        main, comp = self.embed_parts(found, recon, main, self._needed(sharpness), self._sharp_needed(sharpness))
        return self._joined(main, comp, sharpness)

    def embed_parts(self, found: np.ndarray, recon: np.ndarray, main: np.ndarray | None = None,
                    needed: np.ndarray | None = None, sharp_needed: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The recogniser side's and the companion's unit embeddings (the latter None without a companion), before
        they are joined; arguments as :meth:`embed_searched`. ``needed`` (N,) bool: the faces the companion
        embeds; the others' rows are 0 (faces whose share is 0: the companion's network is not run for them). With a
        sharp part the recogniser side is the recogniser's embedding and the sharp part's side by side (``main``,
        when given, is the recogniser's alone), ``sharp_needed`` as ``needed``."""
        if main is not None and self.embeds != "input":
            raise ValueError("main embeddings are reused only for a recogniser of the face as found")
        if main is None and self._pair_run is not None:  # the recogniser and the sharp part in one network
            main = self._embed_pair(found, sharp_needed)
        else:
            if main is None:
                main = self.embed(found if self.embeds == "input" else recon)
            if self.companion is None:
                return main, None
            if self.sharp is not None:
                main = np.concatenate([main, self.embed_sharp(found, sharp_needed)], axis=1)
        with self._calls:
            return main, self._companion_held(recon, needed)

    def _embed_pair(self, found: np.ndarray, needed: np.ndarray | None) -> np.ndarray:
        """The recogniser's and the sharp part's unit embeddings side by side (N, 2 D) by the network of both
        (:class:`~forensic_face.models.sface.TwoHeads`); the recogniser alone for the faces ``needed`` leaves
        out (their sharp part 0)."""
        x = self._to_tensor(found, self.rec_size)
        d = int(self.meta["rec"]["embed_dim"])
        out = np.zeros((len(x), d + int(self.sharp.net.config.embed_dim)), np.float32)
        both = np.ones(len(x), bool) if needed is None else needed
        if both.any():
            out[both] = _unit_halves(self._embed(self._pair_run, self.rec_batch, self.mirror,
                                                 x[torch.from_numpy(both)]), d)
        if (~both).any():
            out[~both, :d] = self._embed(self._rec_run, self.rec_batch, self.mirror, x[torch.from_numpy(~both)])
        return out

    @property
    def _sharp_run(self):
        """The sharp network alone as it runs (made on first use: a bundle whose student shares its blocks runs the
        network of both instead, and needs it only to embed given the student's embeddings, as the evaluation does)."""
        with self._sharp_made:
            if self._sharp_graph is None:
                run = self.sharp.net.for_inference()
                if self.device.type == "cpu" and (getattr(type(self.sharp.net), "cpu_graph", False)
                                                  or self.precision != torch.float32):
                    run = cpu_graph(run, self.rec_size, self.precision)
                self._sharp_graph = run
            return self._sharp_graph

    def embed_sharp(self, found: np.ndarray, needed: np.ndarray | None = None) -> np.ndarray:
        """The sharp part's unit embeddings (N, D) of faces as found, in the recogniser's crop; with ``needed``
        (N,) bool, rows of 0 for the faces it leaves out (sharp share 0: its network is not run for them)."""
        return _rows(partial(self._embed, self._sharp_run, self.rec_batch, self.sharp.mirror),
                     self._to_tensor(found, self.rec_size), needed, int(self.sharp.net.config.embed_dim))

    def join(self, main: np.ndarray, companion: np.ndarray, sharpness: np.ndarray | None = None) -> np.ndarray:
        """Gallery faces (``sharpness`` None): unit vectors [sqrt(1 - l) main, sqrt(l) companion], l the
        companion's ``weight``. Probes: the same with each probe's l from its sharpness
        (``Companion.probe_weights``), made queries (:meth:`query`). With a sharp part, three parts
        (``Companion.joined``)."""
        joined = self.companion.joined(main, companion, sharpness)
        return joined if sharpness is None else self.query(joined)

    def path_weights(self, queries: np.ndarray) -> dict[str, np.ndarray] | dict[str, float] | None:
        """Of probe queries (N, D) as searched (a single frame's or a pooled template's): the weight of each
        recogniser's cosine in their similarities, by part (``recogniser``, ``sharp`` where the bundle has one,
        ``companion``); of one query (D,), numbers; None for a bundle of one recogniser."""
        if self.companion is None:
            return None
        q = np.asarray(queries)
        w = self.companion.path_weights(q)
        names = ("recogniser", "sharp", "companion") if self.sharp is not None else ("recogniser", "companion")
        return {n: (round(float(w[0, i]), 4) if q.ndim == 1 else w[:, i]) for i, n in enumerate(names)}

    @property
    def pooling(self) -> Pooling | None:
        """How this engine's probe embeddings are pooled into a clip template (``fuse``'s ``pooling``): None where
        they are unit vectors; a joined bundle's with each frame's companion share times the clip calibration's
        ``companion_share`` (:attr:`pooled_share`)."""
        return self.pooling_at(self.pooled_share)

    def pooling_of(self, frames: int) -> Pooling | None:
        """The pooling of a template of ``frames`` frames: :attr:`pooling`; one frame is searched as a single
        frame, at its own companion share (and with the single-frame calibration)."""
        return self.pooling if frames > 1 else self.pooling_at(1.0)

    def pooling_at(self, scale: float) -> Pooling | None:
        """:attr:`pooling` with each frame's companion share times ``scale`` (1: the frame's own)."""
        if self.companion is None:
            return None
        return Pooling(partial(self.companion.pooled_directions, scale=scale), self.query)

    def query(self, emb: np.ndarray) -> np.ndarray:
        """Probe embeddings (N, D) as searched: a joined bundle's scaled so that a similarity is the weighted mean
        of its two recognisers' cosines (``Companion.query``; needed again after pooling unit directions);
        others' unchanged."""
        return emb if self.companion is None else self.companion.query(emb)

    def probe(self, found: np.ndarray, face: np.ndarray, audio: np.ndarray | None = None,
              sharpness: float | None = None, plain: bool = False
              ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """One probe through the networks: its reconstruction (of ``face``, the autoencoder's crop (S, S), with
        ``audio``, a (D,) vector, when given), the reconstruction without the audio as well when ``plain`` and
        there is audio (else None), and the embedding searched with (:meth:`embed_searched` of ``found``, the face
        in the recogniser's crop, and of the reconstruction with ``sharpness``, the probe's).

        The same numbers as those calls one after the other (each network pass of the same shape). For a
        recogniser of the face as found, averaged with its mirror image, while the engine may run another call,
        the passes are shared between two cores: the engine's second thread runs the autoencoder, the recogniser
        on the mirror image and then the companion on the reconstruction's mirror image; this thread the
        recogniser on the face, the companion on the reconstruction (where the probe's share needs it) and the
        reconstruction without audio. On the 2-core machine, quiet, a pass takes about 4 ms (autoencoder), 20 ms
        (recogniser; 15-19 ms as the CPU graph, :func:`cpu_graph`) and 5 ms (companion): a blurred probe in
        29.6-30.9 ms against 31.3-32.0 ms with the recogniser's two passes at once and the rest in turn, no gain
        with one core busy (research/probe_overlap.py, before the graph). With the recognisers in bfloat16
        (``precision``): passes of 8.5 ms (recogniser) and 2.1 ms (companion), a blurred probe in 15.5 ms, 25.9 ms
        with one core busy (research/cpu_graph.py). A probe that needs the sharp part as well runs the network of both
        (:class:`~forensic_face.models.sface.TwoHeads`) in the recogniser's place, or, where they share no blocks, the
        sharp network's two passes beside the others."""
        x = self._to_tensor(face, self.size)
        a = self._audio_tensor(audio, 1)
        sharp = None if sharpness is None else np.atleast_1d(np.asarray(sharpness, np.float64))
        if self.embeds != "input" or not self.mirror:
            return self._probe_in_turn(found, x, a, sharp, plain)
        f = self._to_tensor(found, self.rec_size)
        needed = self._needed(sharp)
        with self._calls:
            if self._calls.acquire(blocking=False):  # a second core free now: the passes shared out
                try:
                    return self._probe_shared(f, x, a, sharp, needed, plain)
                finally:
                    self._calls.release()
        return self._probe_in_turn(found, x, a, sharp, plain)

    def _probe_shared(self, f, x, a, sharp, needed, plain) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """:meth:`probe` on this thread and the engine's second, by a caller holding two permits."""
        pool = self._second()  # its threads take what is given them in turn: the reconstruction first
        made = pool.submit(self._reconstruct_held, x, a)
        # where the probe needs the sharp part and a network gives both, that network runs instead of the recogniser
        pair = self._pair_run is not None and (sharp is None or bool(self._sharp_needed(sharp)[0]))
        run = self._pair_run if pair else self._rec_run
        futures = [made, pool.submit(_inference, run, torch.flip(f, dims=[3]))]
        try:
            with torch.inference_mode():
                faces = run(f)
            sharp_part = None if pair else self._sharp_started(f, sharp, pool, futures)
            recon = made.result()
            companion = self._companion_started(recon, needed, pool, futures)
            bare = self._reconstruct_held(x, None) if plain and a is not None else None
            with torch.inference_mode():
                main = torch.nn.functional.normalize(faces + futures[1].result(), dim=1).float().cpu().numpy()
            if pair:  # as _embed_pair makes them
                main = _unit_halves(main, int(self.meta["rec"]["embed_dim"]))
            if sharp_part is not None:
                main = np.concatenate([main, sharp_part()], axis=1)
            comp = companion()
        except BaseException:
            wait(futures)  # the permits are given back only when nothing of this probe runs
            raise
        return recon[0], None if bare is None else bare[0], self._joined(main, comp, sharp)[0]

    def _sharp_started(self, f: torch.Tensor, sharp: np.ndarray | None, pool: ThreadPoolExecutor,
                       futures: list) -> Callable[[], np.ndarray] | None:
        """:meth:`probe`'s sharp part, begun (as :meth:`_companion_started`): None without one; 0 where the probe's
        sharp share leaves it out."""
        if self.sharp is None:
            return None
        if sharp is not None and not self._sharp_needed(sharp)[0]:
            return lambda: np.zeros((1, int(self.sharp.net.config.embed_dim)), np.float32)
        return _pass_started(self._sharp_run, f, self.sharp.mirror, pool, futures)

    def _companion_started(self, recon: np.ndarray, needed: np.ndarray | None, pool: ThreadPoolExecutor,
                           futures: list) -> Callable[[], np.ndarray | None]:
        """:meth:`probe`'s companion part, begun: its pass on the reconstruction here and on the mirror image by
        ``pool`` (appended to ``futures``); the function returned gives the unit embedding (1, D) when both are
        done, or None without a companion, or 0 where the probe's share leaves it out."""
        if self.companion is None:
            return lambda: None
        if needed is not None and not needed[0]:
            return lambda: np.zeros((1, int(self.companion.net.config.embed_dim)), np.float32)
        return _pass_started(self._comp_run, self._to_tensor(recon, self.size), self.companion.mirror, pool, futures)

    def _probe_in_turn(self, found, x, a, sharp, plain) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """:meth:`probe` one network after another (each call of the engine's own, its mirror passes as they are)."""
        with self._calls:
            recon = self._reconstruct_held(x, a)
            bare = self._reconstruct_held(x, None) if plain and a is not None else None
        emb = self.embed_searched(np.asarray(found)[None], recon, sharpness=sharp)
        return recon[0], None if bare is None else bare[0], emb[0]

    def _needed(self, sharp: np.ndarray | None) -> np.ndarray | None:
        """The probes the companion embeds (those of share above 0); None, all (gallery faces, or no sharpness)."""
        return None if sharp is None or self.companion is None else self.companion.probe_weights(sharp) > 0

    def _sharp_needed(self, sharp: np.ndarray | None) -> np.ndarray | None:
        """The probes the sharp part embeds (those of sharp share above 0); None, all (gallery faces, or no
        sharpness)."""
        return None if sharp is None or self.sharp is None else self.sharp.probe_shares(sharp) > 0

    def _joined(self, main: np.ndarray, comp: np.ndarray | None, sharp: np.ndarray | None) -> np.ndarray:
        return main if comp is None else self.join(main, comp, sharp)

    def _companion_held(self, recon: np.ndarray, needed: np.ndarray | None) -> np.ndarray | None:
        """The companion's unit embeddings of ``recon`` (its crop; a probe's reconstruction or a gallery face), by a
        caller that holds a permit: None without a companion; with ``needed`` (N,) bool, rows of 0 for the faces it
        leaves out (share 0: its network is not run for them)."""
        if self.companion is None:
            return None
        # a companion embeds the reconstruction (Companion.check)
        return _rows(partial(self._embed_held, self._comp_run, self.batch, self.companion.mirror),
                     self._to_tensor(recon, self.size), needed, int(self.companion.net.config.embed_dim))

    def _embed(self, run, batch: int, mirror: bool, x: torch.Tensor) -> np.ndarray:
        with self._calls:
            return self._embed_held(run, batch, mirror, x)

    @torch.inference_mode()
    def _embed_held(self, run, batch: int, mirror: bool, x: torch.Tensor) -> np.ndarray:
        """:meth:`_embed` by a caller that holds one of the engine's permits (its mirror passes beside the faces'
        where it can take another)."""
        out = []
        for i in range(0, x.shape[0], batch):
            xb = x[i:i + batch]
            if not mirror:
                out.append(torch.nn.functional.normalize(run(xb), dim=1))
                continue
            faces, mirrored = self._both(run, xb, torch.flip(xb, dims=[3]))
            out.append(torch.nn.functional.normalize(faces + mirrored, dim=1))
        return torch.cat(out).float().cpu().numpy()

    def _both(self, run, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``run`` on the faces ``a`` and on their mirror images ``b``, two forward passes of the same shape: at
        once on two cores when the engine may run another call now, one after the other when not (its workers
        busy). The same numbers either way (each pass sums alike); on the 2-core machine, quiet, the shipped
        student's face and mirror image in 22.2 ms at once against 40.6 ms in one pass of two and 42.3 ms one
        after the other; with a CPU-bound process beside it 40.7 against 39.8 ms (research/mirror_split.py)."""
        if not self._calls.acquire(blocking=False):
            return run(a), run(b)
        try:
            other = self._second().submit(_inference, run, b)
            try:
                mine = run(a)
            except BaseException:
                wait([other])  # the permit is given back only when neither pass runs
                raise
            return mine, other.result()
        finally:
            self._calls.release()

    def _second(self) -> ThreadPoolExecutor:
        """The threads that run mirror images' passes beside the faces' (made when first needed): one fewer than
        the calls that may run at once, each such pass holding one of their permits."""
        with self._pool_made:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max(1, self.parallel - 1), thread_name_prefix="engine-mirror")
            return self._pool


def cpu_graph(net: torch.nn.Module, size: int, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """``net`` (eval, taking (B, 1, size, size) faces) as the CPU runs it fastest: in channels-last layout, traced
    into a TorchScript graph, frozen and optimised for inference (oneDNN convolutions fused with what follows them).
    The same outputs to float rounding (embeddings within 1e-5) at any batch size; about a quarter of a second to
    make. For SFace's MobileFaceNet on one thread, interleaved rounds: 15.5-19.5 ms a face against 18.4-25.2 ms
    eager, 26-33 against 34-40 ms for two (research/cpu_graph.py); not faster for the companion or the
    autoencoder. TorchScript is deprecated in favour of torch.compile, which needs a C++ compiler on the analyst's
    machine; where tracing fails (a torch without it), the network runs eager in channels-last layout (about half
    the gain).

    ``dtype`` bfloat16: the weights and the arithmetic in bfloat16 (float32 faces in, float32 embeddings out),
    which a CPU with AVX-512 BF16 or AMX runs in about half the time (research/cpu_graph.py); the outputs then
    differ from float32's by bfloat16's rounding (embeddings within cosine 0.999)."""
    layout = copy.deepcopy(net).eval().to(memory_format=torch.channels_last)
    if dtype != torch.float32:
        layout = _Arithmetic(layout.to(dtype), dtype)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", DeprecationWarning)
            traced = torch.jit.trace(layout, torch.zeros(1, 1, size, size), check_trace=False)
            return torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
    except Exception as exc:  # noqa: BLE001 - any failure of the optional graph leaves the eager network
        log.warning("%s runs eager (its TorchScript graph could not be made: %s)", type(net).__name__, exc)
        return layout


class _Arithmetic(torch.nn.Module):
    """A network whose weights are of ``dtype``, taking and giving float32 tensors."""

    def __init__(self, net: torch.nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.net, self.dtype = net, dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.to(self.dtype)).float()


def _pass_started(run, x: torch.Tensor, mirror: bool, pool: ThreadPoolExecutor,
                  futures: list) -> Callable[[], np.ndarray]:
    """``run`` on ``x`` here and, with ``mirror``, on its mirror image by ``pool`` (appended to ``futures``); the
    function returned gives the unit embedding when both are done."""
    mirrored = pool.submit(_inference, run, torch.flip(x, dims=[3])) if mirror else None
    if mirrored is not None:
        futures.append(mirrored)
    with torch.inference_mode():
        faces = run(x)

    def embedded() -> np.ndarray:
        with torch.inference_mode():
            both = faces + mirrored.result() if mirrored is not None else faces
            return torch.nn.functional.normalize(both, dim=1).float().cpu().numpy()
    return embedded


def _rows(embed: Callable[[torch.Tensor], np.ndarray], x: torch.Tensor, needed: np.ndarray | None,
          dim: int) -> np.ndarray:
    """``embed`` of the faces ``x`` that ``needed`` (N,) bool marks (all where None), rows of 0 (``dim`` wide) for
    the others: their network is not run."""
    if needed is None:
        return embed(x)
    out = np.zeros((len(x), dim), np.float32)
    if needed.any():
        out[needed] = embed(x[torch.from_numpy(needed)])
    return out


def _unit_halves(v: np.ndarray, d: int) -> np.ndarray:
    """Rows of ``v`` with their first ``d`` values and the rest each scaled to unit length (two embeddings side
    by side)."""
    out = np.asarray(v, np.float32).copy()
    for part in (out[:, :d], out[:, d:]):
        part /= np.maximum(np.linalg.norm(part, axis=1, keepdims=True), 1e-12)
    return out


def _inference(run, x: torch.Tensor) -> torch.Tensor:
    """``run(x)`` in inference mode (a thread's own setting: the pool's thread is not the caller's)."""
    with torch.inference_mode():
        return run(x)
