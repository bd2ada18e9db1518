"""SFace as published for the sharper probes, beside the shipped join (issue 24: "the student must not lose the
teacher's clean-face accuracy; if one network cannot hold both, fuse the teacher's and the student's scores by the
measured probe quality ... chosen on the calibration people").

`forensic-face evaluate` now measures SFace as published beside the product: on DevTest's clean probes it ranks the
right person first for 98.0 against 95.9 % (12 / 0 searches, p = 0.0005), and ``research/teacher_fusion.py`` on the
calibration people with the shipped student (``teacher_fusion_c2ee3bb2.json``) gives the same picture: a teacher
share of 0.5-1 lifts clean rank-1 from 95.2 to 98.1 % (9 / 0, p = 0.004), 0.25-0.5 lifts mild rank-1 a little (n.s.),
and any share hurts severe probes (AUC -0.013 at 0.25, p = 0.0001). So the share must follow the probe's quality.

This script simulates such a product, never ships it. Each probe's similarity to a gallery face is the weighted mean
(1 - l) [(1 - t) cos_student + t cos_teacher] + l cos_companion: l is the shipped companion's weight at the probe's
quality q = log(1 + sharpness) (``mean_weights(probe_share(...))``, unchanged), and the teacher's share t = T x
clip((q - (Q1 - R)) / R, 0, 1), full from the shipped sharp end Q1 = 5.39 (the 5th percentile of the clean
calibration probes' q) up, 0 at Q1 - R and below. The teacher (SFace as published) and the student are flip-averaged
as the engine runs them, on the probe as found in its 112 px five-point crop; the companion embeds the
reconstruction, no audio. (A product would hold the teacher's embedding in the gallery beside the other two and scale
the probe's query as ``Companion.query`` does, which gives exactly this weighted mean.)

Rule, written before any candidate is scored on DevTest:

1. On the calibration people only (600 pairs, 314 searches among 545 people per level; clean / mild / severe): for
   T in 0, 0.25, 0.5, 0.75, 1 and R in 0.5, 1, 1.5, 2, the pair ROC-AUC and the search rank-1 at each level.
2. Candidates whose pair AUC at some level is more than 0.002 below T = 0's (the shipped join) are out. Of the rest,
   the highest mean rank-1 over the three levels wins; ties go to the smaller T, then the smaller R.
3. On DevTest, the winner against T = 0, paired on the same probes: rank-1 per level (McNemar), pair AUC per level
   (DeLong), and verification accuracy at p >= 0.5 of the shipped form of the match logistic (w0 + w1 s + w2 q + w3
   s q, q clipped to its 1st-99th calibration percentiles) refitted on each one's calibration scores, all levels
   pooled, no audio (McNemar).
4. The route is worth building when the winner's clean rank-1 gain on DevTest is significant (p < 0.05) and no
   level's rank-1, AUC or accuracy is significantly lower (p < 0.05).

    FORENSIC_FACE_PRECISION=float32 .venv/bin/python -m research.teacher_route --out research/teacher_route.json

Result of that form (``teacher_route.json``): T 0.5, R 2 chosen; on DevTest clean rank-1 95.9 -> 97.9 % (11 / 0, p =
0.001), nothing significantly lower: the rule is met. Such a gallery would hold a third embedding, and enrolment would
run a third network (the teacher's blocks 7-13 alone cost about 10 ms of the student's 20 ms per face, one thread).

Built since (``forensic-face join-sharp``, :func:`forensic_face.training.evaluate.choose_sharp_share` applies steps 1-2
on the calibration people, ``models.json``'s ``companion.sharp``): it chose T 0.5, R 2 again. Its table differs from
this script's in five cells by one to three searches (T 0.25: clean rank-1 97.5 against 96.5 %), because the product
stores SFace's weights in float16 (cosine >= 0.99999 to the published network's embeddings).

``--form probe-side`` (written after that result and after one look at the calibration people: there the teacher's
embedding of a clean probe searched against the gallery's *student* embeddings ranked the right person first as
often as the teacher's against the teacher's, 98.1 %, against 95.2 % for the student's): the gallery keeps the
shipped bundle's embeddings (student and companion) and only the probe changes: its recogniser embedding is the unit
direction of (1 - t) x the student's + t x the teacher's embedding of the probe (both unit, flip-averaged), then
joined to the companion's as shipped. Enrolment and stored galleries are untouched. The same rule, steps 1-4, with
the same grid, chooses and judges it; its baseline (T = 0) is again the shipped join.

    FORENSIC_FACE_PRECISION=float32 .venv/bin/python -m research.teacher_route --form probe-side \
        --out research/teacher_route_probe_side.json

Result (``teacher_route_probe_side.json``): T 0.5, R 2 chosen again; on DevTest clean rank-1 95.9 -> 96.4 % (3 / 0,
p = 0.25), mild 70.6 -> 72.2 % (12 / 3, p = 0.035), clean AUC +0.0005 (p = 0.013), nothing significantly lower: the
rule is not met (the clean gain is not significant). Against the gallery's student embeddings the teacher's probe
embedding matched the teacher's gallery on the calibration people only at full share (98.1 %); mixed half and half
it gives back most of the gain, so the gallery needs the teacher's own embedding (the three-part form).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from forensic_face.engine.inference import FaceEngine, cpu_graph
from forensic_face.models.bundle import mean_weights
from forensic_face.models.calibration import fit_logistic, sharpness_feature
from forensic_face.models.sface import SFaceNet
from forensic_face.paths import shared_data_dir
from forensic_face.training.evaluate import engine_probes, gallery_crops, identification_sets, probe_sharpness
from forensic_face.training.metrics import auc_difference, auc_interval, mcnemar
from forensic_face.training.sface_onnx import convert, default_onnx_path
from forensic_face.training.split import load_split_data
from forensic_face.vision.degrade import EVAL_LEVELS

SHARP_END = 5.3935  # Q1: the shipped bundle's sharp end (models.json companion.quality_range[1])
SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)
RAMPS = (0.5, 1.0, 1.5, 2.0)
AUC_SLACK = 0.002


def teacher_share(q: np.ndarray, top: float, ramp: float) -> np.ndarray:
    return top * np.clip((q - (SHARP_END - ramp)) / ramp, 0.0, 1.0)


class Parts:
    """Cosines of the three recognisers for one set of pairs (``pair``: (n,) each) and searches (``search``:
    (searches, people) each), and each probe's q, per level."""

    def __init__(self, engine: FaceEngine, teacher: FaceEngine, index, cache, pairs, tag: str,
                 probe_side: bool = False) -> None:
        self.probe_side = probe_side
        self.same = np.array([p.same for p in pairs])
        self.sets = identification_sets(pairs)
        gal = {}
        for name, paths in (("pair", [p.a for p in pairs]), ("search", self.sets.gallery_paths)):
            found = gallery_crops(index, cache, paths, engine.rec_size, engine.rec_alignment)
            face = gallery_crops(index, cache, paths, engine.size, engine.alignment)
            student, comp = engine.embed_parts(found, face)
            gal[name] = {"student": student, "teacher": teacher.embed(found), "companion": comp}
        self.levels = {}
        for level in EVAL_LEVELS:
            probes = engine_probes(engine, index, cache, pairs, level, tag)
            student, comp = engine.embed_parts(probes.rec_crop, engine.reconstruct(probes.crop))
            emb = {"student": student, "teacher": teacher.embed(probes.rec_crop), "companion": comp}
            lev = {"q": sharpness_feature(probe_sharpness(probes)),
                   "pair": {k: (gal["pair"][k] * emb[k]).sum(1) for k in emb},
                   "search": {k: emb[k][self.sets.closed] @ gal["search"][k].T for k in emb}}
            if probe_side:  # the probe's two embeddings, against the gallery's student embeddings
                lev["probe"] = {k: emb[k] for k in ("student", "teacher")}
                lev["gallery"] = {"pair": gal["pair"]["student"], "search": gal["search"]["student"]}
            self.levels[level] = lev

    def scores(self, level: str, top: float, ramp: float, engine: FaceEngine) -> tuple[np.ndarray, np.ndarray]:
        """The simulated product's pair similarities and search similarities at ``level``."""
        lev = self.levels[level]
        c = engine.companion
        _, w_comp = mean_weights(c.probe_weights(np.expm1(lev["q"])), c.weight)
        t = teacher_share(lev["q"], top, ramp)
        if self.probe_side:
            d = (1 - t)[:, None] * lev["probe"]["student"] + t[:, None] * lev["probe"]["teacher"]
            d /= np.linalg.norm(d, axis=1, keepdims=True)
            main_pair = (d * lev["gallery"]["pair"]).sum(1)
            main_search = d[self.sets.closed] @ lev["gallery"]["search"].T
            wc = w_comp[self.sets.closed][:, None]
            return ((1 - w_comp) * main_pair + w_comp * lev["pair"]["companion"],
                    (1 - wc) * main_search + wc * lev["search"]["companion"])

        def mix(parts: dict, rows) -> np.ndarray:
            wc, tt = w_comp[rows], t[rows]
            if parts["student"].ndim == 2:
                wc, tt = wc[:, None], tt[:, None]
            return (1 - wc) * ((1 - tt) * parts["student"] + tt * parts["teacher"]) + wc * parts["companion"]

        return mix(lev["pair"], slice(None)), mix(lev["search"], self.sets.closed)

    def top1(self, search: np.ndarray) -> np.ndarray:
        t = self.sets.truth
        return (search > search[np.arange(len(t)), t][:, None]).sum(1) == 0


def fitted_accuracy(cal: Parts, test: Parts, engine: FaceEngine, top: float, ramp: float) -> dict[str, np.ndarray]:
    """Per DevTest level, whether each pair is decided right at p >= 0.5 of the shipped form of the match logistic
    (``fit_logistic`` with the probes' sharpness), fitted on the calibration pairs of every level (no audio)."""
    s = np.concatenate([cal.scores(lv, top, ramp, engine)[0] for lv in EVAL_LEVELS])
    sharp = np.expm1(np.concatenate([cal.levels[lv]["q"] for lv in EVAL_LEVELS]))
    w, q_range = fit_logistic(s, np.tile(cal.same, len(EVAL_LEVELS)), sharp)
    lo, hi = q_range if q_range else (0.0, 0.0)
    out = {}
    for lv in EVAL_LEVELS:
        st, q = test.scores(lv, top, ramp, engine)[0], np.clip(test.levels[lv]["q"], lo, hi)
        out[lv] = ((w[0] + w[1] * st + w[2] * q + w[3] * st * q >= 0) == test.same)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=Path("resources/models"))
    ap.add_argument("--out", type=Path, default=Path("research/teacher_route.json"))
    ap.add_argument("--form", choices=("three-part", "probe-side"), default="three-part", help="see above")
    args = ap.parse_args()
    side = args.form == "probe-side"
    index, split, cache = load_split_data(shared_data_dir() / "lfw")
    engine = FaceEngine(args.models, device="cpu")
    if engine.companion is None or engine.rec_size != 112:
        raise SystemExit("needs a joined bundle whose recogniser is an SFace student")
    net = SFaceNet()
    net.load_state_dict(convert(default_onnx_path()))
    teacher = FaceEngine(args.models, device="cpu")
    teacher._rec_run = cpu_graph(net.eval().for_inference(), engine.rec_size, engine.precision)
    cal = Parts(engine, teacher, index, cache, split.calib_pairs, "calib", side)
    report: dict = {"installed": engine.info.version, "precision": engine.info.params["precision"], "form": args.form,
                    "calibration": {}, "rule": "see the module docstring"}
    base_auc = {lv: auc_interval(cal.scores(lv, 0.0, 1.0, engine)[0], cal.same)[0] for lv in EVAL_LEVELS}
    ranked = []
    for top in SHARES:
        for ramp in (RAMPS if top else (1.0,)):
            row = {}
            for lv in EVAL_LEVELS:
                pair, search = cal.scores(lv, top, ramp, engine)
                row[lv] = {"auc": round(auc_interval(pair, cal.same)[0], 4),
                           "rank_1": round(float(cal.top1(search).mean()), 4)}
            ok = all(row[lv]["auc"] >= round(base_auc[lv], 4) - AUC_SLACK for lv in EVAL_LEVELS)
            mean_r1 = float(np.mean([row[lv]["rank_1"] for lv in EVAL_LEVELS]))
            report["calibration"][f"T {top} R {ramp}"] = {**row, "mean_rank_1": round(mean_r1, 4), "eligible": ok}
            print(f"T {top:4} R {ramp:3}  " + "  ".join(
                f"{lv} AUC {row[lv]['auc']:.4f} r1 {row[lv]['rank_1']:.3f}" for lv in EVAL_LEVELS)
                + f"  mean r1 {mean_r1:.4f}{'' if ok else '  (out: AUC)'}", flush=True)
            if ok:
                ranked.append((-round(mean_r1, 4), top, ramp))
    _, top, ramp = min(ranked)
    report["chosen"] = {"T": top, "R": ramp}
    print(f"chosen on the calibration people: T {top}, R {ramp}", flush=True)
    if top == 0.0:
        report["devtest"] = "not run: the shipped join (T = 0) won on the calibration people"
    else:
        test = Parts(engine, teacher, index, cache, split.test_pairs, "test", side)
        right_new = fitted_accuracy(cal, test, engine, top, ramp)
        right_old = fitted_accuracy(cal, test, engine, 0.0, 1.0)
        dev = {}
        for lv in EVAL_LEVELS:
            new_pair, new_search = test.scores(lv, top, ramp, engine)
            old_pair, old_search = test.scores(lv, 0.0, 1.0, engine)
            dev[lv] = {"rank_1": mcnemar(test.top1(new_search), test.top1(old_search)),
                       "auc": auc_difference(new_pair, old_pair, test.same),
                       "accuracy": mcnemar(right_new[lv], right_old[lv]),
                       "teacher_share_mean": round(float(teacher_share(test.levels[lv]["q"], top, ramp).mean()), 4)}
            print(lv, json.dumps(dev[lv]), flush=True)
        gain = dev["clean"]["rank_1"]
        worse = [f"{lv} {k}" for lv, d in dev.items() for k in ("rank_1", "auc", "accuracy")
                 if d[k]["p_value"] < 0.05 and (d[k].get("difference", 0) < 0 if k == "auc"
                                                else d[k]["accuracy_a"] < d[k]["accuracy_b"])]
        met = gain["p_value"] < 0.05 and gain["accuracy_a"] > gain["accuracy_b"] and not worse
        report["devtest"] = {"a": f"T {top} R {ramp}", "b": "the shipped join (T = 0)", "levels": dev,
                             "significantly_worse": worse, "rule_met": met}
        print("rule met" if met else f"rule not met (worse: {worse})", flush=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
