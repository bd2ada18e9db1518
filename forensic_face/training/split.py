"""Identity-disjoint splits: test people (never trained on, never used for fitting), calibration
people (held out of training; thresholds, match probability and softmax temperature are fitted on
their pairs) and training people (everyone else).

On LFW (the protocol lists beside the image folder): test = the people of ``pairsDevTest``;
calibration = the people of ``CALIB_PAIRS`` pairs drawn (seeded) from ``pairsDevTrain``. On any
other folder: a seeded 5 % of the people with two or more images for test and as much for
calibration, with generated pairs. Either way more pairs are made among the calibration people
(``made_pairs``), on which the match logistic is fitted beside the drawn ones.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from forensic_face.core.progress import Progress
from forensic_face.training.lfw import FolderIndex, Pair, build_face_cache, index_folder, people_in, read_pairs

CALIB_PAIRS = 600  # half matched, half mismatched
#: Matched pairs made per calibration person beyond the drawn ones (as many mismatched pairs are made): the match
#: logistic fitted on them too had the higher held-out likelihood (research/calibration_pairs.py and its rule).
CALIB_MADE_CAP = 6


@dataclass(frozen=True)
class Split:
    train_people: frozenset[str]
    calib_people: frozenset[str]
    test_people: frozenset[str]
    calib_pairs: list[Pair]
    test_pairs: list[Pair]
    source: str  # "lfw-view1" or "seeded"
    calib_made: tuple[Pair, ...] = ()  # more pairs among the calibration people (``made_pairs``)

    def describe(self) -> dict:
        return {"source": self.source, "train_people": len(self.train_people),
                "calib_people": len(self.calib_people), "test_people": len(self.test_people),
                "calib_pairs": len(self.calib_pairs), "calib_made_pairs": len(self.calib_made),
                "calib_made_cap": CALIB_MADE_CAP, "test_pairs": len(self.test_pairs)}


def protocol_dir(index: FolderIndex) -> Path:
    return index.root.parent / f"{index.root.name}-protocol"


def load_split_data(folder: Path, progress: Progress | None = None, workers: int = 2,
                    seed: int = 0) -> tuple[FolderIndex, Split, dict]:
    """A people folder indexed, split identity-disjointly, and its face cache with the teacher's
    descriptors: what evaluation and the scripts that measure a model bundle start from."""
    index = index_folder(folder)
    split = make_split(index, seed)
    return index, split, build_face_cache(index, progress, with_teacher=True, workers=workers)


def make_split(index: FolderIndex, seed: int = 0) -> Split:
    proto = protocol_dir(index)
    existing = set(index.paths)
    if (proto / "pairsDevTest.txt").is_file() and (proto / "pairsDevTrain.txt").is_file():
        test_pairs = [p for p in read_pairs(proto / "pairsDevTest.txt") if p.a in existing and p.b in existing]
        dev_train = [p for p in read_pairs(proto / "pairsDevTrain.txt") if p.a in existing and p.b in existing]
        rng = np.random.default_rng(seed)
        same = [p for p in dev_train if p.same]
        diff = [p for p in dev_train if not p.same]
        half = CALIB_PAIRS // 2
        calib = [same[i] for i in sorted(rng.choice(len(same), min(half, len(same)), replace=False))]
        calib += [diff[i] for i in sorted(rng.choice(len(diff), min(half, len(diff)), replace=False))]
        test_people = people_in(test_pairs)
        calib_people = people_in(calib) - test_people
        calib = [p for p in calib if not people_in([p]) & test_people]
        source = "lfw-view1"
    else:
        test_pairs, calib, test_people, calib_people = _seeded_pairs(index, seed)
        source = "seeded"
    train = frozenset(set(index.people) - test_people - calib_people)
    return Split(train, frozenset(calib_people), frozenset(test_people), calib, test_pairs, source,
                 tuple(made_pairs(index, calib_people, calib, CALIB_MADE_CAP)))


def made_pairs(index: FolderIndex, people: set[str] | frozenset[str], drawn: list[Pair], cap: int,
               seed: int = 1) -> list[Pair]:
    """Pairs among ``people`` that ``drawn`` does not hold: for every person with two or more images up to ``cap``
    matched pairs (image pairs drawn without replacement, order random), then as many mismatched pairs of two
    different people (one image of each, drawn at random; fewer where that many are not there)."""
    rng = np.random.default_rng(seed)
    images: dict[str, list[str]] = defaultdict(list)
    for path, person in zip(index.paths, index.people, strict=True):
        if person in people:
            images[person].append(path)
    taken = {frozenset((p.a, p.b)) for p in drawn}
    same: list[Pair] = []
    for person in sorted(images):
        combos = [c for c in itertools.combinations(sorted(images[person]), 2) if frozenset(c) not in taken]
        for k in sorted(rng.choice(len(combos), min(cap, len(combos)), replace=False)) if combos else []:
            a, b = combos[k] if rng.random() < 0.5 else combos[k][::-1]
            same.append(Pair(a, b, True))
            taken.add(frozenset((a, b)))
    names = sorted(images)
    diff: list[Pair] = []
    tries = 0
    while len(diff) < len(same) and len(names) >= 2 and tries < 100 * (len(same) + 1):  # few images: fewer pairs
        tries += 1
        i, j = rng.choice(len(names), 2, replace=False)
        a = images[names[i]][rng.integers(len(images[names[i]]))]
        b = images[names[j]][rng.integers(len(images[names[j]]))]
        if frozenset((a, b)) not in taken:
            diff.append(Pair(a, b, False))
            taken.add(frozenset((a, b)))
    return same + diff


def _seeded_pairs(index: FolderIndex, seed: int):
    rng = np.random.default_rng(seed)
    by_person: dict[str, list[str]] = defaultdict(list)
    for path, person in zip(index.paths, index.people, strict=True):
        by_person[person].append(path)
    multi = sorted(p for p, v in by_person.items() if len(v) >= 2)
    rng.shuffle(multi)
    k = max(2, len(multi) // 20)
    groups = (multi[:k], multi[k:2 * k])
    out = []
    for people in groups:
        pairs = []
        n = min(300, 4 * len(people))
        for _ in range(n // 2):
            who = people[rng.integers(len(people))]
            a, b = rng.choice(len(by_person[who]), 2, replace=False)
            pairs.append(Pair(by_person[who][a], by_person[who][b], True))
        for _ in range(n // 2):
            i, j = rng.choice(len(people), 2, replace=False)
            pa, pb = by_person[people[i]], by_person[people[j]]
            pairs.append(Pair(pa[rng.integers(len(pa))], pb[rng.integers(len(pb))], False))
        out.append(pairs)
    return out[1], out[0], set(groups[1]), set(groups[0])
