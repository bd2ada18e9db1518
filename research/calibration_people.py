"""What the research scripts that score the installed bundle on the calibration people start from (held out of every
training; never DevTest): the LFW index and split, the bundle's engine, the calibration pairs and their identification
set (one clean image per person as the gallery, the pairs' second images as searches), and rank-1 of a search."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from forensic_face.engine.inference import FaceEngine
from forensic_face.paths import shared_data_dir
from forensic_face.training.evaluate import IdentificationSets, identification_sets
from forensic_face.training.lfw import FolderIndex, Pair
from forensic_face.training.split import load_split_data


def models_parser(doc: str | None) -> argparse.ArgumentParser:
    """A script's parser with ``--models`` (the bundle scored; default the installed one)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=Path("resources/models"))
    return ap


@dataclass
class CalibrationPeople:
    index: FolderIndex
    cache: dict
    engine: FaceEngine
    pairs: list[Pair]
    same: np.ndarray  # (pairs,) bool
    sets: IdentificationSets

    @classmethod
    def load(cls, models: Path) -> CalibrationPeople:
        index, split, cache = load_split_data(shared_data_dir() / "lfw")
        pairs = split.calib_pairs
        return cls(index, cache, FaceEngine(models, device="cpu"), pairs, np.array([p.same for p in pairs]),
                   identification_sets(pairs))

    def header(self) -> dict:
        """The bundle and the set, for a script's JSON."""
        return {"models": self.engine.info.version, "precision": self.engine.info.params["precision"],
                "searches": int(self.sets.closed.size), "gallery": len(self.sets.gallery_paths)}


def first(sims: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(searches,) bool: the right person (``truth``, a row's column) has the highest similarity of ``sims``
    (searches, people) with no other person above it."""
    return (sims > sims[np.arange(len(truth)), truth][:, None]).sum(1) == 0
