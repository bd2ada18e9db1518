"""Fixtures for the audio tests: synthetic signals are made in each test; the shared voices are optional."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from forensic_face.paths import shared_data_dir


@pytest.fixture(scope="session")
def voices_dir() -> Path:
    """``lfw-voices/`` of the shared data; skips the test when it is not on this machine."""
    data = shared_data_dir()
    if data is None or not (data / "lfw-voices").is_dir():
        pytest.skip("shared data with lfw-voices/ not found (set FORENSIC_FACE_DATA to ../shared/data)")
    return data / "lfw-voices"


@pytest.fixture(scope="session")
def two_clip_people(voices_dir: Path) -> list[str]:
    """Sorted names of the people that have both a _v01 and a _v02 clip (from manifest.csv)."""
    manifest = voices_dir / "manifest.csv"
    if manifest.is_file():
        with manifest.open(newline="") as fh:
            clips = {row["clip"] for row in csv.DictReader(fh)}
        people = sorted(c.split("/")[0] for c in clips if c.endswith("_v02.ogg"))
    else:
        people = sorted(p.parent.name for p in voices_dir.glob("*/*_v02.ogg"))
    people = [p for p in people if (voices_dir / p / f"{p}_v01.ogg").is_file()]
    if len(people) < 20:
        pytest.skip(f"only {len(people)} people with two voice clips in {voices_dir}")
    return people
