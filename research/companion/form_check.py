"""The join's form checked on the calibration people alone (no DevTest): rank-1 and leads at the 1 % setting of the
calibration searches (314 per level among 545 people; the open-set table fitted on the same searches, so in-sample)
for the student alone, the earlier unit-vector join (share 0.2 -> 0 over the 1st-99th percentile of q) and the
shipped form (weighted mean of the cosines; share 0.2 at q <= 3.89 falling to 0 at 5.39).

    git archive 2c5c33e resources/models | tar -x -C /tmp/student   # the student alone, ff-2026-12-05-dada2dc4
    git archive 292be66 resources/models | tar -x -C /tmp/prev      # the CNN, ff-2026-11-26-19f697db
    .venv/bin/python -m research.score_fusion /tmp/student/resources/models /tmp/prev/resources/models \\
        --out /tmp/fusion.json --dump SCORES.npz
    .venv/bin/python research/companion/form_check.py SCORES.npz

Output of 2026-12-05 (the shipped form keeps the student's clean leads on these people too; the earlier form lost
them here as on DevTest):

    student alone  clean r1  96.5 lead  86.6  mild r1  67.5 lead  28.3  severe r1  15.3 lead   0.6
    old unit form  clean r1  95.9 lead  77.7  mild r1  72.6 lead  34.4  severe r1  19.4 lead   1.9
    shipped form   clean r1  96.5 lead  86.0  mild r1  71.0 lead  34.7  severe r1  19.7 lead   1.3
"""

from __future__ import annotations

import sys

import numpy as np

from forensic_face.models.calibration import (
    MatchCalibration,
    fit_logistic,
    fit_open_set_table,
    lead_score,
    open_set_lookup,
    sharpness_feature,
)
from forensic_face.paths import shared_data_dir
from forensic_face.training.evaluate import identification_sets
from forensic_face.training.split import load_split_data

LEVELS = ("clean", "mild", "severe")
GALLERY_WEIGHT = 0.5


def main() -> int:
    _, split, _ = load_split_data(shared_data_dir() / "lfw")
    sets = identification_sets(split.calib_pairs)
    d = np.load(sys.argv[1])
    same = d["same_calib"].astype(float)
    q_all = np.concatenate([sharpness_feature(d[f"calib_{lv}_sharp"]) for lv in LEVELS])
    lo, hi = np.percentile(q_all, (1, 99))
    forms = {"student alone": (lambda q: np.zeros_like(q), True),
             "old unit form": (lambda q: 0.2 * (1 - np.clip((q - lo) / (hi - lo), 0, 1)), False),
             "shipped form": (lambda q: 0.2 * np.clip((5.3935 - q) / 1.5, 0, 1), True)}

    def joined(parts, q, form):
        share_of, mean = form
        share = share_of(q)
        w_main, w_comp = np.sqrt((1 - share) * (1 - GALLERY_WEIGHT)), np.sqrt(share * GALLERY_WEIGHT)
        if mean:
            w_main, w_comp = w_main / (w_main + w_comp), w_comp / (w_main + w_comp)
        return w_main * parts[0] + w_comp * parts[1]

    for name, form in forms.items():
        pairs = np.concatenate([joined(d[f"calib_{lv}_s"], sharpness_feature(d[f"calib_{lv}_sharp"]), form)
                                for lv in LEVELS])
        sharp = np.concatenate([d[f"calib_{lv}_sharp"] for lv in LEVELS])
        weights, quality_range = fit_logistic(pairs, np.tile(same, len(LEVELS)), sharp)
        cal = MatchCalibration(weights, 1.0, 0, 0, quality_range)
        search = {lv: joined(d[f"calib_{lv}_search"], sharpness_feature(d[f"calib_{lv}_sharp"])[sets.closed][:, None],
                             form) for lv in LEVELS}
        table = fit_open_set_table(np.concatenate(list(search.values())), np.tile(sets.truth, len(LEVELS)))
        threshold = open_set_lookup(table, search["clean"].shape[1] - 1, 0.01)
        out = []
        for lv in LEVELS:
            s = search[lv]
            top1 = s.argmax(1) == sets.truth
            one = cal.probability(s.max(1), d[f"calib_{lv}_sharp"][sets.closed]) >= 0.5
            lead = top1 & one & (lead_score(s) >= threshold)
            out.append(f"{lv} r1 {top1.mean() * 100:5.1f} lead {lead.mean() * 100:5.1f}")
        print(name.ljust(14), "  ".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
