"""Gallery search: a probe embedding ranked against a gallery's embeddings of one model, and the open-set
decision. A store answers :meth:`Searchable.rank` (the store layer's GalleryStore protocol extends
:class:`Searchable`): each person's best similarity, for all people or for the best ones with a histogram
of the others; the ranking, the identity probabilities (softmax over people), the match probability and
the open-set decision are computed here, the same for every backend.

In memory (:class:`EmbeddingIndex`, the SQLite gallery's), search is vectorised: the embeddings of the
current model are held in one (N, D) float32 matrix sorted by person; similarities are one matrix-vector
product, per-person scores a ``maximum.reduceat`` over each person's rows, and the top k an
``argpartition``. A database server ranks in SQL instead (the PostgreSQL gallery).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
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
        self._names = np.array(people, dtype=object)[self.present] if len(order) else np.zeros(0, object)
        self._paths = np.array(self.paths, dtype=object)

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

    def ranking(self, query: np.ndarray, identity: dict, held: list[tuple[str, int]]) -> Ranking:
        """Every person's best similarity to ``query`` (Searchable.rank of a store holding this index)."""
        if len(self) == 0:
            return Ranking(np.zeros(0), [], np.zeros(0, np.int64), [], 0, 0, identity, held)
        best, rows = self.scores(query)
        return Ranking(best, self._names, self.image_ids[rows], self._paths[rows], int(best.size), len(self),
                       identity, held)


class Snapshot(NamedTuple):
    """What one consistent read of a gallery gives for one model version."""

    index: EmbeddingIndex
    identity: dict  # the store's identity() of this model version
    held: list[tuple[str, int]]  # (model version, embeddings) of every version, read only when index is empty


class Histogram(NamedTuple):
    """How many people have their best similarity in each bin (``counts[i]`` people within ``width / 2`` of
    ``centres[i]``)."""

    centres: np.ndarray
    counts: np.ndarray
    width: float


class Ranking(NamedTuple):
    """A store's answer to one search of one model version's embeddings, read so that its parts agree.

    ``best[j]`` is the best similarity of person ``people[j]``, reached with image ``image_ids[j]`` at
    ``paths[j]`` (any order). Either every person with an embedding is there (``len(best) ==
    people_total``), or the best ones are and ``others`` counts the rest by similarity (exact search of a
    large gallery), or the best ones alone are (approximate search: the others are unknown)."""

    best: np.ndarray
    people: Sequence[str]
    image_ids: np.ndarray
    paths: Sequence[str]
    people_total: int  # people with an embedding of this version
    embeddings: int  # embeddings of this version
    identity: dict  # the store's identity() of the content ranked
    held: list[tuple[str, int]]  # (model version, embeddings) of every version, read only when there are none
    others: Histogram | None = None  # the best similarities of the people not in ``best``


class Searchable(Protocol):
    """What a search needs of a gallery store."""

    @property
    def location(self) -> str:
        """Where the gallery is, as a user names it (a database file's path, a server's URL)."""
        ...

    def rank(self, model_version: str, query: np.ndarray, people: int) -> Ranking:
        """Each person's best similarity (inner product of the float32 vectors) to ``query`` among the
        embeddings of ``model_version``: at least the ``people`` best people (all, when there are fewer)."""
        ...


def search_gallery(store: Searchable, embedding: np.ndarray, calibration, model_version: str, probe_face_px: float,
                   top_k: int = 10, probe_sharpness: float | None = None,
                   fpir: float = DEFAULT_FPIR, paths: dict[str, float] | None = None) -> SearchOutcome:
    """Rank the gallery's people for one probe embedding (unit, or a joined bundle's query: FaceEngine.query).
    ``probe_sharpness`` (the variance of the Laplacian of the aligned probe crop) sets the match threshold of
    calibrations that take the probe's quality into account; they refuse a search without it.

    The best candidate is a confident lead when its match probability is at least 0.5 *and* the
    search's lead score reaches the open-set threshold for this many people: the score that searches
    of that many strangers reach in a share ``fpir`` of cases (MatchCalibration.open_set_threshold;
    a ``fpir`` outside the calibration's range is refused with GalleryError). ``paths``: the weight of each
    recogniser's cosine in the similarities (a joined bundle's, ``FaceEngine.path_weights``), kept in the result.

    A gallery with nobody in it gives an empty result ("empty gallery"); one whose people have no
    embedding of ``model_version`` (another model's only) is refused with GalleryError saying how to
    re-embed it. The result's ``gallery`` is the store's identity of the content searched; when the store
    ranked only the best people, its ``search`` entry adds how many and the largest error that leaves in an
    identity probability (:func:`_partial`)."""
    t0 = time.perf_counter()
    try:
        calibration.check_fpir(fpir)
    except ValueError as exc:
        raise GalleryError(str(exc)) from None
    ranking = store.rank(model_version, embedding, top_k)
    best, identity = ranking.best, dict(ranking.identity)
    if best.size == 0:
        _check_searchable(store.location, identity, ranking.held)
        return SearchOutcome([], False, float("nan"), 0, 0, model_version, probe_face_px,
                             probe_sharpness=probe_sharpness, fpir=fpir, gallery=identity, paths=paths)
    others = ranking.others
    probs = calibration.softmax(best, probe_sharpness, None if others is None else (others.centres, others.counts))
    k = min(top_k, best.size)
    top = np.argpartition(-best, k - 1)[:k]
    top = top[np.argsort(-best[top])]
    match = calibration.probability(best[top], probe_sharpness)
    cands = [Candidate(person=ranking.people[j], similarity=float(best[j]),
                       identity_probability=float(probs[j]), match_probability=float(m),
                       image_path=ranking.paths[j], image_id=int(ranking.image_ids[j]))
             for j, m in zip(top, match, strict=True)]
    open_thr = calibration.open_set_threshold(ranking.people_total, fpir)
    lead = float(calibration.lead_score(best))  # the best similarity itself for calibrations before the table
    confident = bool(match[0] >= 0.5 and lead >= open_thr)
    if best.size < ranking.people_total:
        temperature = float(calibration.search_temperature(probe_sharpness))
        identity["search"] = {**identity.get("search", {}), **_partial(ranking, probs, temperature)}
    return SearchOutcome(cands, confident, calibration.threshold(probe_sharpness), ranking.people_total,
                         ranking.embeddings, model_version, probe_face_px, time.perf_counter() - t0, probe_sharpness,
                         open_thr, fpir, lead if calibration.open_set else float("nan"), identity, paths)


def _partial(ranking: Ranking, probs: np.ndarray, temperature: float) -> dict:
    """What a search that ranked only the best people records: how many it ranked, and how far its identity
    probabilities may be at most from the softmax over all people (``temperature`` the softmax's).

    With a histogram of the others, each is counted at its bin's centre: its term ``exp((s - s1) / T)``
    is off by a factor within ``exp(±w / 2T)``, so a probability by at most ``p * expm1(w / 2T)``. Without
    one, the others are only known to be below the lowest ranked similarity ``sR``: they add at most
    ``H = (P - R) exp((sR - s1) / T)`` to the denominator ``S``, lowering a probability by at most
    ``p H / (S + H)`` (the probabilities given are those over the ranked people: upper bounds)."""
    best, others = ranking.best, ranking.others
    record = {"people_ranked": int(best.size), "others": "histogram" if others is not None else "unknown"}
    if others is not None:
        error = probs.max() * np.expm1(others.width / (2 * temperature))
        return {**record, "identity_probability_error_max": float(error)}
    rest = (ranking.people_total - best.size) * np.exp((best.min() - best.max()) / temperature)
    total = 1.0 / probs.max()  # the ranked people's sum, the best person's term being 1
    return {**record, "identity_probability_error_max": float(probs.max() * rest / (total + rest))}


def _check_searchable(location: str, identity: dict, held: list[tuple[str, int]]) -> None:
    """GalleryError when a gallery with no embedding to compare has people (another model's only)."""
    people, model_version = identity["people_enrolled"], identity["model_version"]
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
