"""Do the evaluation's 95 % intervals hold although LFW's DevTest pairs share people?

``forensic-face evaluate`` gives Wilson intervals for accuracy and DeLong intervals for the ROC-AUC,
both of which treat the 1,000 pairs as independent. Pairs that share a person are not. This script
joins the pairs into groups linked by shared people (connected components of the person graph: groups
are independent of each other), resamples whole groups (a cluster bootstrap) and prints the interval
widths beside the analytic ones and beside a plain bootstrap over pairs. It prints figures; it asserts
nothing.

    .venv/bin/python -m research.interval_check [--models resources/models] [--draws 2000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from forensic_face.engine.inference import FaceEngine
from forensic_face.paths import shared_data_dir
from forensic_face.training.evaluate import gallery_crops, probe_set, probe_sharpness, score_pairs
from forensic_face.training.metrics import auc_interval, roc_auc, wilson_interval
from forensic_face.training.split import load_split_data
from forensic_face.vision.degrade import EVAL_LEVELS


def linked_groups(pairs) -> list[np.ndarray]:
    """Indices of the pairs in each group of pairs linked by shared people."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for p in pairs:
        parent[root(p.a.split("/")[0])] = root(p.b.split("/")[0])
    roots = [root(p.a.split("/")[0]) for p in pairs]
    ids = {r: i for i, r in enumerate(sorted(set(roots)))}
    group = np.array([ids[r] for r in roots])
    return [np.nonzero(group == g)[0] for g in range(len(ids))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=Path("resources/models"))
    ap.add_argument("--draws", type=int, default=2000)
    args = ap.parse_args()
    index, split, cache = load_split_data(shared_data_dir() / "lfw")
    engine = FaceEngine(args.models, device="cpu")
    pairs = split.test_pairs
    same = np.array([p.same for p in pairs])
    groups = linked_groups(pairs)
    people = {q for p in pairs for q in (p.a.split("/")[0], p.b.split("/")[0])}
    print(f"{len(pairs)} pairs, {len(people)} people, {len(groups)} linked groups "
          f"(largest {max(map(len, groups))} pairs)")
    rng = np.random.default_rng(0)
    cluster = [np.concatenate([groups[g] for g in rng.integers(0, len(groups), len(groups))])
               for _ in range(args.draws)]
    plain = [rng.integers(0, len(pairs), len(pairs)) for _ in range(args.draws)]
    gallery = engine.embed(gallery_crops(index, cache, [p.a for p in pairs], engine.size))

    def width(values: list[float]) -> float:
        lo, hi = np.percentile(values, [2.5, 97.5])
        return float(hi - lo)

    for level in EVAL_LEVELS:
        probes = probe_set(index, cache, pairs, level, engine.size, "test", 2, None)
        s = score_pairs(engine, gallery, probes, None, None)["recon"]
        right = (engine.calibration.probability(s, probe_sharpness(probes)) >= 0.5) == same
        lo, hi = wilson_interval(int(right.sum()), right.size)
        _, alo, ahi = auc_interval(s, same)
        acc_c, acc_p = width([right[d].mean() for d in cluster]), width([right[d].mean() for d in plain])
        auc_c, auc_p = width([roc_auc(s[d], same[d]) for d in cluster]), width([roc_auc(s[d], same[d]) for d in plain])
        print(f"{level:6s} accuracy {right.mean():.4f}: interval width Wilson {hi - lo:.4f}, pair bootstrap "
              f"{acc_p:.4f}, group bootstrap {acc_c:.4f} ({acc_c / (hi - lo) - 1:+.0%})")
        print(f"{level:6s} ROC-AUC  {roc_auc(s, same):.4f}: interval width DeLong {ahi - alo:.4f}, pair bootstrap "
              f"{auc_p:.4f}, group bootstrap {auc_c:.4f} ({auc_c / (ahi - alo) - 1:+.0%})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
