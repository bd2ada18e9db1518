"""Step 2 of ``research/asymmetric/decision_rule.txt`` (its amendment in ``research/asymmetric/result.txt``, written
before this was run): the shipped three-part join with the student's cosine compared against a gallery mixed with
SFace's embedding.

The shipped bundle's similarity of a probe p to a gallery face g is W1 S(p).S(g) + W2 T(p).T(g) + W3 C(p).C(g)
(S the student, T its sharp part, SFace as published, C the companion on the reconstruction; W the probe's weights,
``Companion.cosine_weights``). Here the first term's cosine becomes

- ``linear``: (1 - b) S(p).S(g) + b S(p).T(g), b = 0.5: the form the gallery's stored parts give through the probe's
  query alone;
- ``unit`` (for reference): S(p).unit(b T(g) + (1 - b) S(g)).

Every network as the engine runs it (``FaceEngine.embed_parts``: flip-averaged, the probe as found in its 112 px crop
for S and T, the companion on the reconstruction, no audio). First on the calibration people (``Split.calib_pairs`` +
``Split.calib_made``, degraded as ``calibrate`` degrades them; the searches ``identification_sets`` makes of those
pairs); on DevTest only if the linear form meets (1) and (2) of the rule there. DevTest: paired against the shipped
join (b = 0), rank-1 (McNemar), pair AUC (DeLong) and the accuracy at p >= 0.5 of the shipped form of the match
logistic refitted on each form's calibration scores (all levels pooled, no audio; McNemar).

    FORENSIC_FACE_PRECISION=float32 .venv/bin/python -m research.asymmetric_join \
        [--models resources/models] [--out research/asymmetric/join.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from forensic_face.engine.inference import FaceEngine
from forensic_face.models.calibration import fit_logistic
from forensic_face.paths import shared_data_dir
from forensic_face.training.evaluate import engine_probes, gallery_embeddings, identification_sets, probe_sharpness
from forensic_face.training.metrics import auc_difference, auc_interval, mcnemar
from forensic_face.training.split import load_split_data
from forensic_face.vision.degrade import EVAL_LEVELS

B = 0.5
FORMS = ("shipped", "linear", "unit")
AUC_SLACK = 0.002


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


class Cosines:
    """Each level's part cosines for one set of pairs and their searches, and each probe's sharpness and W."""

    def __init__(self, engine: FaceEngine, index, cache, pairs, tag: str) -> None:
        d = int(engine.meta["rec"]["embed_dim"])
        self.same = np.array([p.same for p in pairs])
        self.sets = identification_sets(pairs)
        gal = {}
        for name, paths in (("pair", [p.a for p in pairs]), ("search", self.sets.gallery_paths)):
            # each part's unit embeddings, read back from the gallery vectors the product stores
            s, t, c = (unit(x) for x in engine.companion.parts(gallery_embeddings(engine, index, cache, paths)))
            gal[name] = {"S": s, "T": t, "C": c, "M": unit(B * t + (1 - B) * s)}
        self.levels = {}
        for level in EVAL_LEVELS:
            probes = engine_probes(engine, index, cache, pairs, level, tag)
            main, comp = engine.embed_parts(probes.rec_crop, engine.reconstruct(probes.crop))
            p = {"S": main[:, :d], "T": main[:, d:], "C": comp}
            sharp = probe_sharpness(probes)
            closed = self.sets.closed
            self.levels[level] = {
                "sharpness": sharp, "W": engine.companion.cosine_weights(sharp),
                "pair": {k: (p[a] * gal["pair"][g]).sum(1) for k, a, g in
                         (("SS", "S", "S"), ("ST", "S", "T"), ("SM", "S", "M"), ("TT", "T", "T"), ("CC", "C", "C"))},
                "search": {k: p[a][closed] @ gal["search"][g].T for k, a, g in
                           (("SS", "S", "S"), ("ST", "S", "T"), ("SM", "S", "M"), ("TT", "T", "T"),
                            ("CC", "C", "C"))}}

    def scores(self, level: str, form: str) -> tuple[np.ndarray, np.ndarray]:
        lev = self.levels[level]

        def mix(c: dict, w: np.ndarray) -> np.ndarray:
            first = {"shipped": c["SS"], "linear": (1 - B) * c["SS"] + B * c["ST"], "unit": c["SM"]}[form]
            w1, w2, w3 = (w[:, k] if first.ndim == 1 else w[:, [k]] for k in range(3))
            return w1 * first + w2 * c["TT"] + w3 * c["CC"]

        return mix(lev["pair"], lev["W"]), mix(lev["search"], lev["W"][self.sets.closed])

    def top1(self, search: np.ndarray) -> np.ndarray:
        t = self.sets.truth
        return (search > search[np.arange(len(t)), t][:, None]).sum(1) == 0


def figures(cos: Cosines) -> dict:
    out = {}
    for lv in EVAL_LEVELS:
        row = {}
        for form in FORMS:
            pair, search = cos.scores(lv, form)
            auc, lo, hi = auc_interval(pair, cos.same)
            row[form] = {"auc": round(auc, 4), "auc_ci95": [round(lo, 4), round(hi, 4)],
                         "rank_1": round(float(cos.top1(search).mean()), 4)}
        for form in FORMS[1:]:
            a, b = cos.scores(lv, form), cos.scores(lv, "shipped")
            row[f"{form}_vs_shipped"] = {"auc": auc_difference(a[0], b[0], cos.same),
                                         "rank_1": mcnemar(cos.top1(a[1]), cos.top1(b[1]))}
        out[lv] = row
        print(lv, json.dumps(row), flush=True)
    return out


def fitted_right(cal: Cosines, test: Cosines, form: str) -> dict[str, np.ndarray]:
    """Per DevTest level, whether each pair is decided right at p >= 0.5 of the shipped form of the match logistic
    fitted on the calibration pairs of every level (no audio)."""
    s = np.concatenate([cal.scores(lv, form)[0] for lv in EVAL_LEVELS])
    sharp = np.concatenate([cal.levels[lv]["sharpness"] for lv in EVAL_LEVELS])
    w, q_range = fit_logistic(s, np.tile(cal.same, len(EVAL_LEVELS)), sharp)
    lo, hi = q_range if q_range else (0.0, 0.0)
    out = {}
    for lv in EVAL_LEVELS:
        st = test.scores(lv, form)[0]
        q = np.clip(np.log1p(test.levels[lv]["sharpness"]), lo, hi)
        out[lv] = (w[0] + w[1] * st + w[2] * q + w[3] * st * q >= 0) == test.same
    return out


def meets(rows: dict, form: str) -> tuple[bool, list[str]]:
    """(1) and (2) of the rule for ``form`` against the shipped join."""
    sev = rows["severe"][f"{form}_vs_shipped"]
    up = ((sev["rank_1"]["p_value"] < 0.05 and sev["rank_1"]["a_only"] > sev["rank_1"]["b_only"])
          or (sev["auc"]["p_value"] < 0.05 and sev["auc"]["difference"] > 0))
    worse = [f"{lv} {k}" for lv in EVAL_LEVELS for k, d in rows[lv][f"{form}_vs_shipped"].items()
             if (k == "auc" and d["difference"] < -AUC_SLACK)
             or (k == "rank_1" and d["p_value"] < 0.05 and d["a_only"] < d["b_only"])]
    return up and not worse, worse


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=Path("resources/models"))
    ap.add_argument("--out", type=Path, default=Path("research/asymmetric/join.json"))
    args = ap.parse_args()
    index, split, cache = load_split_data(shared_data_dir() / "lfw")
    engine = FaceEngine(args.models, device="cpu")
    if engine.companion is None or engine.companion.sharp is None:
        raise SystemExit("needs a bundle whose join has a sharp part (forensic-face join-sharp)")
    cal = Cosines(engine, index, cache, list(split.calib_pairs) + list(split.calib_made), "calib")
    report: dict = {"installed": engine.info.version, "precision": engine.info.params["precision"], "b": B,
                    "calibration": {"pairs": int(cal.same.size), "searches": int(cal.sets.closed.size),
                                    "gallery": len(cal.sets.gallery_paths), "levels": figures(cal)}}
    ok, worse = meets(report["calibration"]["levels"], "linear")
    report["calibration"]["linear_meets_rule"] = ok
    report["calibration"]["linear_worse"] = worse
    print("calibration: linear form", "meets (1) and (2)" if ok else f"does not meet the rule ({worse})", flush=True)
    if ok:
        test = Cosines(engine, index, cache, split.test_pairs, "test")
        dev = {"pairs": int(test.same.size), "searches": int(test.sets.closed.size), "levels": figures(test)}
        right = {f: fitted_right(cal, test, f) for f in ("linear", "shipped")}
        for lv in EVAL_LEVELS:
            dev["levels"][lv]["linear_vs_shipped"]["accuracy"] = mcnemar(right["linear"][lv], right["shipped"][lv])
            print(lv, "accuracy", json.dumps(dev["levels"][lv]["linear_vs_shipped"]["accuracy"]), flush=True)
        rows = {lv: dev["levels"][lv]["linear_vs_shipped"] for lv in EVAL_LEVELS}
        lower = [f"{lv} {k}" for lv, d in rows.items() for k in ("rank_1", "auc", "accuracy")
                 if d[k]["p_value"] < 0.05
                 and (d[k]["difference"] < 0 if k == "auc" else d[k]["a_only"] < d[k]["b_only"])]
        higher = [f"{lv} {k}" for lv, k in (("mild", "rank_1"), ("severe", "rank_1"), ("severe", "auc"))
                  if rows[lv][k]["p_value"] < 0.05 and (rows[lv][k]["difference"] > 0 if k == "auc"
                                                        else rows[lv][k]["a_only"] > rows[lv][k]["b_only"])]
        dev["significantly_lower"], dev["significantly_higher"] = lower, higher
        dev["worth_building"] = bool(higher) and not lower
        report["devtest"] = dev
        print("DevTest:", "worth building" if dev["worth_building"] else "not worth building",
              json.dumps({"lower": lower, "higher": higher}), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
