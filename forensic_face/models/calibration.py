"""Score calibration: the "same person" probability and the gallery softmax temperature.

Match probability: logistic regression of the label (same person or not) on the cosine similarity
``s`` and the probe's sharpness, ``p = sigmoid(w0 + w1 s + w2 q + w3 s q)``, fitted by Newton's method
with a small ridge term on held-out pairs pooled over the clean, mild and severe levels (with and
without audio); the decision threshold is ``p >= 0.5``.

``q = log(1 + variance of the Laplacian)`` of the aligned grey face crop the recogniser sees (the
sharpness of :mod:`forensic_face.vision.quality`), clipped to the range met in calibration
(``quality_range``), so a probe sharper or blurrier than anything fitted is treated as the nearest
fitted case instead of extrapolating. Why: a degraded probe's same-person similarities are lower, so
one pooled threshold is too lenient for sharp probes and too strict for blurred ones (with the pooled
fit of model ff-2026-11-26-19f697db, DevTest's clean pairs given p = 0.4-0.5 were the same person in
10 % of cases, severe ones given 0.3-0.4 in 52 %). Face width is not used: the evaluation levels upscale
the degraded frame back to full size, so the detected box width does not measure the face's real
resolution (a term fitted on it extrapolated wrongly to genuinely small faces).

Older bundles carry no ``quality_range``; their ``w2 = w3 = 0`` and the probe's sharpness is ignored.

Open set: the match probability is a one-to-one figure, but a gallery search makes one comparison per
enrolled person, and the best of many strangers passes a one-to-one threshold almost surely (on DevTest's
696-person gallery every search for a person not enrolled did). A lead therefore also needs its *lead
score* to reach ``open_set_threshold(n, fpir)``, the score that searches of ``n`` people for someone who
is not among them reach in a share ``fpir`` of cases.

The lead score (``open_set``, the table of bundles since 2026-11-27) is the best person's similarity less
half the mean similarity of the next three, ``s1 - 0.5 mean(s2..s4)`` (fewer neighbours in a smaller
gallery; ``s1`` alone with one person): how far the best candidate stands out from the probe's next
nearest people. One probe's similarities to a gallery rise and fall together (a face that resembles
many people resembles all of them a little), so the neighbours carry what the best stranger of a search
would reach. Its threshold is read from the calibration searches themselves: every calibration probe at
13 degradation levels searched against random sets of ``n`` calibration people it is not, the
``1 - fpir`` quantile of the lead score per ``n`` (a grid from 1 to the calibration gallery's size,
interpolated in ``log n``; beyond the grid extrapolated along the fitted slope against ``log n``), for
false-lead rates of 0.5-10 %. On the calibration searches this gave twice the leads of the best
similarity alone at the same measured false-lead rate in galleries of a few hundred people, and about as
many in galleries of 5-20.

Bundles fitted before the table carry ``impostor_tail`` only: there the lead score is the best similarity
and the threshold is ``1 - (1 - FMR(t))^n = fpir`` with FMR from the stranger similarities' empirical
tail (an exponential tail beyond 1e-3), which counts the comparisons as independent and so errs high.
Bundles with neither have no open-set threshold.

Temperature: the gallery softmax ``softmax(s_k / T)`` over per-person similarities; ``T`` minimises
the negative log-likelihood of the true identity on held-out closed-set searches. With
``temperature_q = (a, b, c)`` it depends on the probe's sharpness too, ``T = exp(a + b q + c q^2)``
(bundles of 2026-11-27 before that carry ``(a, b)``, ``c = 0``): a sharp probe's ranking is more
reliable, so its probabilities may be more decided (one temperature made the clean searches' identity
probabilities under-confident: top-1 right 48 % of the time at a mean stated 31 %); the square term lets
mildly degraded probes, whose sharpness lies between, have a temperature of their own (with the linear
form their probabilities were under-confident: 0.22 stated where 39 % were right). Without the probe's
sharpness the single ``temperature`` is used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from forensic_face.core.records import DEFAULT_FPIR


def sharpness_feature(sharpness: np.ndarray | float) -> np.ndarray:
    """q = log(1 + sharpness), the variance of the Laplacian of the aligned grey crop (0..255 units)."""
    return np.log1p(np.maximum(np.asarray(sharpness, dtype=np.float64), 0.0))


def _design(sim: np.ndarray, q: np.ndarray) -> np.ndarray:
    sim = np.asarray(sim, dtype=np.float64)
    q = np.broadcast_to(np.asarray(q, dtype=np.float64), sim.shape)
    return np.stack([np.ones_like(sim), sim, q, sim * q], axis=-1)


@dataclass(frozen=True)
class MatchCalibration:
    weights: tuple[float, float, float, float]  # w0 (bias), w1 (similarity), w2 (quality), w3 (interaction)
    temperature: float  # gallery softmax temperature
    n_pairs: int  # held-out pairs it was fitted on
    n_searches: int  # held-out searches the temperature was fitted on
    quality_range: tuple[float, float] | None = None  # fitted range of q; None: no quality term (w2 = w3 = 0)
    # stranger similarities of calibration searches: {"fmr": [...], "similarity": [...]} (the quantile table,
    # FMR falling from 0.5 to TAIL_FMR), "tail_scale" (exponential tail beyond), "n" (scores it came from)
    impostor_tail: dict | None = None
    temperature_q: tuple[float, ...] | None = None  # (a, b[, c]): T = exp(a + b q + c q^2); None: one temperature
    # the lead-score thresholds of gallery searches (fit_open_set_table); None: older bundles (impostor_tail)
    open_set: dict | None = None

    @property
    def uses_quality(self) -> bool:
        return self.quality_range is not None

    def quality(self, sharpness: np.ndarray | float | None) -> np.ndarray:
        """q for the probe(s), clipped to the fitted range (0 when the calibration has no quality term)."""
        if not self.uses_quality:
            return np.zeros(np.shape(sharpness) if sharpness is not None else ())
        if sharpness is None:
            raise ValueError("this match calibration needs the probe face's sharpness")
        lo, hi = self.quality_range
        return np.clip(sharpness_feature(sharpness), lo, hi)

    def probability(self, sim: np.ndarray | float, sharpness: np.ndarray | float | None) -> np.ndarray:
        """Match probability of similarity ``sim`` for a probe crop of this sharpness (variance of the
        Laplacian of the aligned grey crop; ignored by calibrations without a quality term)."""
        z = _design(np.asarray(sim), self.quality(sharpness)) @ np.asarray(self.weights)
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    def threshold(self, sharpness: float | None) -> float:
        """The similarity at which the match probability is 0.5 for a probe crop of this sharpness."""
        w0, w1, w2, w3 = self.weights
        q = float(self.quality(sharpness))
        slope = w1 + w3 * q
        return float(-(w0 + w2 * q) / slope) if abs(slope) > 1e-9 else float("inf")

    def lead_score(self, sims: np.ndarray) -> np.ndarray:
        """The lead score of gallery searches from their per-person similarities (last axis, any order):
        the best less ``beta`` times the mean of the next ``neighbours``; the best alone for older bundles."""
        sims = np.asarray(sims, np.float64)
        if not self.open_set:
            return sims.max(axis=-1)
        return lead_score(sims, float(self.open_set["beta"]), int(self.open_set["neighbours"]))

    def open_set_threshold(self, n_people: int, fpir: float = DEFAULT_FPIR) -> float:
        """The lead score that searches of ``n_people`` people for someone not among them reach in a share
        ``fpir`` of cases (-inf without an open-set calibration)."""
        if n_people < 1:
            return float("-inf")
        if self.open_set:
            return open_set_lookup(self.open_set, n_people, fpir)
        if not self.impostor_tail:
            return float("-inf")
        target = -np.expm1(np.log1p(-fpir) / n_people)  # the one-to-one FMR that gives this FPIR
        fmr = np.asarray(self.impostor_tail["fmr"], np.float64)
        sim = np.asarray(self.impostor_tail["similarity"], np.float64)
        if target >= fmr[-1]:  # inside the measured table: interpolate log(FMR) against similarity
            return float(np.interp(np.log(target), np.log(fmr[::-1]), sim[::-1]))
        return float(sim[-1] + self.impostor_tail["tail_scale"] * np.log(fmr[-1] / target))

    def check_fpir(self, fpir: float) -> None:
        """Refuse (ValueError) a false-lead rate outside those the open-set table was measured for."""
        if self.open_set:
            _check_fpir(self.open_set, fpir)

    @property
    def fpir_range(self) -> tuple[float, float] | None:
        """The false-lead rates the open-set threshold can be set for (None: any, or no open-set control)."""
        if not self.open_set:
            return None
        return float(min(self.open_set["fpir"])), float(max(self.open_set["fpir"]))

    def search_temperature(self, sharpness: np.ndarray | float | None = None) -> np.ndarray:
        """The softmax temperature for probes of this sharpness (the single one without it)."""
        if self.temperature_q is None or sharpness is None or not self.uses_quality:
            return np.full(np.shape(sharpness) if sharpness is not None else (), self.temperature)
        q = self.quality(sharpness)
        return np.exp(np.clip(sum(w * q**k for k, w in enumerate(self.temperature_q)), *LOG_TEMPERATURES))

    def softmax(self, sims: np.ndarray, sharpness: np.ndarray | float | None = None,
                others: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Identity probabilities over the last axis of ``sims``; ``sharpness`` a scalar or one per row.
        ``others`` (one search only): (similarity, count) of people not in ``sims`` who share the
        denominator, ``count`` of them at each ``similarity`` (a histogram's bin centres)."""
        t = self.search_temperature(sharpness)
        z = np.asarray(sims, dtype=np.float64) / (t[..., None] if np.ndim(t) else t)
        top = z.max(axis=-1, keepdims=True)
        z = z - top
        e = np.exp(z)
        total = e.sum(axis=-1, keepdims=True)
        if others is not None:
            total = total + np.sum(others[1] * np.exp(np.asarray(others[0], np.float64) / t - top))
        return e / total

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> MatchCalibration:
        q = d.get("quality_range")
        return cls(weights=tuple(float(v) for v in d["weights"]), temperature=float(d["temperature"]),
                   n_pairs=int(d["n_pairs"]), n_searches=int(d["n_searches"]),
                   quality_range=(float(q[0]), float(q[1])) if q is not None else None,
                   impostor_tail=d.get("impostor_tail"),
                   temperature_q=tuple(float(v) for v in d["temperature_q"]) if d.get("temperature_q") else None,
                   open_set=d.get("open_set"))


#: Percentiles of the calibration probes' q that bound the fitted range.
QUALITY_PERCENTILES = (1.0, 99.0)


def fit_logistic(sim: np.ndarray, same: np.ndarray, sharpness: np.ndarray | None = None, ridge: float = 1e-3,
                 iters: int = 50) -> tuple[tuple[float, float, float, float], tuple[float, float] | None]:
    """Newton-Raphson fit of the match logistic: (weights, quality_range).

    With ``sharpness`` the quality term is fitted on q clipped to the 1st-99th percentiles of the
    probes; it is dropped (weights w2 = w3 = 0, range None) when the fitted similarity slope
    ``w1 + w3 q`` is not positive over the whole range (a higher similarity must never lower the
    match probability)."""
    y = np.asarray(same, dtype=np.float64)
    if sharpness is not None:
        q = sharpness_feature(sharpness)
        lo, hi = (float(v) for v in np.percentile(q, QUALITY_PERCENTILES))
        w = _newton(_design(np.asarray(sim), np.clip(q, lo, hi)), y, ridge, iters)
        if min(w[1] + w[3] * lo, w[1] + w[3] * hi) > 0:
            return tuple(float(v) for v in w), (lo, hi)
    w = _newton(_design(np.asarray(sim), 0.0)[:, :2], y, ridge, iters)
    return (float(w[0]), float(w[1]), 0.0, 0.0), None


def _newton(x: np.ndarray, y: np.ndarray, ridge: float, iters: int) -> np.ndarray:
    w = np.zeros(x.shape[1])
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -50, 50)))
        grad = x.T @ (p - y) + ridge * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + ridge * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


#: The FMR down to which the impostor tail is read from the scores themselves; an exponential tail beyond.
TAIL_FMR = 1e-3


def fit_impostor_tail(scores: np.ndarray) -> dict:
    """Quantile table of stranger similarities (FMR 0.5 down to TAIL_FMR, log-spaced) and the mean excess
    over the TAIL_FMR quantile (the scale of an exponential tail beyond it)."""
    s = np.sort(np.asarray(scores, np.float64))[::-1]
    if s.size < 10 / TAIL_FMR:
        raise ValueError(f"an impostor tail needs at least {int(10 / TAIL_FMR)} stranger similarities, got {s.size}")
    fmr = np.exp(np.linspace(np.log(0.5), np.log(TAIL_FMR), 25))
    sim = np.quantile(s, 1 - fmr)
    excess = s[s > sim[-1]] - sim[-1]
    return {"fmr": [float(v) for v in fmr], "similarity": [float(v) for v in sim],
            "tail_scale": float(excess.mean()), "n": int(s.size)}


#: The lead score: the best person's similarity less OPEN_SET_BETA times the mean of the next
#: OPEN_SET_NEIGHBOURS (chosen on the calibration searches, runs/logs/rule_open_set_table.txt).
OPEN_SET_BETA = 0.5
OPEN_SET_NEIGHBOURS = 3
#: The false-lead rates the open-set table holds thresholds for.
OPEN_SET_FPIRS = (0.1, 0.05, 0.02, 0.01, 0.005)


def lead_score(sims: np.ndarray, beta: float = OPEN_SET_BETA, neighbours: int = OPEN_SET_NEIGHBOURS) -> np.ndarray:
    """``s1 - beta * mean(s2 .. s(k+1))`` over the last axis of per-person similarities, ``k`` the
    neighbours the gallery has (``min(neighbours, n - 1)``); ``s1`` for a gallery of one."""
    sims = np.asarray(sims, np.float64)
    n = sims.shape[-1]
    k = min(neighbours, n - 1)
    if k < 1:
        return sims[..., 0].copy()
    top = -np.partition(-sims, k, axis=-1)[..., : k + 1]  # the k + 1 largest, unordered
    top = -np.sort(-top, axis=-1)
    return top[..., 0] - beta * top[..., 1:].mean(axis=-1)


def open_set_people_grid(largest: int) -> list[int]:
    """Gallery sizes the open-set table is measured at: 1 to ``largest``, about log-spaced."""
    grid = [1, 2, 3, 4, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700, 1000, 1500, 2000]
    return sorted({n for n in grid if n < largest} | {largest})


def fit_open_set_table(sims: np.ndarray, truth: np.ndarray, seed: int = 0, beta: float = OPEN_SET_BETA,
                       neighbours: int = OPEN_SET_NEIGHBOURS, fpirs: tuple[float, ...] = OPEN_SET_FPIRS) -> dict:
    """Lead-score thresholds for searches of people who are not enrolled, measured on calibration searches.

    ``sims`` (searches, people) holds each calibration probe's similarity to every calibration person;
    ``truth`` the column of the probe's own person (-1 when not among them). For each gallery size ``n``
    of the grid, every search is run against ``n`` random people who are not the probe's (several draws
    for small ``n``), and the ``1 - fpir`` quantile of the lead score is the threshold. The thresholds
    need not rise with ``n``: the neighbours take away more of a probe's general resemblance to people
    in a larger gallery, which can offset its larger best stranger. ``slope`` (per unit of ``log n``,
    fitted over ``n >= 100`` or the upper half of the grid, never below 0, so a falling threshold is
    held flat rather than lowered) extends them beyond the largest ``n``."""
    sims = np.asarray(sims, np.float64)
    truth = np.asarray(truth)
    n_search, n_people = sims.shape
    largest = n_people - 1 if (truth >= 0).any() else n_people  # strangers every search has
    if largest < 1 or n_search * 5 < 1 / min(fpirs):
        raise ValueError(f"an open-set table needs at least {int(1 / min(fpirs) / 5)} searches of at least two "
                         f"people, got {n_search} of {n_people}")
    rng = np.random.default_rng(seed)
    grid = open_set_people_grid(largest)
    rows = np.arange(n_search)
    table = np.zeros((len(fpirs), len(grid)))
    for j, n in enumerate(grid):
        draws = 4 if n < 100 else 2 if n < 300 else 1
        scores = []
        for _ in range(draws):
            keys = rng.random(sims.shape)
            has = truth >= 0
            keys[rows[has], truth[has]] = np.inf  # the probe's own person is never drawn
            cols = np.argpartition(keys, n - 1, axis=1)[:, :n]
            scores.append(lead_score(np.take_along_axis(sims, cols, 1), beta, neighbours))
        scores = np.concatenate(scores)
        table[:, j] = [np.quantile(scores, 1 - f) for f in fpirs]
    logn = np.log(np.asarray(grid, np.float64))
    upper = logn >= np.log(100) if sum(n >= 100 for n in grid) >= 2 else logn >= np.median(logn)
    slope = [max(float(np.polyfit(logn[upper], row[upper], 1)[0]), 0.0) if upper.sum() >= 2 else 0.0
             for row in table]
    return {"statistic": f"s1 - {beta} * mean of the next {neighbours} people's similarities",
            "beta": beta, "neighbours": neighbours, "people": grid, "fpir": [float(f) for f in fpirs],
            "threshold": [[round(float(v), 5) for v in row] for row in table],
            "slope": [round(v, 5) for v in slope], "searches": int(n_search), "seed": seed}


def _check_fpir(table: dict, fpir: float) -> None:
    fpirs = np.asarray(table["fpir"], np.float64)
    if not fpirs.min() - 1e-12 <= fpir <= fpirs.max() + 1e-12:
        raise ValueError(f"the open-set threshold is calibrated for false-lead rates from {fpirs.min():.1%} to "
                         f"{fpirs.max():.1%}, not {fpir:.2%}")


def open_set_lookup(table: dict, n_people: int, fpir: float) -> float:
    """The lead-score threshold of ``table`` for a gallery of ``n_people`` at false-lead rate ``fpir``
    (interpolated in log n and log fpir; extrapolated in log n beyond the measured sizes)."""
    _check_fpir(table, fpir)
    fpirs = np.asarray(table["fpir"], np.float64)
    people = np.log(np.asarray(table["people"], np.float64))
    thr = np.asarray(table["threshold"], np.float64)
    slope = np.asarray(table["slope"], np.float64)
    logn = np.log(n_people)
    by_rate = thr[:, -1] + slope * (logn - people[-1]) if logn > people[-1] else \
        np.array([np.interp(logn, people, row) for row in thr])
    order = np.argsort(fpirs)
    return float(np.interp(np.log(fpir), np.log(fpirs[order]), by_rate[order]))


#: The natural logarithms of the softmax temperatures fitted and used: 0.005 to 1 (cosine similarities). A
#: temperature by sharpness is held inside them, so that no quality, however far outside the fitted range its
#: polynomial is read, makes every identity probability equal (T overflowing) or one of them 1 by rounding.
LOG_TEMPERATURES = (float(np.log(0.005)), 0.0)


def fit_temperature(sims: np.ndarray, truth: np.ndarray) -> float:
    """Temperature minimising the NLL of ``truth`` under softmax(sims / T); sims (n, k), truth (n,)."""
    sims = np.asarray(sims, dtype=np.float64)
    idx = np.arange(sims.shape[0])

    def nll(t: float) -> float:
        z = sims / t
        z = z - z.max(axis=1, keepdims=True)
        return float(-(z[idx, truth] - np.log(np.exp(z).sum(axis=1))).mean())

    grid = np.exp(np.linspace(*LOG_TEMPERATURES, 200))
    best = grid[int(np.argmin([nll(t) for t in grid]))]
    fine = np.exp(np.linspace(np.log(best / 1.05), np.log(best * 1.05), 41))
    return float(fine[int(np.argmin([nll(t) for t in fine]))])


def fit_temperature_q(sims: np.ndarray, truth: np.ndarray, q: np.ndarray, start: float,
                      degree: int = 2) -> tuple[float, ...]:
    """Coefficients (a, b[, c]) of T = exp(a + b q [+ c q^2]) minimising the NLL of ``truth`` under
    softmax(sims / T) per search; q is each search's clipped sharpness feature, ``start`` the single fitted
    temperature, ``degree`` 1 (log-linear) or 2 (with the square term)."""
    from scipy.optimize import minimize

    sims = np.asarray(sims, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    idx = np.arange(sims.shape[0])
    powers = np.stack([q**k for k in range(degree + 1)], axis=1)

    def nll(w: np.ndarray) -> float:
        z = sims / np.exp(np.clip(powers @ w, *LOG_TEMPERATURES))[:, None]
        z = z - z.max(axis=1, keepdims=True)
        return float(-(z[idx, truth] - np.log(np.exp(z).sum(axis=1))).mean())

    w = minimize(nll, np.r_[np.log(start), np.zeros(degree)], method="Nelder-Mead",
                 options={"xatol": 1e-6, "fatol": 1e-8, "maxiter": 4000}).x
    return tuple(float(v) for v in w)
