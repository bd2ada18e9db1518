"""A logistic fitted to the join's part cosines, against the shipped join (the rule:
``research/part_fusion/decision_rule.txt``, written before any score here was seen).

Reads the part cosines ``research/part_scores.py`` wrote (the shipped bundle, float32) and writes
``research/part_fusion/result.json``.

    .venv/bin/python -m research.part_fusion --scores runs/part_scores.npz
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from forensic_face.models.calibration import QUALITY_PERCENTILES, fit_logistic, sharpness_feature
from forensic_face.training.metrics import auc_difference, auc_interval, mcnemar
from forensic_face.vision.degrade import EVAL_LEVELS

PARTS = ("SS", "ST", "TT", "CC")
CROSS = 0.5  # the shipped bundle's cross share
RIDGE = 1e-4
FOLDS = 5


def newton(x: np.ndarray, y: np.ndarray, ridge: np.ndarray, iters: int = 100) -> np.ndarray:
    w = np.zeros(x.shape[1])
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -50, 50)))
        grad = x.T @ (p - y) + ridge * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + np.diag(ridge)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return w


class Data:
    """One set of pairs (``calib`` or ``test``): per level and voice condition, the part cosines, q, labels."""

    def __init__(self, z, tag: str) -> None:
        self.same = z[f"{tag}_same"].astype(np.float64)
        self.people = (z[f"{tag}_person_a"], z[f"{tag}_person_b"])
        self.closed, self.truth = z[f"{tag}_closed"], z[f"{tag}_truth"]
        self.lv = {}
        for lv in EVAL_LEVELS:
            key = f"{tag}_{lv}"
            pair = {k: z[f"{key}_pair_{k}"].astype(np.float64) for k in (*PARTS, "CCa")}
            self.lv[lv] = {"sharpness": z[f"{key}_sharpness"], "W": z[f"{key}_W"], "pair": pair,
                           "search": {k: z[f"{key}_search_{k}"].astype(np.float64) for k in PARTS}}

    def rows(self, lv: str, voice: bool) -> dict[str, np.ndarray]:
        """Pairs' cosines with the companion given the reconstruction with (``voice``) or without the voice."""
        pair = dict(self.lv[lv]["pair"])
        if voice:
            pair["CC"] = pair["CCa"]
        return pair


def shipped_sim(cos: dict, w: np.ndarray) -> np.ndarray:
    """The shipped join's similarity: W1 ((1 - b) SS + b ST) + W2 TT + W3 CC."""
    w1, w2, w3 = (w[:, k] if cos["SS"].ndim == 1 else w[:, [k]] for k in range(3))
    return w1 * ((1 - CROSS) * cos["SS"] + CROSS * cos["ST"]) + w2 * cos["TT"] + w3 * cos["CC"]


class Shipped:
    """The shipped weights and the shipped form of the match logistic fitted to their similarity."""

    name = "shipped"

    def fit(self, conds: list[tuple[dict, np.ndarray, np.ndarray, np.ndarray]]) -> Shipped:
        s = np.concatenate([shipped_sim(c, w) for c, w, _, _ in conds])
        self.w, self.q_range = fit_logistic(s, np.concatenate([y for *_, y in conds]),
                                            np.concatenate([sh for _, _, sh, _ in conds]))
        return self

    def logit(self, cos: dict, w: np.ndarray, sharpness: np.ndarray) -> np.ndarray:
        s = shipped_sim(cos, w)
        q = np.clip(sharpness_feature(sharpness), *self.q_range)
        return self.w[0] + self.w[1] * s + self.w[2] * q + self.w[3] * s * q

    def search(self, cos: dict, w: np.ndarray, sharpness: np.ndarray) -> np.ndarray:
        return shipped_sim(cos, w)


class Fitted:
    """Form F: logit = a0 + a1 q + sum_k (beta_k + gamma_k q) cos_k over ``parts``."""

    name = "fitted"
    parts = PARTS

    def fit(self, conds) -> Fitted:
        q_all = sharpness_feature(np.concatenate([sh for _, _, sh, _ in conds]))
        self.q_range = tuple(float(v) for v in np.percentile(q_all, QUALITY_PERCENTILES))
        x = np.concatenate([self.design(c, sh) for c, _, sh, _ in conds])
        ridge = np.full(x.shape[1], RIDGE)
        ridge[:2] = 0.0
        self.coef = newton(x, np.concatenate([y for *_, y in conds]), ridge)
        return self

    def q(self, sharpness: np.ndarray) -> np.ndarray:
        return np.clip(sharpness_feature(sharpness), *self.q_range)

    def cosines(self, cos: dict) -> list[np.ndarray]:
        return [cos[k] for k in self.parts]

    def design(self, cos: dict, sharpness: np.ndarray) -> np.ndarray:
        q = self.q(sharpness)
        c = self.cosines(cos)
        return np.column_stack([np.ones_like(q), q, *c, *(q * v for v in c)])

    def part_weights(self, q: np.ndarray) -> np.ndarray:
        """b_k(q) (N, parts) at clipped qualities ``q``."""
        n = len(self.parts)
        return self.coef[2:2 + n][None, :] + q[:, None] * self.coef[2 + n:][None, :]

    def logit(self, cos: dict, w: np.ndarray, sharpness: np.ndarray) -> np.ndarray:
        return self.design(cos, sharpness) @ self.coef

    def search(self, cos: dict, w: np.ndarray, sharpness: np.ndarray) -> np.ndarray:
        b = self.part_weights(self.q(sharpness))
        big = b.sum(1)
        return sum((b[:, k] / big)[:, None] * v for k, v in enumerate(self.cosines(cos)))

    def describe(self) -> dict:
        n = len(self.parts)
        lo, hi = self.q_range
        grid = np.linspace(lo, hi, 9)
        b = self.part_weights(grid)
        return {"a0": round(float(self.coef[0]), 4), "a1": round(float(self.coef[1]), 4),
                "beta": dict(zip(self.parts, (round(float(v), 4) for v in self.coef[2:2 + n]), strict=True)),
                "gamma": dict(zip(self.parts, (round(float(v), 4) for v in self.coef[2 + n:]), strict=True)),
                "q_range": [round(lo, 4), round(hi, 4)],
                "weights_over_q": [{"q": round(float(g), 3), "B": round(float(bb.sum()), 3),
                                    **{p: round(float(v / bb.sum()), 3)
                                       for p, v in zip(self.parts, bb, strict=True)}}
                                   for g, bb in zip(grid, b, strict=True)],
                "B_positive": bool((b.sum(1) > 0).all())}


class Fitted3(Fitted):
    """Form F3: the parts S* = (1 - b) SS + b ST (the shipped cross share), TT, CC fitted as F; the weights
    W_k(q) = max(b_k(q), 0) / sum_j max(b_j(q), 0); then the shipped form of the match logistic fitted to
    s = sum_k W_k(q) cos_k (what the product's query and calibration would be)."""

    name = "fitted3"
    parts = ("S*", "TT", "CC")

    def cosines(self, cos: dict) -> list[np.ndarray]:
        return [(1 - CROSS) * cos["SS"] + CROSS * cos["ST"], cos["TT"], cos["CC"]]

    def fit(self, conds) -> Fitted3:
        super().fit(conds)
        s = np.concatenate([self.search(c, w, sh) for c, w, sh, _ in conds])
        self.w, self.logistic_q_range = fit_logistic(s, np.concatenate([y for *_, y in conds]),
                                                     np.concatenate([sh for _, _, sh, _ in conds]))
        return self

    def weights(self, q: np.ndarray) -> np.ndarray:
        b = np.maximum(self.part_weights(q), 0.0)
        return b / b.sum(1, keepdims=True)

    def search(self, cos: dict, w: np.ndarray, sharpness: np.ndarray) -> np.ndarray:
        wq = self.weights(self.q(sharpness))
        c = self.cosines(cos)
        if c[0].ndim == 1:
            return sum(wq[:, k] * v for k, v in enumerate(c))
        return sum(wq[:, [k]] * v for k, v in enumerate(c))

    def logit(self, cos: dict, w: np.ndarray, sharpness: np.ndarray) -> np.ndarray:
        s = self.search(cos, w, sharpness)
        q = np.clip(sharpness_feature(sharpness), *self.logistic_q_range)
        return self.w[0] + self.w[1] * s + self.w[2] * q + self.w[3] * s * q

    def describe(self) -> dict:
        out = super().describe()
        lo, hi = self.q_range
        grid = np.linspace(lo, hi, 9)
        wq = self.weights(grid)
        out["B_positive"] = bool((np.maximum(self.part_weights(grid), 0).sum(1) > 0).all())
        out["weights_used_over_q"] = [{"q": round(float(g), 3), **{p: round(float(v), 3) for p, v in
                                                                   zip(self.parts, row, strict=True)}}
                                      for g, row in zip(grid, wq, strict=True)]
        out["logistic"] = [round(v, 4) for v in self.w]
        return out


def conditions(data: Data, rows: np.ndarray | None = None) -> list:
    out = []
    for lv in EVAL_LEVELS:
        d = data.lv[lv]
        for voice in (True, False):
            cos = data.rows(lv, voice)
            sel = slice(None) if rows is None else rows
            out.append(({k: v[sel] for k, v in cos.items()}, d["W"][sel], d["sharpness"][sel], data.same[sel]))
    return out


def log_likelihood(model, conds) -> tuple[float, int]:
    total, n = 0.0, 0
    for cos, w, sh, y in conds:
        z = model.logit(cos, w, sh)
        total += float(np.sum(y * -np.logaddexp(0, -z) + (1 - y) * -np.logaddexp(0, z)))
        n += len(y)
    return total, n


def cross_validate(cal: Data) -> dict:
    people = np.unique(np.concatenate(cal.people))
    fold_of = dict(zip(people, np.random.default_rng(0).permutation(len(people)) % FOLDS, strict=True))
    fa = np.array([fold_of[p] for p in cal.people[0]])
    fb = np.array([fold_of[p] for p in cal.people[1]])
    out = {}
    for model_cls in (Shipped, Fitted, Fitted3):
        total, n = 0.0, 0
        for f in range(FOLDS):
            train = (fa != f) & (fb != f)
            held = (fa == f) | (fb == f)
            model = model_cls().fit(conditions(cal, train))
            t, k = log_likelihood(model, conditions(cal, held))
            total, n = total + t, n + k
        out[model_cls.name] = {"mean_log_likelihood": round(total / n, 5), "scores": n}
    return out


def devtest(cal: Data, test: Data, forms: list[str]) -> dict:
    models = {m.name: m.fit(conditions(cal)) for m in (Shipped(), Fitted(), Fitted3()) if m.name in forms}
    out = {}
    for lv in EVAL_LEVELS:
        d = test.lv[lv]
        row: dict = {}
        right, auc_scores, top = {}, {}, {}
        for name, m in models.items():
            logit_v = m.logit(test.rows(lv, True), d["W"], d["sharpness"])
            logit_nv = m.logit(test.rows(lv, False), d["W"], d["sharpness"])
            right[name] = (logit_v >= 0) == (test.same > 0)
            auc_scores[name] = logit_v
            search = m.search({k: v for k, v in d["search"].items()}, d["W"][test.closed],
                              d["sharpness"][test.closed])
            t = search[np.arange(len(test.truth)), test.truth][:, None]
            top[name] = (search > t).sum(1) == 0
            auc, lo, hi = auc_interval(logit_v, test.same)
            row[name] = {"accuracy": round(float(right[name].mean()), 4),
                         "accuracy_no_voice": round(float(((logit_nv >= 0) == (test.same > 0)).mean()), 4),
                         "false_match": int(((logit_v >= 0) & (test.same == 0)).sum()),
                         "false_non_match": int(((logit_v < 0) & (test.same == 1)).sum()),
                         "auc": round(auc, 4), "auc_ci95": [round(lo, 4), round(hi, 4)],
                         "rank_1": round(float(top[name].mean()), 4)}
        for f in forms[1:]:
            row[f"{f}_vs_shipped"] = {"accuracy": mcnemar(right[f], right["shipped"]),
                                      "auc": auc_difference(auc_scores[f], auc_scores["shipped"], test.same),
                                      "rank_1": mcnemar(top[f], top["shipped"])}
        out[lv] = row
        print(lv, json.dumps(row), flush=True)
    return out


def verdict(rows: dict, form: str) -> dict:
    lower, higher = [], []
    for lv, r in rows.items():
        for k, d in r[f"{form}_vs_shipped"].items():
            if d["p_value"] >= 0.05:
                continue
            up = d["difference"] > 0 if k == "auc" else d["a_only"] > d["b_only"]
            (higher if up else lower).append(f"{lv} {k}")
    return {"significantly_higher": higher, "significantly_lower": lower,
            "worth_building": bool(higher) and not lower}


def transfer(cal: Data, test: Data) -> dict:
    """Where the shipped rule's decisions go wrong, on the calibration pairs (drawn, made) and on DevTest, per
    level (the voice given, as evaluation.json's headline): false matches and non-matches at p >= 0.5, the accuracy
    and the best accuracy any single similarity threshold gives; Fisher's exact test of the calibration's rates
    against DevTest's. A diagnosis, not a choice: nothing is fitted on DevTest."""
    from scipy.stats import fisher_exact

    model = Shipped().fit(conditions(cal))
    out = {}
    for lv in EVAL_LEVELS:
        row, rates = {}, {}
        for name, data, sel in (("calibration drawn", cal, slice(0, 600)), ("calibration made", cal, slice(600, None)),
                                ("calibration", cal, slice(None)), ("devtest", test, slice(None))):
            d, cos = data.lv[lv], data.rows(lv, True)
            z = model.logit(cos, d["W"], d["sharpness"])[sel]
            s = shipped_sim(cos, d["W"])[sel]
            y = (data.same > 0)[sel]
            fm, fnm = int(((z >= 0) & ~y).sum()), int(((z < 0) & y).sum())
            best = max(float(((s >= t) == y).mean()) for t in np.unique(s))
            row[name] = {"pairs": int(y.size), "false_match": fm, "impostor_pairs": int((~y).sum()),
                         "false_non_match": fnm, "genuine_pairs": int(y.sum()),
                         "accuracy": round(float(((z >= 0) == y).mean()), 4),
                         "best_single_threshold_accuracy": round(best, 4)}
            rates[name] = (fm, int((~y).sum()), fnm, int(y.sum()))
        c, t = rates["calibration"], rates["devtest"]
        row["fisher_p"] = {k: round(float(fisher_exact([[c[i], c[i + 1] - c[i]], [t[i], t[i + 1] - t[i]]])[1]), 4)
                           for k, i in (("false_match_rate", 0), ("false_non_match_rate", 2))}
        out[lv] = row
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scores", type=Path, default=Path("runs/part_scores.npz"))
    ap.add_argument("--out", type=Path, default=Path("research/part_fusion/result.json"))
    args = ap.parse_args()
    z = np.load(args.scores)
    cal, test = Data(z, "calib"), Data(z, "test")
    report: dict = {"bundle": str(z["version"]), "precision": str(z["precision"]),
                    "calibration_pairs": int(cal.same.size)}
    shipped_all = Shipped().fit(conditions(cal))
    report["shipped_logistic_refitted"] = [round(v, 4) for v in shipped_all.w]
    report["threshold_transfer"] = transfer(cal, test)
    cv = cross_validate(cal)
    report["step1"] = {"cv": cv}
    going = ["shipped"]
    for form in (Fitted(), Fitted3()):
        form.fit(conditions(cal))
        d = form.describe()
        ok = cv[form.name]["mean_log_likelihood"] > cv["shipped"]["mean_log_likelihood"] and d["B_positive"]
        report["step1"][form.name] = {"fitted_on_all": d, "goes_on": ok}
        if ok:
            going.append(form.name)
    print("step 1:", json.dumps(report["step1"], indent=1), flush=True)
    if len(going) > 1:
        rows = devtest(cal, test, going)
        report["step2"] = {"levels": rows, **{f: verdict(rows, f) for f in going[1:]}}
        print("step 2:", json.dumps({f: verdict(rows, f) for f in going[1:]}), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
