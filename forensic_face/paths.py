"""The one place that finds resources, caches and the shared data folder.

Works from a source checkout, an installed wheel and a PyInstaller one-folder build (where the
package lives under ``sys._MEIPASS``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent

#: Environment variable that overrides where the shared data (LFW, protocol lists, voices) is read.
DATA_ENV = "FORENSIC_FACE_DATA"
#: Environment variable that overrides where the pre-trained weights to start from (``../shared/weights``) are read:
#: by training only; the product never reads them at run time.
WEIGHTS_ENV = "FORENSIC_FACE_WEIGHTS"
#: Environment variable that overrides the cache directory (numba cache, scratch files).
CACHE_ENV = "FORENSIC_FACE_CACHE"


def resources_dir() -> Path:
    """Folder holding shipped resources (model weights, model cards)."""
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / "resources"
    return _PACKAGE_DIR.parent / "resources"


def models_dir() -> Path:
    """Folder holding the shipped model weights and their cards."""
    return resources_dir() / "models"


def cache_dir() -> Path:
    """Per-user cache folder; created on demand by the callers that write to it."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "forensic_face"


def shared_data_dir() -> Path | None:
    """The shared data folder (``lfw/``, ``lfw-protocol/``, ``lfw-voices/``) or None when absent.

    ``$FORENSIC_FACE_DATA`` wins; otherwise ``../shared/data`` beside the project checkout.
    """
    env = os.environ.get(DATA_ENV)
    candidates = [Path(env)] if env else [_PACKAGE_DIR.parent.parent / "shared" / "data"]
    for path in candidates:
        if path.is_dir():
            return path
    return None


def shared_weights_dir() -> Path | None:
    """The pre-trained weights folder (SFace, YuNet: see its README) or None when absent; for training only.

    ``$FORENSIC_FACE_WEIGHTS`` wins; otherwise ``../shared/weights`` beside the project checkout.
    """
    env = os.environ.get(WEIGHTS_ENV)
    path = Path(env) if env else _PACKAGE_DIR.parent.parent / "shared" / "weights"
    return path if path.is_dir() else None


def configure_runtime() -> None:
    """Process-wide settings that must happen before heavy imports.

    numba (used by librosa) compiles on first call; a persistent cache directory means that cost
    is paid once per machine rather than once per process.
    """
    if "NUMBA_CACHE_DIR" not in os.environ:
        numba_cache = cache_dir() / "numba"
        try:
            numba_cache.mkdir(parents=True, exist_ok=True)
            os.environ["NUMBA_CACHE_DIR"] = str(numba_cache)
        except OSError:
            pass  # read-only home: numba falls back to compiling in memory
