"""Copying a gallery into another store (an SQLite file into a PostgreSQL database and back), through the
gallery protocol, and checking the copy: each model version's content checksum and people, and searches
of a sample of the gallery's own embeddings, must be the same in both.

The copy is resumable and idempotent: people are matched by name, images by person and SHA-256, and
embeddings replace those of the same image and model version, so running it again after an interruption
completes it without duplicates. Row ids and enrolment times are the destination's own.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from forensic_face.core.errors import GalleryError
from forensic_face.core.progress import Progress
from forensic_face.store.gallery import GalleryStore, open_gallery

log = logging.getLogger(__name__)

#: Similarities of the same search on both stores may differ by the rounding of a float32 sum.
SIMILARITY_TOLERANCE = 1e-5


@dataclass
class MigrationReport:
    source: str
    destination: str
    people: int = 0
    images: int = 0
    embeddings: dict[str, int] = field(default_factory=dict)  # model version -> embeddings copied
    content_sha256: dict[str, str] = field(default_factory=dict)  # model version -> the same in both stores
    searches_compared: int = 0
    max_similarity_difference: float = 0.0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def migrate_gallery(source: str, destination: str, *, sample: int = 100, batch: int = 1000,
                    progress: Progress | None = None) -> MigrationReport:
    """Copy the gallery at ``source`` into ``destination`` (created when missing) and check the copy
    (GalleryError, saying what differs, when it is not the same: e.g. a destination that held other
    people already). ``sample``: how many of the gallery's embeddings are searched in both."""
    t0 = time.perf_counter()
    with open_gallery(source) as src, open_gallery(destination, mode="create") as dst:
        report = MigrationReport(src.location, dst.location)
        ids = _copy_images(src, dst, progress)
        for version in src.info()["embeddings_by_model"]:
            report.embeddings[version] = _copy_embeddings(src, dst, version, ids, batch, progress)
        report.people, report.images = dst.info()["people"], len(ids)
        _verify(src, dst, report, sample)
    report.seconds = time.perf_counter() - t0
    return report


def _copy_images(src: GalleryStore, dst: GalleryStore, progress: Progress | None) -> dict[int, int]:
    """Every image row (and its person) into ``dst``: source image id -> destination image id."""
    total = src.info()["images"]
    people: dict[str, int] = {}
    ids: dict[int, int] = {}
    for k, image in enumerate(src.images()):
        if progress is not None:
            progress.update(k, total, "copying images")
        if image.person not in people:
            people[image.person] = dst.person_id(image.person)
        ids[image.id] = dst.add_image(people[image.person], image.path, image.sha256, image.status, image.message,
                                      image.face_px, image.method)
    return ids


def _copy_embeddings(src: GalleryStore, dst: GalleryStore, version: str, ids: dict[int, int], batch: int,
                     progress: Progress | None) -> int:
    """The embeddings of ``version``, with their thumbnails and the arithmetic they were made in, into ``dst`` in
    batches; how many."""
    total = src.info()["embeddings_by_model"][version]
    arithmetic = src.identity(version).get("arithmetic", [])
    done, pending = 0, []
    for image_id, vector in src.embeddings(version):
        pending.append((ids[image_id], vector, src.thumbnail(image_id)))
        if len(pending) >= batch:
            dst.store_embeddings(version, pending, arithmetic)
            done, pending = done + len(pending), []
            if progress is not None:
                progress.update(done, total, f"copying embeddings of {version}")
    if pending:
        dst.store_embeddings(version, pending, arithmetic)
        done += len(pending)
    return done


def _verify(src: GalleryStore, dst: GalleryStore, report: MigrationReport, sample: int) -> None:
    """GalleryError unless both stores hold the same people and content for every model version, and the
    same searches give the same best people with the same similarities."""
    if src.info()["people"] != report.people:
        raise GalleryError(f"{dst.location}: the copy holds {report.people} people, the source "
                           f"{src.info()['people']}; was the destination empty?")
    for version in report.embeddings:
        want, got = src.identity(version)["content_sha256"], dst.identity(version)["content_sha256"]
        if want != got:
            raise GalleryError(f"{dst.location}: the embeddings of {version} differ from the source's after the "
                               f"copy (content SHA-256 {got} against {want}); was the destination empty?")
        report.content_sha256[version] = want
        for probe in _sample(src, version, sample):
            report.max_similarity_difference = max(report.max_similarity_difference,
                                                   _compare_search(src, dst, version, probe))
            report.searches_compared += 1


def _sample(src: GalleryStore, version: str, n: int) -> list[np.ndarray]:
    """Up to ``n`` of the version's embeddings, spread evenly over them (read as a stream)."""
    step = max(1, src.info()["embeddings_by_model"][version] // max(n, 1))
    return [v for k, (_, v) in enumerate(src.embeddings(version)) if k % step == 0][:n]


def _compare_search(src: GalleryStore, dst: GalleryStore, version: str, probe: np.ndarray, k: int = 10) -> float:
    """The largest difference between the similarities of the ``k`` best people of one search in both
    stores (GalleryError when they are other people, beyond ties at the k-th place)."""
    a, b = (_best(store.rank(version, probe, k), k) for store in (src, dst))
    if a.keys() != b.keys():
        tenth = min(min(a.values()), min(b.values()))
        differ = {p for p in a.keys() ^ b.keys() if abs(a.get(p, b.get(p)) - tenth) > SIMILARITY_TOLERANCE}
        if differ:
            raise GalleryError(f"{dst.location}: a search of {version} finds other people than in the source "
                               f"({', '.join(sorted(differ)[:5])})")
    worst = max((abs(a[p] - b[p]) for p in a.keys() & b.keys()), default=0.0)
    if worst > SIMILARITY_TOLERANCE:
        raise GalleryError(f"{dst.location}: a search of {version} gives other similarities than the source's "
                           f"(by up to {worst:.2g})")
    return worst


def _best(ranking, k: int) -> dict[str, float]:
    order = np.argsort(-ranking.best, kind="stable")[:k]
    return {ranking.people[j]: float(ranking.best[j]) for j in order}
