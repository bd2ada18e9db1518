"""Gallery search: a probe embedding ranked against a gallery's embeddings of one model, and the open-set
decision. It reads what it compares from a store's snapshot (any backend: the store layer's GalleryStore
protocol extends :class:`Searchable`).

Search is vectorised: the embeddings of the current model are held in one (N, D) float32 matrix
sorted by person; similarities are one matrix-vector product, per-person scores a
``maximum.reduceat`` over each person's rows, and the top k an ``argpartition``.
"""

from __future__ import annotations

import time
from typing import NamedTuple, Protocol

import numpy as np

from forensic_face.core.errors import GalleryError, enrol_command
from forensic_face.core.records import DEFAULT_FPIR, Candidate, SearchOutcome


class EmbeddingIndex:
    """Embeddings of one model sorted by person, for vectorised search."""

    def __init__(self, vectors: np.ndarray, person_idx: np.ndarray, people: list[str], image_ids: np.ndarray,
                 paths: list[str]) -> None:
        order = np.argsort(person_idx, kind="stable")
        self.vectors = np.ascontiguousarray(vectors[order], dtype=np.float32)  # (N, D)
        self.person_idx = person_idx[order]
        self.image_ids = image_ids[order]
        self.paths = [paths[i] for i in order]
        self.people = people
        starts = np.r_[0, np.nonzero(np.diff(self.person_idx))[0] + 1] if len(order) else np.zeros(0, int)
        self.starts = starts.astype(np.int64)
        self.present = self.person_idx[starts] if len(order) else np.zeros(0, int)  # person of each run

    def __len__(self) -> int:
        return self.vectors.shape[0]

    def scores(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-person best similarity (P,) and the row of that best match (P,), P = people with embeddings."""
        sims = self.vectors @ np.asarray(query, np.float32)  # (N,)
        best = np.maximum.reduceat(sims, self.starts)
        # row of the maximum within each run: the first row whose similarity equals the run's best
        run = np.repeat(np.arange(self.starts.size), np.diff(np.r_[self.starts, sims.size]))
        hit = np.nonzero(sims == best[run])[0]
        first = np.full(self.starts.size, -1, np.int64)
        first[run[hit][::-1]] = hit[::-1]
        return best, first


class Snapshot(NamedTuple):
    """What one consistent read of a gallery gives for one model version."""

    index: EmbeddingIndex
    identity: dict  # the store's identity() of this model version
    held: list[tuple[str, int]]  # (model version, embeddings) of every version, read only when index is empty


class Searchable(Protocol):
    """What a search needs of a gallery store."""

    @property
    def location(self) -> str:
        """Where the gallery is, as a user names it (a database file's path)."""
        ...

    def snapshot(self, model_version: str) -> Snapshot:
        """The search index, identity and held model versions of ``model_version``, read so that they agree."""
        ...


def search_gallery(store: Searchable, embedding: np.ndarray, calibration, model_version: str, probe_face_px: float,
                   top_k: int = 10, probe_sharpness: float | None = None,
                   fpir: float = DEFAULT_FPIR) -> SearchOutcome:
    """Rank the gallery's people for one L2-normalised probe embedding. ``probe_sharpness`` (the
    variance of the Laplacian of the aligned probe crop) sets the match threshold of calibrations
    that take the probe's quality into account; they refuse a search without it.

    The best candidate is a confident lead when its match probability is at least 0.5 *and* the
    search's lead score reaches the open-set threshold for this many people: the score that searches
    of that many strangers reach in a share ``fpir`` of cases (MatchCalibration.open_set_threshold;
    a ``fpir`` outside the calibration's range is refused with GalleryError).

    A gallery with nobody in it gives an empty result ("empty gallery"); one whose people have no
    embedding of ``model_version`` (another model's only) is refused with GalleryError saying how to
    re-embed it. The result's ``gallery`` is the store's identity of the content searched."""
    t0 = time.perf_counter()
    try:
        calibration.check_fpir(fpir)
    except ValueError as exc:
        raise GalleryError(str(exc)) from None
    snapshot = store.snapshot(model_version)
    idx, identity = snapshot.index, snapshot.identity
    if len(idx) == 0:
        _check_searchable(store.location, snapshot)
        return SearchOutcome([], False, float("nan"), 0, 0, model_version, probe_face_px,
                             probe_sharpness=probe_sharpness, fpir=fpir, gallery=dict(identity))
    best, rows = idx.scores(embedding)
    probs = calibration.softmax(best, probe_sharpness)
    k = min(top_k, best.size)
    top = np.argpartition(-best, k - 1)[:k]
    top = top[np.argsort(-best[top])]
    match = calibration.probability(best[top], probe_sharpness)
    cands = [Candidate(person=idx.people[idx.present[j]], similarity=float(best[j]),
                       identity_probability=float(probs[j]), match_probability=float(m),
                       image_path=idx.paths[rows[j]], image_id=int(idx.image_ids[rows[j]]))
             for j, m in zip(top, match, strict=True)]
    open_thr = calibration.open_set_threshold(int(best.size), fpir)
    lead = float(calibration.lead_score(best))  # the best similarity itself for calibrations before the table
    confident = bool(match[0] >= 0.5 and lead >= open_thr)
    return SearchOutcome(cands, confident, calibration.threshold(probe_sharpness), int(best.size),
                         len(idx), model_version, probe_face_px, time.perf_counter() - t0, probe_sharpness,
                         open_thr, fpir, lead if calibration.open_set else float("nan"), dict(identity))


def _check_searchable(location: str, snapshot: Snapshot) -> None:
    """GalleryError when a snapshot with no embedding to compare has people (another model's only)."""
    people, held = snapshot.identity["people_enrolled"], snapshot.held
    model_version = snapshot.identity["model_version"]
    if people == 0:
        return
    if not held:
        raise GalleryError(f"{location}: the gallery holds {people} people but no embeddings (none of their "
                           f"images had a usable face); enrol images with visible faces: {enrol_command(location)}")
    versions = ", ".join(f"{v} ({n} embeddings)" for v, n in held)
    raise GalleryError(
        f"{location}: the gallery's {people} people were embedded with model version(s) {versions}, not with "
        f"{model_version}, the model this search uses; re-embed the gallery for it by enrolling the same "
        f"people folder again: {enrol_command(location)} (images already enrolled are embedded with the "
        "current model; nothing is removed)")
