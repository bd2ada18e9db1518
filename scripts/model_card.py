"""Write a model bundle's MODEL_CARD.md from its models.json, evaluation.json, evaluation_clips.json and
hp_search.json, and evaluation_previous.json (the previous bundle's evaluation) when there is one.

    .venv/bin/python scripts/model_card.py [--models DIR]   # default resources/models; writes DIR/MODEL_CARD.md

Three kinds of bundle: the project's own CNN of the reconstruction ("ff-cnn", no ``recogniser`` in models.json
or ``embeds`` = ``reconstruction``); a recogniser of the face as found (``embeds`` = ``input``: the SFace student
of ``forensic-face tune-sface``), whose product rows in evaluation.json are ``degraded_*``; and that student joined
to a companion recogniser of the reconstruction (models.json's ``companion``: ``tune-sface --export --companion``),
whose ``recon_*`` rows are the joined embedding as searched and ``degraded_*`` rows the joined embedding with the
companion given the degraded face instead.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from forensic_face.models.bundle import RECOGNISERS, calibration_digest
from forensic_face.models.calibration import MatchCalibration
from forensic_face.paths import models_dir
from forensic_face.training.metrics import wilson_interval
from forensic_face.training.split import CALIB_MADE_CAP
from forensic_face.vision.degrade import EVAL_LEVELS

#: What each kind of product searches with, as the card names it (:func:`kind`).
PIPELINE = {"recon": "reconstruction", "degraded": "face as found",
            "joined": "face as found joined to its reconstruction"}


def pct(v: float) -> str:
    return f"{100 * v:.1f} %"


def with_ci(r: dict, key: str, fmt=pct) -> str:
    """A figure and its 95 % interval from an evaluation report ("79.2 % (76.6–81.6)")."""
    ci = r.get("ci95", {}).get(key)
    if not ci:
        return fmt(r[key])
    return f"{fmt(r[key])} ({fmt(ci[0]).rstrip(' %')}–{fmt(ci[1]).rstrip(' %')})"


def auc(v: float) -> str:
    return f"{v:.3f}"


def product(ev: dict) -> str:
    """The rows of evaluation.json the product searches with: "recon" (the reconstruction; evaluations made
    before the key existed) or "degraded" (the face as found)."""
    return ev.get("product_scores", "recon")


def kind(ev: dict) -> str:
    """What the evaluation's product searched with: "recon" or "degraded" (:func:`product`), or "joined" (a
    recogniser of the face as found joined to a companion of the reconstruction: the recon rows)."""
    return "joined" if ev.get("engine", {}).get("companion") else product(ev)


def earlier(ev: dict) -> str:
    """The model the calibration's form and the interval check were made on, as a bundle of ``ev``'s kind names
    it (for a recogniser of the face as found alone, the previous bundle was that model)."""
    return "an earlier model of the project's own CNN" if kind(ev) == "joined" else "the previous model"


def joined(meta: dict) -> bool:
    """Whether the bundle joins a companion recogniser to its recogniser."""
    return bool(meta.get("companion"))


def as_found(meta: dict) -> bool:
    """Whether the bundle's recogniser embeds the face as found rather than the reconstruction."""
    return (meta.get("recogniser") or {}).get("embeds") == "input"


def three(values: list[float]) -> str:
    return " / ".join(f"{v:.3f}" for v in values)


def rates(values) -> str:
    return " / ".join(pct(v) for v in values)


# ------------------------------------------------------------------------------------------------ input


def load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{path}: cannot be read as JSON ({exc})") from None


def check_made_with(path: Path, report: dict, meta: dict, what: str) -> None:
    """Refuse a report made with other weights or another calibration than the bundle's, or with the recognisers in
    another arithmetic than float32 (the one every machine reproduces; the card's figures are its)."""
    made = report.get("engine", {})
    if made.get("precision", "float32") != "float32":
        raise SystemExit(f"{path} was measured with the recognisers in {made['precision']}; the card's figures are "
                         f"float32's, the same on every machine: run {what}")
    digest = calibration_digest(meta["calibration"])
    if made.get("weights_sha256") != meta["weights_sha256"] or (made.get("calibration_sha256") or digest) != digest:
        raise SystemExit(f"{path} was made with version {made.get('model_version')} (weights "
                         f"{str(made.get('weights_sha256'))[:16]}…, calibration "
                         f"{str(made.get('calibration_sha256'))[:16]}…), not with this bundle's {meta['version']} "
                         f"(weights {meta['weights_sha256'][:16]}…, calibration {str(digest)[:16]}…): run {what} "
                         "for this bundle first")


def load(folder: Path) -> tuple[dict, dict, dict | None, dict | None]:
    """models.json, evaluation.json, hp_search.json and evaluation_previous.json of ``folder`` (the last two
    None when absent), with the evaluation checked against the bundle."""
    if not (folder / "models.json").is_file():
        raise SystemExit(f"{folder}: no models.json there; pass the folder of a model bundle with --models")
    meta = load_json(folder / "models.json")
    if not meta.get("calibration"):
        raise SystemExit(f"{folder / 'models.json'} has no calibration: the export did not finish; run it again "
                         "(`forensic-face tune-sface --export` or `forensic-face train`)")
    path = folder / "evaluation.json"
    if not path.is_file():
        raise SystemExit(f"{folder}: no evaluation.json; run `forensic-face evaluate --precision float32 --models "
                         f"{folder} --out {path}`")
    ev = load_json(path)
    check_made_with(path, ev, meta, f"`forensic-face evaluate --precision float32 --models {folder} --out {path}`")
    hp = load_json(folder / "hp_search.json") if (folder / "hp_search.json").is_file() else None
    prev = folder / "evaluation_previous.json"
    return meta, ev, hp, load_json(prev) if prev.is_file() else None


# ------------------------------------------------------------------------------------------------ results

#: The paired comparisons of evaluation.json as each kind of product names them.
PAIRED_NAMES = {
    "recon": {"reconstruction_vs_degraded": "reconstruction (a) vs degraded input (b), no audio",
              "audio_vs_no_audio": "synthetic voice (a) vs no audio (b), reconstruction",
              "ours_vs_dlib": "ours with voice (a) vs dlib at 0.6 (b)"},
    "degraded": {"reconstruction_vs_degraded": "reconstruction carried into the crop (a) vs face as found (b), "
                                               "no audio",
                 "audio_vs_no_audio": "synthetic voice (a) vs no audio (b), reconstruction carried into the crop",
                 "ours_vs_dlib": "the product, face as found (a) vs dlib at 0.6 (b)"},
    "joined": {"reconstruction_vs_degraded": "companion given the reconstruction (a) vs given the degraded face "
                                             "(b), no audio",
               "audio_vs_no_audio": "synthetic voice (a) vs no audio (b), the product",
               "ours_vs_dlib": "the product with the synthetic voice (a) vs dlib at 0.6 (b)"},
}


def published(ev: dict) -> str:
    """The published recogniser measured beside the product, with its threshold ("SFace as published at 0.363")."""
    ref = ev.get("reference") or {}
    return f"{ref.get('name', 'the published recogniser')} at {ref.get('threshold', float('nan')):g}"


def at_threshold(lev: dict) -> dict:
    """A level's verification figures of the published recogniser (its one entry, keyed by its threshold)."""
    return next(iter(lev["reference"].values()))


def paired_tests(ev: dict) -> list[str]:
    """The per-level paired tests of evaluation.json (McNemar, DeLong, PSNR gain) as a table."""
    if "comparisons" not in ev["levels"]["severe"]:
        return []
    lines = ["", "Paired tests on the same 1,000 pairs: McNemar's exact test on the pairs only one side gets right, "
             "the paired DeLong test of the ROC-AUC difference, and the mean per-probe PSNR gain over bicubic "
             "with its t interval. 95 % intervals in brackets.", "",
             "| level | comparison | accuracy | right only with a / only with b, p | AUC difference, p |",
             "| --- | --- | --- | --- | --- |"]
    for level, lev in ev["levels"].items():
        names = PAIRED_NAMES[kind(ev)] | {"ours_vs_reference": f"the product with the synthetic voice (a) vs "
                                                               f"{published(ev)} (b)"}
        for key, label in names.items():
            if key not in lev["comparisons"]:  # an evaluation without the published recogniser beside it
                continue
            t = lev["comparisons"][key]
            a, d = t["accuracy"], t["roc_auc"]
            lines.append(f"| {level} | {label} | {pct(a['accuracy_a'])} vs {pct(a['accuracy_b'])} | "
                         f"{a['a_only']} / {a['b_only']}, p = {a['p_value']:.2g} | {d['difference']:+.4f} "
                         f"({d['ci95'][0]:+.4f} to {d['ci95'][1]:+.4f}), p = {d['p_value']:.2g} |")
    gains = [f"{level} {g['mean']:+.2f} dB ({g['ci95'][0]:+.2f} to {g['ci95'][1]:+.2f}; better than bicubic on "
             f"{pct(g['share_better'])} of the probes)"
             for level, lev in ev["levels"].items()
             if (g := lev["comparisons"].get("psnr_gain_over_bicubic_db", {}).get("no_audio"))]
    lines += ["", "PSNR gain of the reconstruction (no audio) over bicubic: " + "; ".join(gains) + "."]
    return lines


#: The verification rows of the results table: (label, evaluation.json key), by what the product searches with.
RESULT_ROWS = {
    "recon": (("reconstruction, no audio", "recon_no_audio"),
              ("reconstruction, synthetic voice", "recon_with_audio"),
              ("degraded input, no audio", "degraded_no_audio")),
    "degraded": (("face as found (the product)", "degraded_no_audio"),
                 ("reconstruction carried into the recogniser's crop, no audio", "recon_no_audio"),
                 ("reconstruction carried into the recogniser's crop, synthetic voice", "recon_with_audio")),
    "joined": (("joined, companion given the reconstruction (the product), no audio", "recon_no_audio"),
               ("joined, companion given the reconstruction (the product), synthetic voice", "recon_with_audio"),
               ("joined, companion given the degraded face instead, no audio", "degraded_no_audio")),
}


def voice_reaches_product(ev: dict) -> bool:
    """Whether the synthetic voice changed any figure of the product's rows."""
    key = product(ev)
    return any(lev[f"{key}_with_audio"] != lev[f"{key}_no_audio"] for lev in ev["levels"].values())


def results(ev: dict) -> list[str]:
    """The DevTest verification table, reconstruction quality, paired tests and detection."""
    key = kind(ev)
    if key == "joined":
        what = ("'joined' = the searched embedding: the recogniser's of the degraded probe in its own five-point "
                "crop joined to the companion's; 'companion given the reconstruction' = the companion embeds the "
                "autoencoder's reconstruction of the probe, as the product does; 'given the degraded face instead' "
                "= it embeds the degraded probe itself in the autoencoder's crop, not its reconstruction (the "
                "recogniser's part unchanged). The voice reaches the product through the reconstruction the "
                "companion embeds. ")
    elif key == "degraded":
        what = ("'face as found' = the recogniser on the degraded probe in its own five-point crop, what the "
                "product searches with; 'reconstruction carried into the recogniser's crop' = the same recogniser "
                "on the autoencoder's reconstruction warped into that crop (the reconstruction is shown to the "
                "analyst, not searched with). "
                + ("" if voice_reaches_product(ev) else "The voice does not reach the face as found: with the "
                   "synthetic voice its figures are the same (`degraded_with_audio`). "))
    else:
        what = ("'degraded' = the recogniser on the degraded input directly, "
                "'reconstruction' = on the autoencoder's output. ")
    rows = RESULT_ROWS[key] + ((("face as found, synthetic voice", "degraded_with_audio"),)
                               if key == "degraded" and voice_reaches_product(ev) else ())
    lines = ["", "## Results on LFW DevTest (1,000 pairs; probe degraded, gallery clean)", "",
             "Accuracy, precision, recall, F1 at the calibrated threshold (fitted on calibration people, not on "
             "these pairs); ROC-AUC; TAR at FAR 1e-2. In brackets: 95 % intervals (Wilson for accuracy, DeLong for "
             "the AUC; every rate's interval is in `evaluation.json` under `ci95`). " + what
             + "dlib = the reference, same probes and detections, at its documented 0.6 distance"
             + ("; SFace as published = OpenCV Zoo's file, not tuned, on the same detections in the five-point "
                "112 px crop, at OpenCV Zoo's 0.363 cosine" if "reference" in ev["levels"]["clean"] else "")
             + ".", "",
             "| level | pipeline | accuracy | precision | recall | F1 | ROC-AUC | TAR@FAR1e-2 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for level, lev in ev["levels"].items():
        refs = [("dlib ResNet at 0.6 (reference)", lev["dlib_reference"]["at_0.6"])]
        if "reference" in lev:
            refs.append((f"{published(ev)} (reference)", at_threshold(lev)))
        for name, r in [(name, lev[k]) for name, k in rows] + refs:
            lines.append(f"| {level} | {name} | {with_ci(r, 'accuracy')} | {pct(r['precision'])} | "
                         f"{pct(r['recall'])} | {pct(r['f1'])} | {with_ci(r, 'roc_auc', auc)} | "
                         f"{pct(r['tar_at_far_1e-2'])} |")
    lines += ["", "Reconstruction quality against the clean face (crops in the clean alignment):", "",
              "| level | bicubic PSNR / SSIM | reconstruction, no audio | with synthetic voice |",
              "| --- | --- | --- | --- |"]
    for level, lev in ev["levels"].items():
        b, r0, r1 = lev["bicubic"], lev["reconstruction_no_audio"], lev["reconstruction_with_audio"]
        base = ("— (the clean probe is its own target)" if level == "clean"
                else f"{b['psnr_db']:.2f} dB / {b['ssim']:.3f}")
        lines.append(f"| {level} | {base} | {r0['psnr_db']:.2f} dB / "
                     f"{r0['ssim']:.3f} | {r1['psnr_db']:.2f} dB / {r1['ssim']:.3f} |")
    lines += paired_tests(ev)
    lines += ["", "Detection on the degraded probes (the centre box stands in for an analyst's box when nothing "
              "is found):", ""]
    for level, lev in ev["levels"].items():
        lines.append(f"- {level}: face found on {lev['probes_face_found']} of {ev['pairs']} probes, median width "
                     f"{lev['probe_face_px_median']} px; detector steps {lev['detector_methods']}")
    return lines


def previous_model(ev: dict, prev: dict | None, meta: dict) -> list[str]:
    """What the previous bundle's product gave on DevTest (evaluation_previous.json) beside this one's."""
    if not prev:
        return []
    made = prev.get("engine", {})
    version = made.get("model_version", "?")
    name = made.get("recogniser", "ff-cnn")  # evaluations made before the key existed were of the ff-cnn
    kept = as_found(meta) and version in {hop["from_bundle"] for hop in ae_origin(meta["record"])[0]} | {
        (meta["record"].get("sharp") or {}).get("joined_to")}  # join-sharp keeps the bundle's autoencoder
    same_file = bool(made.get("weights_sha256")) and made.get("weights_sha256") == meta.get("weights_sha256")
    test = lambda split: {k: (split or {}).get(k) for k in ("source", "test_people", "test_pairs")}  # noqa: E731
    same = "the same DevTest pairs and searches" if test(prev.get("split")) == test(ev.get("split")) \
        else "its own DevTest split"
    lines = ["", f"## Against the previous model ({name}, version `{version}`)", "",
             f"The previous bundle's evaluation (`evaluation_previous.json`), on {same}, each model as its product "
             f"searches (the previous one: the {PIPELINE[kind(prev)]}; this one: the {PIPELINE[kind(ev)]}), "
             "no audio. 95 % intervals in brackets."
             + (f" Its weights are this one's, the same file (`models.pt`, SHA-256 `{meta['weights_sha256'][:16]}…`): "
                "what differs is how the recognisers' cosines are joined and the calibration fitted for it."
                if same_file else "")
             + (" The autoencoder is that model's, unchanged." if kept and not same_file else "")
             + (" So is the recogniser, the student of the same tuning run (the same settings and per-epoch "
                "history): what differs is the companion." if kept and not same_file and joined(meta)
                and same_student(meta) else ""), "",
             "| level | model | accuracy | ROC-AUC | TAR@FAR1e-2 | gallery rank 1 |",
             "| --- | --- | --- | --- | --- | --- |"]
    for level in ev["levels"]:
        for row, report in ((f"previous ({name})", prev), ("this one", ev)):
            r = report["levels"][level][f"{product(report)}_no_audio"]
            rank = (report.get("identification") or {}).get("levels", {}).get(level, {}).get("rank_1")
            lines.append(f"| {level} | {row} | {with_ci(r, 'accuracy')} | {with_ci(r, 'roc_auc', auc)} | "
                         f"{pct(r['tar_at_far_1e-2'])} | {pct(rank['rate']) if rank else '—'} |")
    return lines


# ------------------------------------------------------------------------------------------------ calibration


def weak_accepts(ev: dict) -> tuple[int, int]:
    """Of the severe pairs the product accepts (probability ≥ 0.5), how many have a probability below 0.7."""
    bins = ev["levels"]["severe"][f"{product(ev)}_no_audio"]["match_probability"]["bins"]
    return (sum(b["pairs"] for b in bins if 0.5 <= b["from"] < 0.7),
            sum(b["pairs"] for b in bins if b["from"] >= 0.5))


def match_calibration(ev: dict, hp: dict | None) -> list[str]:
    """How honest the match probability is per level, and the change of calibration that led there (``hp``: the
    hyperparameter search's record of it; None for a bundle whose calibration form was chosen on another)."""
    key = f"{product(ev)}_no_audio"
    if "match_probability" not in ev["levels"]["severe"][key]:
        return []
    lines = ["", "## Match calibration", "",
             f"How far the stated match probability is from what happened on DevTest ({PIPELINE[kind(ev)]}, no "
             "audio): the Brier score and the expected calibration error (ECE: the pair-weighted mean gap between "
             "the stated probability and the observed same-person rate, 10 equal-width bins; `evaluation.json` "
             "holds the bins).", "", "| level | Brier | ECE | false match rate | false non-match rate |",
             "| --- | --- | --- | --- | --- |"]
    for level, lev in ev["levels"].items():
        r = lev[key]
        lines.append(f"| {level} | {r['match_probability']['brier']:.4f} | {r['match_probability']['ece']:.4f} | "
                     f"{with_ci(r, 'false_match_rate')} | {with_ci(r, 'false_non_match_rate')} |")
    change = (hp or {}).get("calibration_change")
    if change:
        return lines + calibration_change(ev, change)
    if kind(ev) != "recon":
        weak, accepted = weak_accepts(ev)
        lines += ["", f"Of the severe pairs it accepts, {weak} of {accepted} have a match probability below 0.7; the "
                  "report prints the probability beside each candidate. The calibration's form (the sharpness term, "
                  f"the lead score of gallery searches, the temperature by sharpness) was chosen on {earlier(ev)}, "
                  "whose figures `hp_search.json` keeps (`calibration_change`, `open_set_change`, "
                  "`temperature_change`), and refitted here on this "
                  + ("bundle's joined" if kind(ev) == "joined" else "recogniser's") + " scores of the calibration "
                  "pairs."]
    return lines


def calibration_change(ev: dict, change: dict) -> list[str]:
    """The sharpness term's adoption (hp_search.json 'calibration_change'), with the networks it was made on."""
    cv = change["cv_calibration_pairs"]
    lines = ["", f"The sharpness term was added on {change['date']} by a rule {change['rule']}. Calibration "
             "pairs, 2-fold person-disjoint cross-validation (accuracy / ECE, clean, mild, severe): one threshold "
             + ", ".join(f"{a:.3f} / {e:.3f}" for a, e in zip(cv['pooled']['accuracy'], cv['pooled']['ece'],
                                                             strict=True))
             + "; with the sharpness term "
             + ", ".join(f"{a:.3f} / {e:.3f}" for a, e in zip(cv['sharpness']['accuracy'], cv['sharpness']['ece'],
                                                             strict=True))
             + "; a high-frequency energy ratio in its place did less at severe (ECE "
             f"{cv['high_frequency_ratio']['ece'][2]:.3f}). DevTest, the same networks before and after:", "",
             "| level | calibration | accuracy | false match rate | false non-match rate | Brier | ECE |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for level, both in change["devtest"].items():
        for name, label in (("pooled", "one threshold (before)"), ("sharpness", "sharpness term (shipped)")):
            r = both[name]
            lines.append(f"| {level} | {label} | {pct(r['accuracy'])} | {pct(r['false_match_rate'])} | "
                         f"{pct(r['false_non_match_rate'])} | {r['brier']:.4f} | {r['ece']:.4f} |")
    sev = change["devtest"]["severe"]
    weak, accepted = weak_accepts(ev)
    tests = change.get("devtest_mcnemar_after_vs_before", {})
    lines += ["", "The probabilities came closer to what happened at every level by the Brier score (ECE: clean and "
              "severe much closer, mild a little further). No level's accuracy changed significantly (McNemar, "
              "after against before: p = "
              + ", ".join(f"{t['p_value']:.2g} {level}" for level, t in tests.items())
              + "). The price is at severe: the threshold for blurred probes is lower, so the false-match rate "
              f"rose from {pct(sev['pooled']['false_match_rate'])} to {pct(sev['sharpness']['false_match_rate'])} "
              f"while the false non-match rate fell from {pct(sev['pooled']['false_non_match_rate'])} to "
              f"{pct(sev['sharpness']['false_non_match_rate'])}. Of the severe pairs it accepts, {weak} of {accepted} "
              "have a match probability below 0.7: a 'candidate' verdict on a severely degraded probe is often a "
              "weak one, and the report prints the probability beside each candidate."]
    if change.get("heldout_degradations"):
        lines += heldout_degradations(change["heldout_degradations"])
    if change.get("noise_compensated_sharpness"):
        lines += ["", change["noise_compensated_sharpness"]]
    return lines


def heldout_degradations(held: dict) -> list[str]:
    """Both calibration forms on degradations neither was fitted on (calibration pairs, 2-fold)."""
    lines = ["", "Degradations the calibration was not fitted on (" + held["how"] + "; accuracy, false match "
             "rate, false non-match rate, Brier, ECE):", "",
             "| level | one threshold | sharpness term |", "| --- | --- | --- |"]
    for level, forms in held["levels"].items():
        cells = [f"{pct(r['accuracy'])}, {pct(r['false_match_rate'])}, {pct(r['false_non_match_rate'])}, "
                 f"{r['brier']:.4f}, {r['ece']:.4f}" for r in (forms["one"], forms["sharpness"])]
        lines.append(f"| {level} | {cells[0]} | {cells[1]} |")
    unfitted = {k: v for k, v in held["levels"].items() if k not in EVAL_LEVELS}
    med = held["median_sharpness"]
    better = [k for k, v in unfitted.items() if v["sharpness"]["ece"] < v["one"]["ece"]]
    worse = [k for k in unfitted if k not in better]
    return lines + ["", f"The sharpness term gave the lower ECE at {len(better)} of the {len(unfitted)} unfitted "
                    f"levels; not at {', '.join(worse)}. An occluded face (a grey patch over the lower face, as a "
                    f"scarf or mask) is as sharp as a clean one (median sharpness {med['occlusion']:.0f} against "
                    f"{med['clean']:.0f}), so it gets a clean probe's strict threshold although its same-person "
                    "similarities are low: more false non-matches and under-stated probabilities, an error on the "
                    "side of 'no match'. Noise makes a crop look sharper than a clean one (median "
                    f"{med['noise']:.0f} for Gaussian noise, {med['shot']:.0f} for shot noise); there the "
                    "false-match rate fell by 40-50 % and the false non-match rate about doubled."]


# ------------------------------------------------------------------------------------------------ gallery search


def rate_cell(r: dict) -> str:
    return f"{pct(r['rate'])} ({pct(r['ci95'][0]).rstrip(' %')}–{pct(r['ci95'][1]).rstrip(' %')})"


def identification(ev: dict, hp: dict | None) -> list[str]:
    """Closed- and open-set gallery search on DevTest (evaluation.json 'identification'); ``hp``: the record of
    how the lead score and the temperature were chosen (None for a bundle they were chosen on another of)."""
    ident = ev.get("identification")
    if not ident:
        return []
    how = ident["how"]
    if product(ev) == "degraded":  # the evaluation's description predates searches of the face as found
        how = how.replace("degraded 'b' images, reconstructed, no audio", "degraded 'b' images as found, no audio")
    lines = ["", "## Gallery search (identification) on DevTest", "",
             f"A gallery of {ident['gallery_people']} people, one clean image each; {ident['enrolled_probes']} "
             f"probes of enrolled people (another image, degraded) and {ident['not_enrolled_probes']} probes of "
             f"people not enrolled. {how[0].upper() + how[1:]}. 'Found, confident': the right "
             "person first, its match probability ≥ 0.5 and the search's lead score at the open-set threshold (the "
             "report's 'investigative lead'); 'not enrolled, no "
             "confident match': the search of someone not in the gallery ends with no lead, as it should. dlib at "
             "its 0.6 distance on the same searches"
             + (", and SFace as published (a lead: its best cosine at 0.363)"
                if "reference" in ident["levels"]["clean"] else "") + ". 95 % intervals in brackets.", "",
             "| level | pipeline | rank 1 | rank 5 | found, confident | not enrolled, no confident match |",
             "| --- | --- | --- | --- | --- | --- |"]
    for level, lev in ident["levels"].items():
        refs = (("dlib at 0.6 (reference)", lev["dlib_reference"]),) + (
            ((f"{published(ev)} (reference)", lev["reference"]),) if "reference" in lev else ())
        for name, r in ((f"ours ({PIPELINE[kind(ev)]})", lev), *refs):
            lines.append(f"| {level} | {name} | {rate_cell(r['rank_1'])} | {rate_cell(r['rank_5'])} | "
                         f"{rate_cell(r['enrolled_found_confidently'])} | "
                         f"{rate_cell(r['not_enrolled_no_confident_match'])} |")
    paired = [f"{level} {pct(t['accuracy_a'])} against {pct(t['accuracy_b'])} ({t['a_only']} searches only ours "
              f"ranked right, {t['b_only']} only SFace, McNemar p = {t['p_value']:.2g})"
              for level, lev in ident["levels"].items() if (t := lev.get("reference", {}).get("rank_1_paired"))]
    if paired:
        lines += ["", "Rank 1, the product against SFace as published on the same searches: " + "; ".join(paired)
                  + "."]
    lines += open_set(ev, hp)
    fpir_settings(ident, lines, kind(ev))
    clean = ident["levels"]["clean"]
    lines[-1] += (("The finding stands: this recogniser ranks the right person first in "
                   f"{pct(clean['rank_1']['rate'])} of clean searches of {ident['gallery_people']} people, but a "
                   "confident lead comes for a minority of them.") if kind(ev) == "recon" else
                  (f"{'The joined search' if kind(ev) == 'joined' else 'This recogniser'} ranks the right person "
                   f"first in {pct(clean['rank_1']['rate'])} of clean "
                   f"searches of {ident['gallery_people']} people; a confident lead comes for "
                   f"{pct(clean['enrolled_found_confidently']['rate'])} of them."))
    lines[-1] += (" The ranked candidates are always listed with their probabilities; the verdict says why there is "
                  "no lead. The false-lead rate can be set from 0.5 % to 10 % (`--fpir`, Settings).")
    return lines + identity_probability(ident, hp)


def open_set(ev: dict, hp: dict | None) -> list[str]:
    """The open-set paragraph: the one-to-one threshold alone, the lead score, and how it was adopted."""
    ident = ev["identification"]
    clean = ident["levels"]["clean"]
    thr = clean.get("open_set_threshold")
    levels = list(ident["levels"])
    false_leads = [1 - lev["not_enrolled_no_confident_match"]["rate"] for lev in ident["levels"].values()]
    found = [lev["enrolled_found_confidently"]["rate"] for lev in ident["levels"].values()]
    n_open = ident["not_enrolled_probes"]
    pooled = round(sum(false_leads) * n_open) / (n_open * len(levels))
    lo, hi = wilson_interval(round(sum(false_leads) * n_open), n_open * len(levels))
    if kind(ev) == "recon":
        one = clean["one_to_one_threshold_only"]
        alone = (f"{pct(1 - one['not_enrolled_no_confident_match']['rate'])} of the searches for people not in the "
                 "gallery (clean; the same at mild and severe), while "
                 f"{pct(one['enrolled_found_confidently']['rate'])} of the enrolled were found: almost every search "
                 "ended with a lead, whoever the probe was.")
        ran = ("On new people the false-lead rate ran above its setting; the calibration searches, held out by "
               "person, had kept it on average (below).")
    else:
        ones = [lev["one_to_one_threshold_only"] for lev in ident["levels"].values()]
        alone = (rates(1 - o["not_enrolled_no_confident_match"]["rate"] for o in ones) + " of the searches for "
                 f"people not in the gallery ({' / '.join(levels)}), while "
                 + rates(o["enrolled_found_confidently"]["rate"] for o in ones) + " of the enrolled were found.")
        target = clean.get("fpir_target", 0.01)
        ran = ("On new people the false-lead rate ran " + ("above its setting (the whole interval above it)."
                                                           if lo > target else "below its setting (the whole "
                                                           "interval below it)." if hi < target else
                                                           "within sampling error of its setting (the pooled "
                                                           "interval includes it)."))
    lines = ["", "**Open set.** The match probability is a one-to-one figure, and a search makes "
             f"{ident['gallery_people']} comparisons. With the one-to-one threshold alone (probability ≥ 0.5), "
             f"the best of {ident['gallery_people']} strangers passed it in " + alone + " A lead "
             "therefore also needs its *lead score*, the best person's similarity less half the mean similarity "
             "of the next three, to reach the open-set threshold for the gallery's size: the score that searches "
             "for someone not enrolled reach in 1 % of cases, read from the calibration searches themselves "
             "(`MatchCalibration.open_set_threshold`, `fit_open_set_table`; see 'Calibration' above). One "
             "probe's similarities to a gallery rise and fall together, so the next-nearest people carry what "
             "its best stranger would reach, and a true match must stand out from them. For this gallery the "
             "threshold is " + (f"{thr:.3f}" if thr is not None else "—") + ". Found with a lead: "
             + rates(found) + f" of the enrolled ({' / '.join(levels)}); false leads: "
             + rates(false_leads) + f" of the {n_open} searches per level for people not "
             f"enrolled, {pct(pooled)} ({pct(lo).rstrip(' %')}–{pct(hi)}) pooled, against the 1 % the threshold "
             "is set for. " + ran]
    change = (hp or {}).get("open_set_change")
    if not change:
        lines[-1] += " "
        return lines
    adopted, more = open_set_change(ev, change, pooled)
    lines[-1] += adopted
    return lines + more


def open_set_change(ev: dict, change: dict, pooled: float) -> tuple[str, list[str]]:
    """The lead score's adoption (hp_search.json 'open_set_change'): the sentences that end the open-set
    paragraph, and the lines after it."""
    rows = change["cv_calibration_searches"]["rows"]
    before = change["devtest_before"]
    adopted = (f" Adopted on {change['date']} by a rule {change['rule']}. It replaced a threshold on the best "
              "similarity that counted the comparisons as independent (" + before["threshold"] + "), which "
              "erred so far towards caution that " + rates(before["enrolled_with_lead"])
              + " of the enrolled got a lead, with no false leads. The lead score gives about twice the "
              "leads of the best similarity at the same false-lead rate in galleries of a hundred people or "
              "more, and about as many in galleries of 5–20; on the calibration searches, a table fitted on "
              "one half of the probes' people and scored on the other half's (person-disjoint 2-fold, `"
              + change["cv_calibration_searches"]["command"] + "`), at a false-lead rate of 1 %:")
    lines = ["", "| gallery | rule | false leads | enrolled with a lead (clean / mild / severe) |",
              "| --- | --- | --- | --- |"]
    lines += [f"| {r['people']} | {r['rule']} | {pct(r['false_leads'])} | " + rates(r["enrolled_with_lead"]) + " |"
              for r in rows]
    halves = change["cv_calibration_searches"].get("false_leads_by_held_out_half_544_people")
    table = ev["calibration"]["open_set"]
    lines += ["", "The threshold is itself uncertain: the calibration searches are "
              f"{table['searches'] // len(table['levels'])} "
              f"probes seen at {len(table['levels'])} degradation levels, and one probe's "
              "lead scores move together across its levels, so the 1 % point rests on few independent searches"
              + (f"; fitted on either half of the probes' people, the table gave {pct(halves[0])} and "
                 f"{pct(halves[1])} false leads on the other half in galleries of 544, and DevTest's "
                 f"{pct(pooled)} lies a little above the higher of the two" if halves else "")
              + ". More calibration people would narrow it; they would come out of the training set.", "", ""]
    return adopted, lines


def fpir_settings(ident: dict, lines: list[str], key: str) -> None:
    """Append what each false-lead setting gave (its sentence continues the paragraph ``lines`` ends with)."""
    clean = ident["levels"]["clean"]
    if not clean.get("by_fpir_setting"):
        return
    lines[-1] += ("What each false-lead setting gave on these searches (`evaluation_open_set.png` draws the whole "
                  "trade-off, for the lead score and the best similarity, with dlib at 0.6):")
    lines += ["", f"| setting | lead-score threshold, {ident['gallery_people']} people | false leads (clean / mild / "
              "severe) | enrolled with a lead (clean / mild / severe) |", "| --- | --- | --- | --- |"]
    for k, row in enumerate(sorted(clean["by_fpir_setting"], key=lambda r: r["fpir"])):
        per_level = [sorted(lev["by_fpir_setting"], key=lambda r: r["fpir"])[k] for lev in ident["levels"].values()]
        lines.append(f"| {row['fpir'] * 100:g} % | {row['threshold']:.3f} | "
                     + rates(1 - r["not_enrolled_no_confident_match"]["rate"] for r in per_level)
                     + " | " + rates(r["enrolled_found_confidently"]["rate"] for r in per_level) + " |")
    if key == "recon":
        lines += ["", "At 5 and 10 % the measured rates came near their settings; at 0.5-2 % they ran about 2-4 times "
                  "above them at clean, most likely because the table's far tail rests on the fewest independent "
                  "calibration searches. Read a lead at the low settings as held to a few per cent, not to the "
                  "setting."]
    lines += ["", ""]


def identity_probability(ident: dict, hp: dict | None) -> list[str]:
    """The identity probability's calibration on DevTest, and how its temperature came to depend on sharpness."""
    ece = [lev["identity_probability"]["ece"] for lev in ident["levels"].values()]
    lines = ["", "Identity probability (the softmax over the gallery; it assumes the person is enrolled): its "
             "expected calibration error on the enrolled searches, top-1 probability against how often the top-1 "
             "was right, is " + three(ece) + " (clean / mild / severe)."]
    change = (hp or {}).get("temperature_change")
    if change:
        cv, dev = change["cv_calibration_searches"], change["devtest_identity_probability"]
        lines[-1] += (f" Its temperature depends on the probe's sharpness since {change['date']} ({change['form']}; "
                      f"a rule {change['rule']}). Calibration searches, held out: NLL "
                      + three(cv["one_temperature"]["nll"]) + " with one temperature, "
                      + three(cv["by_sharpness"]["nll"]) + " by sharpness; ECE "
                      + three(cv["one_temperature"]["ece"]) + " against "
                      + three(cv["by_sharpness"]["ece"]) + ". DevTest ECE with one "
                      "temperature was " + three(dev["one_temperature"]["ece"])
                      + ": better at clean and severe, worse at mild.")
    second = (hp or {}).get("temperature_change_2")
    if second:
        cv, dev = second["cv_calibration_searches"], second["devtest_identity_probability"]
        lines[-1] += (f" A square term followed on {second['date']} ({second['form']}; a rule {second['rule']}), "
                      f"because {second['why']}. Calibration searches, held out (`{cv['command']}`): NLL "
                      f"{three(cv['linear']['nll'])} "
                      f"with the linear form, {three(cv['quadratic']['nll'])} with the square term; ECE "
                      f"{three(cv['linear']['ece'])} against {three(cv['quadratic']['ece'])}. On DevTest the ECE "
                      f"went from {three(dev['linear']['ece'])} to {three(dev['quadratic']['ece'])} and the Brier "
                      f"score from {three(dev['linear']['brier'])} to {three(dev['quadratic']['brier'])}: better at "
                      "mild, a little worse by the ECE at clean and severe (the Brier score a little better at clean), "
                      "better in sum.")
    return lines


def targets(ev: dict) -> list[str]:
    """Issue 3's targets against the DevTest figures of the product and their 95 % intervals."""
    lv = ev["levels"]
    if "comparisons" not in lv["severe"]:
        return []

    def verdict(ci: list[float], goal: float) -> str:
        return "met (whole interval above)" if ci[0] >= goal else (
            "missed (whole interval below)" if ci[1] < goal else "undecided (interval spans the target)")

    rows = []
    for level, goal in (("clean", 0.96), ("mild", 0.90), ("severe", 0.75)):
        r = lv[level][f"{product(ev)}_no_audio"]
        rows.append(f"| recognition accuracy, {level} | ≥ {pct(goal)} | {with_ci(r, 'accuracy')} | "
                    f"{verdict(r['ci95']['accuracy'], goal)} |")
    g = lv["severe"]["comparisons"]["psnr_gain_over_bicubic_db"]["no_audio"]
    rows.append(f"| reconstruction PSNR over bicubic, severe | ≥ +2 dB | {g['mean']:+.2f} dB ({g['ci95'][0]:+.2f} to "
                f"{g['ci95'][1]:+.2f}) | {verdict(g['ci95'], 2.0)} |")
    t = lv["severe"]["comparisons"]["reconstruction_vs_degraded"]
    a, d = t["accuracy"], t["roc_auc"]
    asked, a_side, b_side = (("the product (companion given the reconstruction) better than the companion given the "
                              "degraded face", "with the reconstruction", "the companion given the degraded face")
                             if kind(ev) == "joined" else
                             ("recognition on the reconstruction better than on the degraded input",
                              "on the reconstruction", "the degraded input"))
    rows.append(f"| {asked}, severe | better | "
                f"accuracy {pct(a['accuracy_a'])} vs {pct(a['accuracy_b'])} (McNemar p = {a['p_value']:.2g}); "
                f"AUC {d['difference']:+.4f} ({d['ci95'][0]:+.4f} to {d['ci95'][1]:+.4f}, p = {d['p_value']:.2g}) | "
                + ("not shown" if a["p_value"] >= 0.05 else "met" if a["accuracy_a"] > a["accuracy_b"] else
                   f"missed: {b_side} did better")
                + (" on accuracy; the AUC difference's interval includes zero" if d["ci95"][0] <= 0 <= d["ci95"][1]
                   else f"; AUC lower {a_side} (whole interval below zero)" if d["ci95"][1] < 0
                   else f"; AUC higher {a_side} (whole interval above zero)")
                + " |")
    if kind(ev) == "recon":
        tail = ("a bootstrap that resamples those groups (2,000 draws, `research/interval_check.py`) gave intervals "
                "3 % narrower to 9 % wider than these (widest: severe accuracy, 5.5 points against 5.1), so the "
                "sharing changes no verdict.")
    else:
        tail = (f"for {earlier(ev)} a bootstrap that resamples those groups (2,000 draws, "
                "`research/interval_check.py`) gave intervals 3 % narrower to 9 % wider, which changed no verdict; "
                "it was not rerun for this one. The accuracy targets are read on what the product searches with, "
                + ("the joined embedding; the last row asks whether giving the companion the reconstruction beats "
                   "giving it the degraded face." if kind(ev) == "joined" else
                   "the face as found; the last row asks whether the reconstruction helps the same recogniser."))
    return ["", "## Targets (issue 3) against DevTest, with 95 % intervals", "",
            "| target | asked | measured | verdict |", "| --- | --- | --- | --- |", *rows, "",
            "The intervals treat the 1,000 pairs as independent. LFW's pairs share people (963 people in 463 "
            "groups of linked pairs); " + tail + " Inference speed (≤ 15 ms) "
            "and training time (< 1 h) are measured by `scripts/bench_inference.py` and the training record, not here"
            + (" (that script times the recogniser alone; `forensic-face bench` times the joined path, a sharp probe"
               " that does not run the companion and a blurred one that does)." if kind(ev) == "joined" else ".")]


# ------------------------------------------------------------------------------------------------ the networks


def ae_bullet(rec: dict) -> str:
    """The fusion autoencoder, from the record of the run that trained it."""
    cfg = rec["config"]
    return (f"- **Fusion autoencoder** ({rec['params']['ae']:,} parameters): grey {cfg['size']}×{cfg['size']} aligned "
            "face in, reconstruction out. Conv + ReLU + max-pool encoder, audio encoder of the 715-D audio vector "
            "(LBRP 708 + 7 prosody values), bottleneck z = ReLU(W_b[h; a] + b_b) at each position of the 8×8 map, "
            "transposed-convolution decoder with ReLU and U-Net skips, final conv + sigmoid. A learned code "
            "replaces the audio when there is none.")


def ae_origin(record: dict) -> tuple[list[dict], dict]:
    """Where a kept autoencoder comes from: the bundles it passed through (``record.autoencoder`` entries,
    outermost first, the last the bundle whose run trained it) and that run's training record. A bundle that keeps
    another's autoencoder records that bundle's whole record, which names its own source when it kept one too."""
    hops = [record["autoencoder"]]
    while "autoencoder" in hops[-1]["record"]:
        hops.append(hops[-1]["record"]["autoencoder"])
    return hops, hops[-1]["record"]


def same_student(meta: dict) -> bool:
    """Whether the bundle's student comes from the tuning run of the bundle its autoencoder was kept from: the same
    tuning record but for its stage times (a session that finds the run finished adds its own to them)."""
    def trained(tuning: dict | None) -> dict:
        return {k: v for k, v in (tuning or {}).items() if not k.startswith("timings")}

    kept = meta["record"]["autoencoder"]["record"]
    return trained(kept.get("recogniser", {}).get("tuning")) == trained(meta["record"]["recogniser"]["tuning"])


def split_bullets(split: dict, calibration_use: str) -> list[str]:
    """LFW and the test and calibration people of the identity-disjoint split."""
    return ["- LFW (13,233 grey 250×250 images, 5,749 people), University of Massachusetts, Amherst "
            "(Huang et al. 2007), read from `../shared/data/lfw`, never copied into this repository.",
            f"- Test: the {split['test_people']} people of LFW View 1 `pairsDevTest` ({split['test_pairs']} pairs); "
            "never trained on, never used to fit anything.",
            f"- Calibration: the {split['calib_people']} people of {split['calib_pairs']} pairs drawn (seed 0) from "
            "`pairsDevTrain`, " + calibration_use]


def train_command(rec: dict) -> str:
    """The `forensic-face train` command of a training record."""
    cfg = rec["config"]
    return (f".venv/bin/forensic-face train --epochs {cfg['epochs']}"
            + (f" --ae-epochs {cfg['ae_epochs']}" if cfg.get("ae_epochs") else "")
            + (f" --ae-batch {cfg['ae_batch']}" if cfg.get("ae_epochs") and cfg.get("ae_batch") else "")
            + (f" --ae-lr {cfg['ae_lr']:g}" if cfg.get("ae_epochs") and cfg.get("ae_lr", 2e-3) != 2e-3 else "")
            + (f" --rec-epochs {cfg['rec_epochs']} --rec-lr {cfg['rec_lr']:g}" if cfg.get("rec_epochs") else ""))


def training_images(rec: dict) -> tuple[int, int]:
    """The images with a teacher embedding and the teacher-labelled blends a training record trained on."""
    # runs recorded before train_blends existed counted the blends among train_images (all of them had a teacher)
    blends = rec.get("train_blends", rec["config"].get("blends", 0))
    return rec["train_images"] - (0 if "train_blends" in rec else blends), blends


def ff_cnn_sections(meta: dict) -> list[str]:
    """What it is, data and command of a bundle of the fusion autoencoder and the project's own CNN."""
    rec = meta["record"]
    cfg = rec["config"]
    images, blends = training_images(rec)
    return [
        "## What it is", ae_bullet(rec),
        f"- **Recogniser** ({rec['params']['rec']:,} parameters): residual CNN, embedding e = W f(x) + b (128-D), "
        "cosine similarity, flip-averaged at inference.",
        calibration_text(meta),
        "",
        "## Data and split (identity-disjoint)",
        *split_bullets(rec["split"], "held out of training; thresholds, match probability, softmax temperature and "
                       "the hyperparameter search are fitted/scored on them."),
        f"- Training: every other person ({rec['train_classes']} people, {images} images with a "
        f"teacher embedding), {cfg['variants']} degraded variants per image (DESIGN.md `clean`/`mild`/`severe` "
        "levels and random combinations of resolution, blur, motion, noise, JPEG, light and occlusion, each "
        "cropped with a random alignment error), plus the person's synthetic voice "
        f"({rec['voice_clips']} clips)."
        + (f" Also {blends} teacher-labelled blends of two training faces (`--blends`: face b warped "
           "onto face a's landmarks and mixed, described by the teacher; distillation only, no identity)."
           if blends else ""),
        "- Teacher: dlib's ResNet face recogniser (`face_recognition_models`) on the clean face, distilled into "
        "the recogniser, which sees the reconstruction of the degraded face and the clean face. Losses: "
        f"distillation 1 − cos(e, t) towards the {'centred' if cfg.get('teacher_centre') else 'raw'} descriptor t "
        f"(weight {cfg.get('distill_weight', 1.0):g}), ArcFace over the training people (weight "
        f"{cfg['arc_weight']:g}, margin {cfg['arc_margin']:g}), reconstruction MSE (weight {cfg['mse_weight']:g}); "
        + ("the autoencoder learns from the MSE alone (no identity loss reaches it)."
           if not cfg["id_weight"] else f"the identity loss reaches the autoencoder at {cfg['id_weight']:g}×."),
        "",
        "## Command",
        "```bash",
        train_command(rec) + " --out runs/train   # writes resources/models/",
        *([".venv/bin/python -m research.recalibrate resources/models   # the calibration refitted, weights kept"]
          if rec.get("calibration_history") else []),
        ".venv/bin/forensic-face evaluate --precision float32 --out resources/models/evaluation.json",
        ".venv/bin/python scripts/model_card.py",
        "```",
        timing(rec, cfg),
    ]


def calibration_text(meta: dict) -> str:
    """The calibration bullet: the fitted form, thresholds, and the calibration it replaced."""
    cal = meta["calibration"]
    w = cal["weights"]
    by_q = ""
    if cal.get("temperature_q") and cal.get("quality_range"):
        coef = cal["temperature_q"]
        lo, hi = cal["quality_range"]
        m = MatchCalibration.from_dict(cal)
        form = f"{coef[0]:.3f} {coef[1]:+.4f}·q" + (f" {coef[2]:+.4f}·q²" if len(coef) > 2 else "")
        mid = (lo + hi) / 2
        by_q = (f", by the probe's sharpness T = exp({form}): {float(m.search_temperature(math.expm1(lo))):.4f} for "
                f"the blurriest probes, {float(m.search_temperature(math.expm1(mid))):.4f} at q = {mid:.2f}, "
                f"{float(m.search_temperature(math.expm1(hi))):.4f} for the sharpest")
    made = meta.get("record", {}).get("calibration_info", {}).get("logistic_pairs", {})
    n = (f" Gallery softmax temperature T = {cal['temperature']:.4f}" + by_q
         + (". Fitted on" if not made.get("made") else ". The match logistic fitted on")
         + f" {cal['n_pairs']:,} held-out pair scores (calibration people, clean/mild/severe, with and "
         + ("without audio; the voice reaches the joined score through the reconstruction the companion embeds)"
            if joined(meta) else "without audio, which give the face as found the same score)" if as_found(meta)
            else "without audio)")
         + ("." if not made.get("made") else
            f": of the {made['drawn']} drawn pairs and {made['made']:,} more made among the same people (up to "
            f"{CALIB_MADE_CAP} matched pairs a person, as many mismatched; `made_pairs` in "
            "`forensic_face/training/split.py`), with which its held-out likelihood was the higher (the rule of "
            f"`research/calibration_pairs_rule.txt`); the temperature on the drawn pairs' {cal['n_searches']:,} "
            "searches."))
    sim = "the joined cosine similarity s" if joined(meta) else "the cosine similarity s"
    if not cal.get("quality_range"):
        return (f"- **Calibration**: match probability p = sigmoid(w0 + w1·s) of {sim}; 'same "
                f"person' when p ≥ 0.5, i.e. s ≥ {-w[0] / w[1]:.3f}." + n)
    lo, hi = cal["quality_range"]

    def thr(q: float) -> float:
        return -(w[0] + w[2] * q) / (w[1] + w[3] * q)

    text = (f"- **Calibration**: match probability p = sigmoid(w0 + w1·s + w2·q + w3·s·q) of {sim} "
            "and the probe's sharpness q = ln(1 + variance of the Laplacian of the aligned 64 px grey crop), q "
            f"clipped to its fitted range {lo:.2f}–{hi:.2f} (1st–99th percentile of the calibration probes); "
            f"weights {', '.join(f'{v:.3f}' for v in w)}. 'Same person' when p ≥ 0.5: from s ≥ {thr(lo):.3f} for "
            f"the blurriest probes to s ≥ {thr(hi):.3f} for the sharpest. A degraded probe's same-person "
            "similarities are lower, so one threshold for all was too lenient for sharp probes and too strict "
            "for blurred ones. Face width is not used: the evaluation levels upscale the frame back, so box "
            "width does not measure resolution (`forensic_face/models/calibration.py`)." + n)
    table = cal.get("open_set")
    if table:
        m = MatchCalibration.from_dict(cal)
        text += (" A gallery lead also needs the lead score (the best person's similarity less half the mean of "
                 "the next three) to reach the open-set threshold: the score that searches for someone not "
                 f"enrolled reach in 1 % of cases, from {table['searches']:,} calibration searches at "
                 f"{len(table.get('levels', []))} degradation levels (N = 5: {m.open_set_threshold(5):.3f}; 20: "
                 f"{m.open_set_threshold(20):.3f}; 100: {m.open_set_threshold(100):.3f}; "
                 f"{table['people'][-1]} and beyond: {m.open_set_threshold(table['people'][-1]):.3f}); see "
                 "'Gallery search' below.")
    history = meta["record"].get("calibration_history", [])
    if history and history[-1].get("previous"):
        prev = history[-1]["previous"]
        pm = MatchCalibration.from_dict(prev)
        before = (f"p = sigmoid(w0 + w1·s) with one threshold, s ≥ {pm.threshold(None):.3f}"
                  if not pm.uses_quality else
                  f"the same form fitted on {prev['n_pairs']:,} pair scores (weights "
                  + ", ".join(f"{v:.3f}" for v in prev["weights"])
                  + f"; 'same person' from s ≥ {pm.threshold(0.0):.3f} to s ≥ {pm.threshold(1e9):.3f})")
        text += (f" Refitted on {history[-1]['replaced']} with `research/recalibrate.py` (weights unchanged, so "
                 f"the version is too; results record the calibration's SHA-256). It replaced {before}"
                 + ("" if prev.get("open_set") else ", and no open-set threshold") + "; see 'Match calibration' below.")
    return text


def calib_row(r: dict, settings: str) -> str:
    """A table row of a run scored on the calibration pairs (research/score_calibration.py)."""
    return (f"| {r['run']} | {settings} | {r['train_s']:.0f} | {r['calib_auc_clean']:.3f} / "
            f"{r['calib_auc_mild']:.3f} / {r['calib_auc_severe']:.3f} | {r['calib_psnr_mild']:.2f} "
            f"({r['calib_bicubic_mild']:.2f}) | "
            f"{r['calib_psnr_severe']:.2f} ({r['calib_bicubic_severe']:.2f}) |")


def timing(rec: dict, cfg: dict) -> str:
    """How long training took, per phase (from the per-epoch history, which spans resumed sessions)."""
    hist = rec["history"]
    joint = [h for h in hist if h.get("phase", "joint") == "joint"]
    ae = [h for h in hist if h.get("phase") == "autoencoder"]
    rp = [h for h in hist if h.get("phase") == "recogniser"]
    if not ae and not rp:
        return (f"Training took {rec['train_seconds'] / 60:.1f} min for {len(hist)} epochs "
                f"({rec['steps']} steps of {cfg['batch']}) on 2 CPU cores; "
                f"learning rate {cfg['lr']}, AdamW, cosine decay.")
    js, aes, rs = (sum(h["seconds"] for h in part) for part in (joint, ae, rp))
    text = (f"Training took {(js + aes + rs) / 60:.1f} min on 2 CPU cores (sum of the epochs): {len(joint)} joint "
            f"epochs ({sum(h['steps'] for h in joint)} steps of {cfg['batch']}, learning rate {cfg['lr']}, AdamW, "
            f"cosine decay) in {js / 60:.1f} min")
    if ae:
        text += (f", then {len(ae)} epochs of the autoencoder alone ({sum(h['steps'] for h in ae)} steps of "
                 f"{cfg.get('ae_batch') or cfg['batch']}, MSE only, "
                 f"its own AdamW from {cfg['ae_lr']} with cosine decay; the recogniser untouched) in "
                 f"{aes / 60:.1f} min")
    if rp:
        text += (f", then {len(rp)} epochs of the recogniser alone on the final autoencoder's reconstructions "
                 f"({sum(h['steps'] for h in rp)} steps, distillation + ArcFace, its own AdamW from "
                 f"{cfg['rec_lr']} with cosine decay; the autoencoder frozen) in {rs / 60:.1f} min")
    return text + "."


def round7(hp: dict) -> list[str]:
    """The seventh round: does the autoencoder overfit, does an embedding ensemble help, and the autoencoder
    phase's batch size (2 CPU cores)."""
    lines = ["", "Seventh round, on 2 CPU cores (`research/model_checks.py`, `--ae-batch`): the shipped model's fit "
             "on training against held-out faces, an ensemble of embeddings, and the batch size of the "
             "autoencoder phase.", "",
             "Reconstruction of 600 training images and of the 600 calibration probes, each through the evaluation's "
             "probe pipeline (`research/model_checks.py fit`):", "",
             "| people | level | PSNR | bicubic | gain |", "| --- | --- | --- | --- | --- |"]
    for r in hp.get("fit_check", []):
        lines.append(f"| {r['people']} | {r['level']} | {r['psnr']:.2f} | {r['bicubic']:.2f} | "
                     f"+{r['psnr'] - r['bicubic']:.2f} dB |")
    if hp.get("ensemble_check"):
        weights = sorted({r["w_reconstruction"] for r in hp["ensemble_check"]}, reverse=True)
        lines += ["", "Embedding the reconstruction and the degraded input together (`research/model_checks.py "
                  "ensemble`): calibration ROC-AUC / best-threshold accuracy (threshold chosen on the same pairs, an "
                  "upper bound) of the normalised mean w·e(reconstruction) + (1 − w)·e(degraded):", "",
                  "| level | " + " | ".join(f"w = {w:g}" for w in weights) + " |",
                  "| --- |" + " --- |" * len(weights)]
        for level in EVAL_LEVELS:
            cells = {r["w_reconstruction"]: r for r in hp["ensemble_check"] if r["level"] == level}
            lines.append(f"| {level} | " + " | ".join(
                f"{cells[w]['auc']:.4f} / {100 * cells[w]['best_threshold_accuracy']:.1f} %" for w in weights) + " |")
    if hp.get("ae_batch_trials"):
        lines += ["", "The autoencoder alone from scratch, 24 epochs each, batch 96 against batch 32 (1 thread each, "
                  "run side by side; calibration probes):", "",
                  "| trial | settings | steps | train s | final training MSE | PSNR mild (bicubic) | "
                  "PSNR severe (bicubic) |", "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in hp["ae_batch_trials"]:
            lines.append(f"| {r['run']} | {r['settings']} | {r['steps']:,} | {r['train_s']:.0f} | {r['mse']:.5f} | "
                         f"{r['calib_psnr_mild']:.2f} ({r['calib_bicubic_mild']:.2f}) | "
                         f"{r['calib_psnr_severe']:.2f} ({r['calib_bicubic_severe']:.2f}) |")
    return lines + notes(hp, "notes_round7")


def clips(folder: Path, meta: dict) -> list[str]:
    """The clips section: the pooled templates' calibration and their evaluation (evaluation_clips.json)."""
    path = folder / "evaluation_clips.json"
    if not path.is_file() or not meta.get("clip_calibration"):
        return []
    ev = load_json(path)
    what = f"`forensic-face evaluate --clips --refit --precision float32 --models {folder} --out {path}`"
    check_made_with(path, ev, meta, what)
    if ev.get("clip_calibration_sha256") != calibration_digest(meta["clip_calibration"]):
        raise SystemExit(f"{path} was made with another clip calibration than this bundle's: run {what} first")
    fitted = meta["clip_calibration"]["fitted_on"]
    lines = ["", "## Clips: templates pooled from a track's frames", "",
             "Calibration of pooled templates (`clip_calibration` in `models.json`, fitted by `forensic-face evaluate "
             f"--clips`): on {fitted['pairs']} calibration pairs of {fitted['calib_people']} people, each probe a "
             "synthetic clip (16 frames moved a little and degraded independently), pooled over "
             + "; ".join(fitted["conditions"]) + "; the single frame keeps its own calibration."
             + share_choice(meta["clip_calibration"]), "",
             f"Evaluation on {ev['pairs']} DevTest pairs and a gallery of {ev['gallery_people']} ({ev['searches']} "
             "searches), the first N frames of each clip through the clip path (YuNet, the centre box where it finds "
             "none, the tracker's weights" + ("; each template pools the frames' joined embeddings, the face as "
                                              "found joined to the companion's of its reconstruction" if joined(meta)
                                              else "; each template pools the embeddings of the frames' faces as "
                                              "found" if as_found(meta) else "") + "):", "",
             "| level | frames | accuracy | ROC-AUC | rank-1 | reconstruction: pooled / one frame / frame average |",
             "| --- | --- | --- | --- | --- | --- |"]
    for level, lev in ev["levels"].items():
        for n, row in lev["by_frames"].items():
            rec = row["reconstruction"]
            lines.append(f"| {level} | {n} | {with_ci(row, 'accuracy')} | {auc(row['roc_auc'])} | "
                         f"{pct(row['rank_1']['rate'])} | {rec['psnr_db']:.2f} / {rec['one_frame_psnr_db']:.2f} / "
                         f"{rec['frame_average_psnr_db']:.2f} dB |")
    lines += ["", "YuNet found the face on " + " / ".join(
        f"{pct(lev['frames_face_found'])} ({level})" for level, lev in ev["levels"].items()) + " of the frames."]
    return lines


def share_choice(clip_cal: dict) -> str:
    """How a joined bundle's clip calibration chose the scale on each pooled frame's companion share."""
    choice = clip_cal["fitted_on"].get("companion_share_choice")
    if not choice:
        return ""
    scales = choice["scales"]
    figures = "; ".join(f"×{float(k):g}: mean rank-1 {pct(v['mean_rank_1'])}, AUC "
                        + " / ".join(f"{a:.4f}" for a in v["auc"]) for k, v in scales.items())
    from forensic_face.training.clip_eval import SHARE_AUC_TOLERANCE, keeps_auc

    out = [f"×{float(k):g}" for k, v in scales.items() if not keeps_auc(v["auc"], scales["1.0"]["auc"])]
    return (f" Before a template is pooled, each frame's share of the second recogniser is multiplied by "
            f"**{clip_cal.get('companion_share', 1.0):g}**, chosen on the same calibration clips by a rule fixed "
            f"before it was run ({choice['rule']}; conditions in the order above): {figures}"
            + (f" ({' and '.join(out)} fall more than {SHARE_AUC_TOLERANCE} below ×1 in AUC)" if out else "")
            + ". When the rule was written, four of these scales had been measured on the same calibration clips "
            "(1, 0.5, 0.25 and 0, mild and severe: `research/companion/clip_share.json`); DevTest clips at any scale "
            "but 1 had not. A single frame keeps its own share.")


#: tune-sface's options for the fields of its DistilConfig (the others have none).
TUNE_OPTIONS = {"variants": "--variants", "frozen_blocks": "--frozen-blocks", "epochs": "--epochs",
                "batch": "--batch", "lr": "--lr", "margin_weight": "--margin-weight", "seed": "--seed",
                "fresh": "--fresh", "bfloat16": "--bfloat16", "teacher_share": "--teacher-share"}


def variants_text(cfg: dict) -> str:
    """How the tuning drew its degraded faces: fixed copies made once, or new ones every epoch."""
    if cfg.get("fresh"):
        return (f"Every epoch each image is drawn once, as its clean crop (one draw in {cfg['variants'] + 1}) or a "
                "degraded variant made anew for that epoch, so no degraded copy is seen twice; the frozen blocks run "
                "on each batch as it is drawn" + (", they and the tuned blocks' products in bfloat16 (weights, "
                                                  "gradients and Adam in float32)" if cfg.get("bfloat16") else ""))
    return f"{cfg['variants']} degraded variants per image beside its clean crop"


#: The rule that chose each shipped bundle's ``teacher_share`` (written before its candidates were scored), by
#: the bundle's version (a bundle that joined a sharp part to another keeps that one's student: its version, as
#: ``record.sharp.joined_to`` names it): a bundle moved back by a share whose rule is not named here gets no card.
SHARE_RULES = {"ff-2026-12-06-c2ee3bb2": "research/interpolated/decision_rule_long.txt"}


def moved_back_text(cfg: dict, version: str) -> str:
    """The tuned weights moved back towards SFace's (``teacher_share``), when they were, and the rule that chose
    the share (:data:`SHARE_RULES`)."""
    a = cfg.get("teacher_share", 0.0)
    if not a:
        return ""
    rule = SHARE_RULES.get(version)
    if rule is None or not (Path(__file__).resolve().parents[1] / rule).is_file():
        raise SystemExit(f"bundle {version} was moved {a:g} back towards SFace, and scripts/model_card.py's "
                         "SHARE_RULES names no rule file for it: add the rule that chose the share")
    return (f" Then every tuned tensor was moved **{a:g}** of the way back to SFace's: {a:g} × SFace's + {1 - a:g} × "
            "the tuned values (weight-space ensembling, WiSE-FT: Wortsman et al., 'Robust fine-tuning of zero-shot "
            "models'), which keeps more of the teacher's sharp-face behaviour; the share was chosen on the "
            f"calibration people by a rule written before any such student was scored (`{rule}`, results beside "
            "it).")


def sface_sizes(frozen_blocks: int) -> tuple[int, int, int, int]:
    """SFace's parameters: in all, those the student tunes, those of the embedding layer, and its blocks."""
    from forensic_face.models.sface import BLOCKS, SFaceNet
    from forensic_face.training.distil import student_from

    net = SFaceNet()
    tuned = sum(p.numel() for p in student_from(net, frozen_blocks).parameters() if p.requires_grad)
    return sum(p.numel() for p in net.parameters()), tuned, net.fc.weight.numel() + net.fc.bias.numel(), len(BLOCKS)


def sface_what(meta: dict) -> list[str]:
    """What it is: the autoencoder kept from another bundle and the SFace student of the face as found."""
    rec = meta["record"]
    tun = rec["recogniser"]["tuning"]
    cfg, size, dim = tun["config"], meta["rec"]["size"], meta["rec"]["embed_dim"]
    k = cfg["frozen_blocks"]
    total, tuned, fc, blocks = sface_sizes(k)
    hops, ae_rec = ae_origin(rec)
    return [
        "## What it is",
        ae_bullet(ae_rec) + f" Kept unchanged from version `{hops[-1]['from_bundle']}` (weights SHA-256 "
        f"`{hops[-1]['weights_sha256'][:16]}…`)" + "".join(f", through `{h['from_bundle']}`" for h in hops[-2::-1])
        + "; that run's record is in `models.json` under `record" + ".autoencoder.record" * len(hops) + "`.",
        f"- **Recogniser** ({total:,} parameters): a student of SFace (Zhong et al., 'SFace: Sigmoid-Constrained "
        f"Hypersphere Loss for Robust Face Recognition'), from {rec['recogniser']['base']}. A MobileFaceNet of "
        f"{blocks} depthwise-separable blocks taking a {size}×{size} face aligned on the five-point ArcFace template "
        f"(the grey face in each of its three channels), giving a {dim}-D embedding; cosine similarity. As "
        "published, SFace reaches 99.40 % on LFW, trained by its authors on face data derived from MS-Celeb-1M "
        "(as published; this project has not seen that data).",
        "- **What this project changed** (`forensic-face tune-sface`, `forensic_face/training/distil.py`): the stem "
        f"and the first {k} of the {blocks} blocks keep SFace's weights; blocks {k + 1}–{blocks} and the feature "
        f"batch norm were tuned ({tuned:,} values); the embedding layer ({fc:,} values) and its batch norm stay "
        "SFace's, and every batch norm keeps its published statistics. Loss: 1 − cos(student(degraded face), "
        "teacher(clean face)), the teacher being SFace as published, frozen, on the clean face and its mirror "
        f"image, plus {cfg['margin_weight']:g} × a cosine-margin softmax (margin {cfg['margin']:g}, scale "
        f"{cfg['scale']:g}) over the {tun['people']:,} training people, whose class centres are the teacher's "
        f"mean clean embeddings (fixed). {variants_text(cfg)}, "
        f"{cfg['epochs']} epochs of batches of {cfg['batch']}, Adam from learning rate {cfg['lr']:g} with cosine "
        f"decay to 0 (weight decay {cfg['weight_decay']:g}), seed {cfg['seed']}."
        + moved_back_text(cfg, (meta["record"].get("sharp") or {}).get("joined_to", meta["version"])),
        *(companion_what(meta) if joined(meta) else [
            f"- **What it embeds**: the face as found, the probe in its own {size} px five-point crop, flip-averaged "
            "(the face and its mirror image); not the reconstruction. The reconstruction is shown beside the probe "
            "and never searched with (`recogniser.embeds` = `input` in `models.json`)."]),
        calibration_text(meta),
        "",
        "## Licence",
        "- The recogniser's weights are derived from SFace (OpenCV Zoo, `face_recognition_sface_2021dec.onnx`), "
        "Apache License 2.0: `LICENSE-sface.txt` and `NOTICE` in `resources/models` (the NOTICE names the source "
        "and what was changed). The autoencoder is this project's own"
        + (", and so is the companion (the project's CNN)." if joined(meta) else ".")
        + (" The sharp part's weights are SFace's as published (the tensors that differ from the student's, in "
           "float16), under the same licence and NOTICE." if (meta.get("companion") or {}).get("sharp") else ""),
    ]


def companion_from(meta: dict) -> dict:
    """Where the companion came from (``record.companion``: its bundle's version, weights digest, source and
    training record)."""
    came = meta["record"].get("companion")
    if not isinstance(came, dict) or not came.get("record"):
        raise SystemExit("models.json's record.companion does not name the companion's bundle and its training "
                         "record: export the bundle again (`forensic-face tune-sface --export --companion PREV`)")
    return came


def trained_together(meta: dict) -> bool:
    """Whether the bundle's companion was trained in the run that trained its autoencoder."""
    return joined(meta) and companion_from(meta)["from_bundle"] == ae_origin(meta["record"])[0][-1]["from_bundle"]


def companion_what(meta: dict) -> list[str]:
    """The companion bullet (what it is, how it was trained, how it is joined) and what the bundle embeds."""
    comp, came = meta["companion"], companion_from(meta)
    rec = came["record"]
    cfg = rec["config"]
    crop = f"{comp['config']['size']} px {RECOGNISERS[comp['architecture']][0].alignment} crop"
    flip = "flip-averaged (the face and its mirror image)"
    minutes = sum(h["seconds"] for h in rec["history"]) / 60
    same_run = trained_together(meta)
    return [
        f"- **Companion** ({rec['params']['rec']:,} parameters): the recogniser of version `{came['from_bundle']}` "
        f"(weights SHA-256 `{came['weights_sha256'][:16]}…`), the project's own residual CNN ({comp['architecture']}, "
        f"{comp['config']['embed_dim']}-D embedding, cosine similarity), trained "
        + ("with this autoencoder in that bundle's run" if same_run else "in that bundle's run")
        + f" (`{train_command(rec).removeprefix('.venv/bin/')}`, {minutes:.1f} min on 2 CPU cores; see 'Command'): "
        "distilled from dlib's ResNet on the clean face (1 − cos towards its "
        f"{'centred' if cfg.get('teacher_centre') else 'raw'} descriptor) with ArcFace over the "
        f"{rec['train_classes']:,} training people, seeing the reconstructions of degraded training faces and the "
        "clean faces. Its record is in `models.json` under `record.companion.record`."
        f" It embeds the {comp['embeds']} of the probe (a gallery face as it is) in the autoencoder's {crop}, "
        + (flip if comp.get("mirror", True) else "once (no mirror image)") + ".",
        joined_text(comp) + companion_weight_text(meta),
        *([sharp_text(meta)] if comp.get("sharp") else []),
        f"- **What it embeds**: the recogniser, the face as found (the probe in its own {meta['rec']['size']} px "
        "five-point crop), " + (flip if meta["recogniser"].get("mirror", True) else "once (no mirror image)")
        + f"; the companion, the probe's reconstruction, with the voice where there is one, in the {crop}. Both "
        "are searched with, joined: the reconstruction is shown beside the untouched probe and searched with through "
        "the companion (`recogniser.embeds` = `input`, `companion.embeds` = `reconstruction` in `models.json`).",
    ]


def joined_text(comp: dict) -> str:
    """How the two similarities are joined: with one weight, or with a probe's share read from its quality."""
    w = comp["weight"]
    if "probe_weight" not in comp:
        return ("- **Joined**: the searched similarity is (1 − w) × the recogniser's cosine + w × the companion's "
                "(the searched embedding holds the two unit embeddings side by side, scaled by √(1 − w) and √w), with "
                f"w = {w:g}. ")
    (a, b), (lo, hi) = comp["probe_weight"], comp["quality_range"]
    if b != 0:
        raise SystemExit(f"models.json's companion.probe_weight {comp['probe_weight']} does not end at 0 at the sharp "
                         "end: teach scripts/model_card.py its form")
    return ("- **Joined**: a gallery face's embedding holds the two unit embeddings side by side, scaled by √(1 − w) "
            f"and √w, w = {w:g}. A probe's share l depends on its quality q = log(1 + variance of the Laplacian of its "
            f"autoencoder crop): l = {a:g} for q ≤ {lo:.2f}, falling linearly to 0 at q = {hi:.2f} and above, so a "
            "probe as sharp as the clean calibration faces is searched by the recogniser alone. The probe's vector "
            "is scaled so that its similarity to a gallery face is the weighted mean (√((1 − l)(1 − w)) × the "
            "recogniser's cosine + √(l w) × the companion's) / (√((1 − l)(1 − w)) + √(l w)): one scale at every "
            "quality, which the one open-set threshold of a gallery size needs. ")


def sharp_text(meta: dict) -> str:
    """The sharp part (``companion.sharp``: SFace as published for sharp probes) and how its share was chosen
    (``record.sharp.share_choice``)."""
    sh, came = meta["companion"]["sharp"], meta["record"].get("sharp") or {}
    choice = came.get("share_choice") or {}
    (lo, hi), top = sh["quality_range"], sh["share"]
    text = (f"- **Sharp probes**: SFace as published (OpenCV Zoo's `face_recognition_sface_2021dec.onnx`, SHA-256 "
            f"`{came.get('onnx_sha256', '?')[:16]}…`, weights unchanged but stored in float16) joins the recogniser "
            "side for sharper probes, since the tuned student lost some of its clean-face accuracy (see the "
            "verification table: SFace as published beside the product). It embeds the face as found in the "
            "recogniser's 112 px crop, " + ("flip-averaged" if sh.get("mirror", True) else "once") + "; a gallery face "
            f"holds its embedding too (3 × 128 values: the student's, SFace's and the companion's, at "
            f"{1 - meta['companion']['weight']:g} × (1 − {sh['weight']:g}), {1 - meta['companion']['weight']:g} × "
            f"{sh['weight']:g} and {meta['companion']['weight']:g} of the squared length). A probe's similarity is "
            "(1 − L)[(1 − t) × the student's cosine + t × SFace's] + L × the companion's, L the companion's weight in "
            f"the mean as above and t = {top:g} × clip((q − {lo:.2f}) / {hi - lo:.2f}, 0, 1): none below q = "
            f"{lo:.2f} (sharpness {math.expm1(lo):.0f}), {top:g} from the companion's sharp end q = {hi:.2f} up. The "
            "stem, the first six blocks and the embedding layer are the student's (as published, to float16 "
            "rounding), so `models.pt` stores only SFace's tensors that differ (`sharp.*`) and the engine runs the "
            "shared blocks once for a face both embed. Each search records the weights it used (`paths`), and the "
            "report prints them.")
    if sh.get("cross"):
        b = sh["cross"]
        text += (f" **Cross share** b = {b:g}: the student's cosine in that mean is (1 − b) × the student's probe "
                 "against the student's gallery embedding + b × the student's probe against SFace's gallery "
                 "embedding, since the student was tuned to land on SFace's embedding of the clean face; the probe's "
                 "query alone carries it (its student part moved b into its SFace part): a gallery face's embedding is "
                 "the same numbers as under the bundle without it. Chosen on "
                 "the calibration people by the rule `research/asymmetric/decision_rule.txt`, written before it was "
                 "scored (b = 0.5 of 0.25-1: the higher severe rank-1; `research/asymmetric/result.json`), then "
                 "simulated within this join and on DevTest before it was built (`research/asymmetric/join.json`: "
                 "mild rank-1 71.8 → 73.8 %, McNemar p = 0.035, nothing significantly lower).")
    if not choice.get("tried"):
        return text + (f" Its share and ramp were given on the command line (`--share {top:g} --ramp {hi - lo:g}`)."
                       if choice.get("given") else "")
    tried = choice["tried"]
    best = sorted((k for k in tried if tried[k]["eligible"]), key=lambda k: -tried[k]["mean_rank_1"])[:4]
    base = tried.get("T 0 R 1", {})
    return text + (
        f" Chosen on the calibration people, never on DevTest, by `forensic-face join-sharp` with the rule fixed in "
        f"`research/teacher_route.py` before DevTest was scored: for T in 0.25-1 and R in 0.5-2, the pair ROC-AUC and "
        f"the rank-1 of {choice['searches']} searches among {choice['people']} people per level "
        f"({', '.join(choice['levels'])}); candidates more than 0.002 below T = 0's AUC at some level are out, the "
        "highest mean rank-1 wins. Without the sharp part (T = 0): rank-1 "
        + " / ".join(f"{base[lv]['rank_1'] * 100:.1f} %" for lv in choice["levels"] if lv in base)
        + "; the best (T, R: rank-1 per level): "
        + "; ".join(f"{k.removeprefix('T ').replace(' R ', ', ')}: "
                    + " / ".join(f"{tried[k][lv]['rank_1'] * 100:.1f} %" for lv in choice["levels"]) for k in best)
        + f" (all {len(tried)} in `models.json` under `record.sharp.share_choice`); chosen: T "
        f"{choice['chosen']['T']:g}, R {choice['chosen']['R']:g}.")


def companion_weight_text(meta: dict) -> str:
    """How the companion's weight was chosen (``record.companion_weight``), with the table it was chosen from."""
    chosen = meta["record"].get("companion_weight")
    if not chosen:
        return "It was given on the command line (`--companion-weight`), not chosen by this export."
    if not {"tried", "mean_log_likelihood", "chosen", "pairs", "levels", "sharp_end"} <= set(chosen):
        raise SystemExit(f"models.json's record.companion_weight ({', '.join(sorted(chosen))}) is not the table of "
                         "(share, ramp) rows this script describes: teach scripts/model_card.py its form")
    tried, ll = [tuple(t) for t in chosen["tried"]], chosen["mean_log_likelihood"]
    shares, ramps = sorted({t[0] for t in tried}), sorted({t[1] for t in tried})
    best = sorted(range(len(tried)), key=lambda i: -ll[i])[:5]
    a, ramp = chosen["chosen"]
    return (f"Chosen on the calibration people, never on DevTest, by `tune-sface --export --companion`: the sharp end "
            f"({chosen['sharp_end']:.2f}) is the 5th percentile of the clean calibration probes' q; of the shares "
            f"{', '.join(f'{v:g}' for v in shares)} reached {', '.join(f'{v:g}' for v in ramps)} below it, the pair "
            f"whose similarity gives the {chosen['pairs']} calibration pairs at {', '.join(chosen['levels'])} "
            f"({chosen['pairs'] * len(chosen['levels']):,} scores, every level pooled, no audio) the highest mean "
            "log-likelihood under the match logistic (of the similarity and the probe's sharpness) fitted to that "
            "similarity. The best five (share, ramp: mean log-likelihood): "
            + "; ".join(f"{tried[i][0]:g}, {tried[i][1]:g}: {ll[i]:.4f}" for i in best)
            + f" (all {len(tried)} in `models.json` under `record.companion_weight`); chosen: {a:g}, {ramp:g}.")


def sface_data(meta: dict) -> list[str]:
    """The data each network was trained on, and what is known of SFace's own."""
    rec = meta["record"]
    (hops, ae), tun = ae_origin(rec), rec["recogniser"]["tuning"]
    cfg, ae_cfg, split = tun["config"], ae["config"], ae["split"]
    same = tun["people"] == split["train_people"] and cfg["seed"] == ae_cfg.get("seed")
    levels = ", ".join(f"{n:,} {name}" for name, n in tun["levels"].items())
    comp = trained_together(meta)
    return [
        "", "## Data and split (identity-disjoint)",
        *split_bullets(split, "held out of all training (the autoencoder's"
                       + (", the recogniser's and the companion's" if comp else " and the recogniser's")
                       + "); the match probability, thresholds"
                       + (", softmax temperature and the companion's weight are" if joined(meta) else
                          " and softmax temperature are") + " fitted on them."),
        f"- Recogniser: the training people ({tun['people']:,} people, {tun['images']:,} images"
        + (f"; the autoencoder's split, seed {cfg['seed']})" if same else f"; the split of seed {cfg['seed']})")
        + (f": each image once an epoch, as its clean crop or a degraded variant made anew ({levels} over the "
           f"{sum(tun['levels'].values()):,} draws; 'clean' counts the clean crop and variants of the clean level), "
           if cfg.get("fresh") else f": each image's clean crop and {cfg['variants']} degraded variants ({levels} "
           f"among the {sum(tun['levels'].values()):,} variants), ")
        + "made as the autoencoder's training data is (DESIGN.md "
        "`clean`/`mild`/`severe` levels and random combinations of resolution, blur, motion, noise, JPEG, light and "
        "occlusion; the whole frame degraded, then cropped with the five-point alignment perturbed as a detector's "
        "landmarks on a degraded frame would be). No voices.",
        f"- Autoencoder (version `{hops[-1]['from_bundle']}`): the split's training people "
        f"({ae['train_classes']} people, {training_images(ae)[0]} images), {ae_cfg['variants']} degraded variants "
        f"per image and the person's synthetic voice ({ae['voice_clips']} clips); reconstruction MSE, "
        + ("no identity loss reaching it" if not ae_cfg["id_weight"] else
           f"an identity loss at {ae_cfg['id_weight']:g}×")
        + "; trained with the recogniser of its bundle" + (", this bundle's companion" if comp else "")
        + " (the project's own CNN, distilled from dlib's).",
        "- SFace's own training data: faces derived from MS-Celeb-1M, as published by SFace's authors; not seen "
        "here. LFW's people are public figures, and whether DevTest's people are among SFace's training identities "
        "is not known here, so the figures below may flatter SFace's part.",
    ]


def tune_command(tun: dict, extra: str = "") -> str:
    """The tune-sface command of a tuning record (options where the record differs from the defaults), ``extra``
    options after ``--export``."""
    from forensic_face.training.distil import DistilConfig

    default, cfg = DistilConfig().as_dict(), tun["config"]
    def option(k: str, v) -> str:
        if isinstance(v, bool):
            return f" {TUNE_OPTIONS[k]}" if v else ""
        return f" {TUNE_OPTIONS[k]} {v:g}" if isinstance(v, float) else f" {TUNE_OPTIONS[k]} {v}"

    options = "".join(option(k, v) for k, v in cfg.items() if k in TUNE_OPTIONS and v != default.get(k))
    unset = [f"{k} {v}" for k, v in cfg.items() if k not in TUNE_OPTIONS and v != default.get(k)]
    return (f".venv/bin/forensic-face tune-sface --out runs/sface{options} --threads {tun['threads']} "
            f"--export resources/models{extra}" + (f"   # also {', '.join(unset)} (no option)" if unset else ""))


def tuning_timing(tun: dict) -> str:
    """How long the tuning took: the epochs' own times, and the stage times of the session that wrote the record."""
    spent = sum(h["seconds"] for h in tun["history"])
    t = tun["timings"]
    threads = f"{tun['threads']} torch thread{'s' if tun['threads'] != 1 else ''}"
    text = (f"Tuning took {spent / 60:.1f} min for {len(tun['history'])} epochs (sum of the epochs; {threads} in the "
            "session that wrote the record)")
    if t["tune_s"] < 0.5 * spent:  # that session found the run finished in its work folder
        return text + (f". That session resumed a finished run from its work folder, so its stage times (crops "
                       f"{t['crops_s']:g} s, frozen blocks' features {t['frozen_s']:g} s, tuning {t['tune_s']:g} s) "
                       "are of reading the cache; how long the crops and the frozen features took to make is not "
                       "recorded.")
    if tun["config"].get("fresh"):
        return text + (f"; reading and aligning the images {t['crops_s'] / 60:.1f} min, the teacher's targets "
                       f"{t['frozen_s'] / 60:.1f} min, tuning (the variants drawn and the frozen blocks run as it "
                       f"goes) {t['tune_s'] / 60:.1f} min.")
    return text + (f"; crops {t['crops_s'] / 60:.1f} min, frozen blocks' features {t['frozen_s'] / 60:.1f} min, "
                   f"tuning {t['tune_s'] / 60:.1f} min.")


def sface_command(meta: dict) -> list[str]:
    """The commands that made the bundle and its evaluation, the tuning's time and history, and the command of
    the run the autoencoder comes from."""
    rec = meta["record"]
    tun, (hops, ae_rec) = rec["recogniser"]["tuning"], ae_origin(rec)
    lines = ["", "## Command", "```bash", *(fetch_companion(meta) if joined(meta) else []),
             tune_command(tun, " --companion /tmp/prev/resources/models" if joined(meta) else ""),
             *([".venv/bin/forensic-face join-sharp" + (f" --cross {cross:g}" if (cross := meta["companion"]["sharp"]
                                                                                  .get("cross")) else "")]
               if (meta.get("companion") or {}).get("sharp") else []),
             ".venv/bin/forensic-face evaluate --precision float32 --out resources/models/evaluation.json",
             *([".venv/bin/forensic-face evaluate --clips --refit --precision float32 --out "
               "resources/models/evaluation_clips.json"]
               if meta.get("clip_calibration") else []),
             ".venv/bin/python scripts/model_card.py", "```",
             tuning_timing(tun) + " `--export` packs the student with the installed bundle's autoencoder (`--base` "
             "names another) and fits the calibration on the calibration people"
             + ("; `--companion` joins the recogniser of the bundle in that folder to the student, its weight chosen "
                "on the calibration people first (see 'Joined' above)." if joined(meta) else ".")
             + (" `join-sharp` then joins SFace as published for sharp probes (read from the shared weights folder, "
                "checked against its SHA-256), chooses its share on the calibration people and fits the calibration "
                "again (see 'Sharp probes' above)." if (meta.get("companion") or {}).get("sharp") else "")
             + (f" The tuning run is the one version `{hops[0]['from_bundle']}` took its student from (the same "
                "settings and per-epoch history), found finished in its work folder; the stage times add up the "
                "sessions that worked on it." if joined(meta) and same_student(meta) else ""),
             "",
             "Per epoch, on the training images: the mean cosine of the student's embedding of a variant to the "
             "teacher's of the clean face, by the variant's level, and the margin loss:", "",
             "| epoch | seconds | cos clean | cos mild | cos severe | cos random | margin loss |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for h in tun["history"]:
        cells = [f"{h[k]:.4f}" if k in h else "—" for k in ("cos_clean", "cos_mild", "cos_severe", "cos_random",
                                                             "margin_loss")]
        lines.append(f"| {h['epoch']} | {h['seconds']:.0f} | " + " | ".join(cells) + " |")
    came, together = companion_from(meta) if joined(meta) else None, trained_together(meta)
    lines += ["", f"The autoencoder {'and the companion come' if together else 'comes'} from version "
              f"`{hops[-1]['from_bundle']}`, made {'together' if together else 'with its recogniser'} by:",
              "```bash", train_command(ae_rec) + " --out runs/train", "```", timing(ae_rec, ae_rec["config"])]
    if came is not None and not together:
        lines += ["", f"The companion comes from version `{came['from_bundle']}`, made by:", "```bash",
                  train_command(came["record"]) + " --out runs/train", "```",
                  timing(came["record"], came["record"]["config"])]
    return lines


#: The commits of this repository that hold a bundle a later one was made from (for the card's commands).
BUNDLE_COMMITS = {"ff-2026-11-26-19f697db": "292be66"}


def fetch_companion(meta: dict) -> list[str]:
    """The command lines that put the companion's bundle in /tmp/prev/resources/models."""
    version = companion_from(meta)["from_bundle"]
    commit = BUNDLE_COMMITS.get(version)
    if commit is None:
        return [f"# /tmp/prev/resources/models: a copy of bundle {version}, whose recogniser is the companion"]
    return [f"mkdir -p /tmp/prev && git archive {commit} resources/models | tar -x -C /tmp/prev   # bundle {version}, "
            "whose recogniser is the companion"]


# ------------------------------------------------------------------------------------------------ limits


def limits(ev: dict) -> list[str]:
    """Known limits of a bundle of the project's own CNN of the reconstruction."""
    lv_clean = ev["levels"]["clean"]
    return [
        "",
        "## Known limits",
        "- Audio results use **synthetic voices** (espeak-ng, one seeded voice per LFW person): they carry "
        "identity by construction, so gains 'with audio' say nothing about real recordings. Always read them "
        "beside the no-audio figures.",
        "- Trained and tested on LFW only: mostly frontal, well-lit press photographs of public figures, "
        "re-encoded in grey; CCTV degradation is simulated. Real CCTV (colour casts, interlacing, extreme "
        "angles, night IR) is outside what was measured.",
        "- Grey input only; faces below about 15 px carry little identity and the match probability says so.",
        "- On clean faces this recogniser is less accurate than the dlib reference measured beside it "
        f"({pct(lv_clean['recon_no_audio']['accuracy'])} against "
        f"{pct(lv_clean['dlib_reference']['at_0.6']['accuracy'])}); its advantage is on degraded probes. The 64 px "
        "grey crop is not the cause (dlib at that resolution: 98.3 %); the learning curve of the sixth round puts "
        "it in the 7,685 training faces. At a "
        "false-match rate of 1 % it accepts only "
        + rates(ev['levels'][k]['recon_no_audio']['tar_at_far_1e-2'] for k in ev["levels"])
        + f" of same-person pairs ({' / '.join(ev['levels'])}): a strict threshold misses most true matches of "
        "degraded faces.",
        *(["- Gallery search shortlists; it rarely names: in a DevTest gallery of "
           f"{ev['identification']['gallery_people']} people the right person was first for "
           + rates(v["rank_1"]["rate"] for v in ev["identification"]["levels"].values())
           + " of probes (clean / mild / severe), but a confident lead, which must pass the open-set threshold, "
           "came for "
           + rates(v["enrolled_found_confidently"]["rate"] for v in ev["identification"]["levels"].values())
           + " of them, and searches for people not enrolled ended with a false lead in "
           + rates(1 - v["not_enrolled_no_confident_match"]["rate"] for v in ev["identification"]["levels"].values())
           + " of cases, above the 1 % the threshold is set for (see 'Gallery search')."]
          if ev.get("identification") else []),
        "- The match probability's sharpness term reads any sharp crop as a good one: occluded faces (scarf, mask) "
        "and noisy ones get the strict threshold of a clean face, so their true matches are more often missed "
        "(see 'Match calibration').",
        "- A reconstruction is a generated image. It is shown beside the untouched input, never instead of it, "
        "and a candidate is an investigative lead, not an identification.",
    ]


def sface_limits(ev: dict) -> list[str]:
    """Known limits of a bundle whose recogniser embeds the face as found (every figure the product's)."""
    key = f"{product(ev)}_no_audio"
    lv = ev["levels"]
    ours, dlib = lv["clean"][key]["accuracy"], lv["clean"]["dlib_reference"]["at_0.6"]["accuracy"]
    paired = lv["clean"].get("comparisons", {}).get("ours_vs_dlib", {}).get("accuracy")
    tar = {level: lev[key]["tar_at_far_1e-2"] for level, lev in lv.items()}
    missed = [level for level, t in tar.items() if t < 0.5]
    comp = ev["engine"].get("companion")
    lines = [
        "", "## Known limits",
        "- Audio results use **synthetic voices** (espeak-ng, one seeded voice per LFW person): they carry identity "
        "by construction, so gains 'with audio' say nothing about real recordings. "
        + ("Always read them beside the no-audio figures." if voice_reaches_product(ev) else
           "The voice reaches only the reconstruction; the product searches with the face as found.")
        + (" Here the voice reaches the searched embedding, through the reconstruction the companion embeds: a "
           "recording moves a search, and how a real one moves it was not measured." if comp else ""),
        "- Tuned and tested on LFW only: mostly frontal, well-lit press photographs of public figures, re-encoded "
        "in grey; CCTV degradation is simulated. Real CCTV (colour casts, interlacing, extreme angles, night IR) is "
        "outside what was measured. SFace's own training data (MS-Celeb-1M-derived, as published) was not seen "
        "here, and LFW's public figures may be among its identities.",
        "- Grey input only (the grey face in each of SFace's three channels); faces below about 15 px carry little "
        "identity and the match probability says so. A colour frame is made grey whole (BT.601 luma, the Y a JPEG "
        "stores) before any crop is taken, so its analysis is its grey form's; no colour face set was evaluated, "
        "and a frame degraded in colour is not one degraded in grey (`research/colour_input.json`: two colour "
        "portraits, the clips' detector found more faces in colour).",
        f"- On clean faces {'the joined search' if comp else 'this recogniser'} is "
        f"{'less' if ours < dlib else 'more' if ours > dlib else 'as'} accurate "
        f"{'as' if ours == dlib else 'than'} the dlib reference measured beside it ({pct(ours)} against "
        f"{pct(dlib)}" + (f"; McNemar p = {paired['p_value']:.2g}" if paired else "")
        + (", the product with the synthetic voice against dlib" if paired and comp else "")
        + ("; not a significant difference" if paired and paired["p_value"] >= 0.05 else "")
        + f"). At a false-match rate of 1 % it accepts {rates(tar.values())} of same-person pairs ({' / '.join(lv)})"
        + (f": a strict threshold misses most true matches at {' and '.join(missed)}." if missed else "."),
    ]
    ident = ev.get("identification")
    if ident:
        levels = ident["levels"].values()
        lines.append(f"- Gallery search: in a DevTest gallery of {ident['gallery_people']} people the right person "
                     f"was first for {rates(v['rank_1']['rate'] for v in levels)} of probes "
                     f"({' / '.join(ident['levels'])}); a confident lead, which must pass the open-set threshold, "
                     "came for "
                     f"{rates(v['enrolled_found_confidently']['rate'] for v in levels)} of them, and searches for "
                     "people not enrolled ended with a false lead in "
                     f"{rates(1 - v['not_enrolled_no_confident_match']['rate'] for v in levels)} of cases, against "
                     "the 1 % the threshold is set for (see 'Gallery search').")
    lines += published_sface_limit(ev)
    who, scores = ("the joined similarity", "the joined") if comp else ("this recogniser", "this recogniser's")
    return lines + [
        "- The match probability's sharpness term reads any sharp crop as a good one: occluded faces (scarf, mask) "
        f"and noisy ones get the strict threshold of a clean face. On {earlier(ev)} their true matches were "
        f"then more often missed (`hp_search.json`, `calibration_change`); it was not measured for {who}.",
        "- The calibration's form (the sharpness term, the lead score, the temperature by sharpness) was chosen on "
        f"{earlier(ev)} and refitted on {scores} calibration scores, not chosen again for it.",
        *(companion_limits(comp) if comp else [
            "- A reconstruction is a generated image. It is shown beside the untouched input, never instead of it, "
            "and is not searched with; a candidate is an investigative lead, not an identification."]),
    ]


def published_sface_limit(ev: dict) -> list[str]:
    """Where SFace as published, measured in the same run, does better than the product on clean faces."""
    clean = ev["levels"]["clean"]
    t = clean.get("comparisons", {}).get("ours_vs_reference")
    if t is None:
        return []
    a, d = t["accuracy"], t["roc_auc"]
    ranked = ((ev.get("identification") or {}).get("levels", {}).get("clean", {}).get("reference") or {}).get(
        "rank_1_paired")
    worse = a["accuracy_a"] < a["accuracy_b"] and a["p_value"] < 0.05
    line = (f"- On clean faces SFace as published, measured beside it (OpenCV Zoo's file at its 0.363), "
            f"{'is ahead' if worse else 'is not significantly ahead'}: verification {pct(a['accuracy_b'])} against "
            f"{pct(a['accuracy_a'])} (McNemar p = {a['p_value']:.2g}), ROC-AUC difference {d['difference']:+.4f} "
            f"(p = {d['p_value']:.2g})")
    if ranked:
        line += (f"; gallery rank 1 {pct(ranked['accuracy_b'])} against {pct(ranked['accuracy_a'])} "
                 f"({ranked['b_only']} search{'' if ranked['b_only'] == 1 else 'es'} only SFace ranked right, "
                 f"{ranked['a_only']} only ours, p = "
                 f"{ranked['p_value']:.2g})")
    oracle = (clean[f"{product(ev)}_no_audio"]["best_threshold_accuracy_on_test"],
              at_threshold(clean)["best_threshold_accuracy_on_test"])
    line += (f". With the best single threshold on these pairs (an oracle, not a method) the product reaches "
             f"{pct(oracle[0])} and SFace {pct(oracle[1])}: the calibrated threshold, fitted on every level at once, "
             "costs the product clean accuracy, and the tuned student keeps most but not all of what SFace does on "
             "sharp faces. From mild degradation on the product is far ahead (see the tables)." if worse else ".")
    return [line]


def companion_limits(comp: dict) -> list[str]:
    """The known limits a companion of the reconstruction adds (``comp``: evaluation.json's engine.companion)."""
    return [
        f"- Two recognisers per face: a search embeds the probe as found with the recogniser and its reconstruction "
        f"with the companion ({comp['input']}" + (", with its mirror image" if comp["mirror_averaged"] else "")
        + "), and enrolment embeds each gallery face with both. `scripts/bench_inference.py` times the autoencoder "
        "and the recogniser, not the companion.",
        "- A reconstruction is a generated image. It is shown beside the untouched input, never instead of it; "
        f"through the companion it makes up {comp['weight']:g} of the searched similarity, so what the autoencoder "
        "invents moves a search a little. A candidate is an investigative lead, not an identification.",
    ]


# ------------------------------------------------------------------------------------------------ hyperparameters


def notes(hp: dict, key: str) -> list[str]:
    """hp_search.json's notes under ``key`` as a paragraph, if there are any."""
    return ["", hp[key]] if hp.get(key) else []


def hp_search(hp: dict | None, previous: str | None = None, companion: bool = False) -> list[str]:
    """hp_search.json's rounds; ``previous``: the version they chose the settings of, when that is another
    bundle's (its autoencoder kept, its recogniser replaced, or kept as the companion: ``companion``)."""
    if not hp:
        return []
    how = f"{hp['budget_s']:.0f} s of training per trial, scored on calibration pairs, no audio"
    if previous is None:
        lines = ["", f"## Hyperparameter search ({how})", ""]
    else:
        lines = ["", "## Hyperparameter search of the "
                 + ("model the autoencoder and the companion come from" if companion else "previous model"), "",
                 "These rounds chose the settings of the fusion autoencoder this bundle keeps (version "
                 f"`{previous}`) and of the recogniser it was trained with, the project's own CNN of the "
                 + ("reconstruction, this bundle's companion: their recognition figures are that recogniser's "
                    "alone, not the joined search's." if companion else "reconstruction, which this bundle's "
                    "recogniser replaces: their recognition figures are that recogniser's, not this one's."),
                 "", f"First round ({how}):", ""]
    lines += ["| trial | change | samples seen | AUC mild | AUC severe | PSNR severe (bicubic) |",
              "| --- | --- | --- | --- | --- | --- |"]
    for t in hp["trials"]:
        lines.append(f"| {t['trial']} | {t['changes'] or '—'} | {t['samples_seen']} | {t['auc_mild']:.3f} | "
                     f"{t['auc_severe']:.3f} | {t['psnr_severe']:.2f} ({t['bicubic_psnr_severe']:.2f}) |")
    lines += notes(hp, "notes")
    if hp.get("trials_round2"):
        lines += round2(hp)
    if hp.get("gpu_trials"):
        lines += ["", "Third round, on a borrowed GPU (`research/gpu_search.py`): complete full-length "
                  "schedules of the training command, run concurrently from a portable pack of the training set, "
                  "scored here on the same calibration pairs. 'dN' is the distillation weight, 'eN' epochs, "
                  "'wNdM' recogniser width and blocks per stage, 's80' 80 px input, 'bl' 7,685 teacher-labelled "
                  "blends added (`--blends`).", "",
                  "| trial | settings | GPU s | AUC clean / mild / severe | PSNR mild (bicubic) | "
                  "PSNR severe (bicubic) |", "| --- | --- | --- | --- | --- | --- |"]
        lines += [calib_row(r, ", ".join(f"{k} {v}" for k, v in r["settings"].items()) or "defaults")
                  for r in hp["gpu_trials"]] + notes(hp, "notes_gpu")
    if hp.get("ae_trials"):
        lines += ["", "Fourth round: the autoencoder alone (`research/ae_trial.py`: the training batches, "
                  "MSE only, a fixed wall-time budget on this machine's 2 cores, warm-up then cosine decay over "
                  "the budget), PSNR on the calibration probes in the clean alignment, no audio.", "",
                  "| trial | settings | steps | PSNR mild (bicubic) | PSNR severe (bicubic) | along the way "
                  "(steps: severe dB) |", "| --- | --- | --- | --- | --- | --- |"]
        lines += [ae_trial_row(r) for r in hp["ae_trials"]] + notes(hp, "notes_ae")
    if hp.get("full_runs"):
        lines += ["", "| full run | settings | train s | AUC clean / mild / severe | PSNR mild (bicubic) | "
                  "PSNR severe (bicubic) |", "| --- | --- | --- | --- | --- | --- |"]
        for r in hp["full_runs"]:
            lines.append(calib_row(r, r["settings"]))
    lines += notes(hp, "notes_rec")
    if hp.get("ae_scaling") or hp.get("learning_curve"):
        lines += round6(hp)
    if hp.get("fit_check") or hp.get("ae_batch_trials"):
        lines += round7(hp)
    lines += notes(hp, "notes_round8")
    return lines


def round2(hp: dict) -> list[str]:
    """The second round: complete short schedules from the defaults of the time."""
    b = hp["round2_base"]
    lines = ["", f"Second round: each trial a complete short schedule ({b['epochs']} epochs, "
             f"{b['warmup_steps']} warm-up steps, cosine decay) from the defaults of the time (distillation "
             f"weight {b['distill_weight']:g}, identity weight {b['id_weight']:g}), the same calibration "
             "pairs; 'centred' distils towards dlib's descriptor minus its training mean.", "",
             "| trial | change | train s | AUC clean / mild / severe | PSNR mild (bicubic) | "
             "PSNR severe (bicubic) |", "| --- | --- | --- | --- | --- | --- |"]
    for t in hp["trials_round2"]:
        lines.append(f"| {t['trial']} | {t['changes'] or '—'} | {t['train_s']:.0f} | {t['auc_clean']:.3f} / "
                     f"{t['auc_mild']:.3f} / {t['auc_severe']:.3f} | {t['psnr_mild']:.2f} "
                     f"({t['bicubic_psnr_mild']:.2f}) | {t['psnr_severe']:.2f} "
                     f"({t['bicubic_psnr_severe']:.2f}) |")
    return lines + notes(hp, "notes_round2")


def ae_trial_row(r: dict) -> str:
    """A table row of the fourth round (the autoencoder alone within a wall-time budget)."""
    st = r["settings"]
    desc = (f"width {st['width']}{', residual' if st['residual'] else ''}"
            f"{', ' + str(st['blocks']) + ' bottleneck blocks' if st.get('blocks') else ''}, "
            f"{'from ' + st['init'] if st['init'] else 'from scratch'}, {st['minutes']:g} min, "
            f"lr {st['lr']:g}, {st['threads']} thread{'s' if st['threads'] > 1 else ''}")
    way = ", ".join(f"{a['step']}: {a['psnr_severe']:.2f}" for a in r["along_the_way"])
    return (f"| {r['run']} | {desc} | {r['steps']} | {r['psnr_mild']:.2f} ({r['bicubic_mild']:.2f}) | "
            f"{r['psnr_severe']:.2f} ({r['bicubic_severe']:.2f}) | {way} |")


def round6(hp: dict) -> list[str]:
    """The sixth round: the autoencoder's scaling and the recognition's learning curve (borrowed GPU)."""
    lines = ["", "Sixth round, on a borrowed GPU (`research/gpu_search.py`, two calls), scored here on the "
             "calibration pairs: how far the two targets this model misses are from what more capacity, "
             "more steps or more data give.", "",
             "Autoencoder alone from scratch (`--epochs 0 --ae-epochs N`, MSE only; "
             "`research/score_calibration.py --reconstruction-only`):", "",
             "| trial | width | bottleneck blocks | parameters | steps | PSNR mild (bicubic) | "
             "PSNR severe (bicubic) | gain at severe |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in hp.get("ae_scaling", []):
        st, cut = r["settings"], " (cut)" if r.get("stopped_early") else ""
        lines.append(f"| {r['run']} | {st.get('ae_width', 16)} | {st.get('ae_blocks', 0)} | "
                     f"{r['params']['ae']:,} | {r['steps']:,}{cut} | {r['calib_psnr_mild']:.2f} "
                     f"({r['calib_bicubic_mild']:.2f}) | {r['calib_psnr_severe']:.2f} "
                     f"({r['calib_bicubic_severe']:.2f}) | "
                     f"+{r['calib_psnr_severe'] - r['calib_bicubic_severe']:.2f} dB |")
    lines += ["", "Learning curve of the recognition (the joint schedule, 2,400 steps each, on a seeded subset "
              "of the training images, `max_images`):", "",
              "| trial | settings | GPU s | AUC clean / mild / severe | PSNR mild (bicubic) | "
              "PSNR severe (bicubic) |", "| --- | --- | --- | --- | --- | --- |"]
    for r in hp.get("learning_curve", []):
        settings = ", ".join(f"{k} {v}" for k, v in r["settings"].items())
        lines.append(calib_row(r, settings or "all 7,685 images"))
    return lines + notes(hp, "notes_round6")


# ------------------------------------------------------------------------------------------------ the card


def card(folder: Path) -> str:
    """The model card of the bundle in ``folder``, as Markdown."""
    meta, ev, hp, prev = load(folder)
    new = as_found(meta)
    lines = [
        "# Model card: forensic_face fusion autoencoder + recogniser" + (" + companion" if joined(meta) else ""),
        "",
        f"Version `{meta['version']}` — weights `models.pt` (float16 tensor dictionary, "
        f"SHA-256 `{meta['weights_sha256'][:16]}…`), configuration and calibration in `models.json`, "
        "the full evaluation in `evaluation.json` (plots `evaluation_roc.png`, `evaluation_examples.png`, "
        "`evaluation_open_set.png`).",
        "",
    ]
    lines += sface_what(meta) + sface_data(meta) + sface_command(meta) if new else ff_cnn_sections(meta)
    lines += results(ev)
    lines += previous_model(ev, prev, meta)
    # the calibration's form was chosen on the previous model: its record is that model's, not this one's
    lines += identification(ev, None if new else hp)
    lines += match_calibration(ev, None if new else hp)
    lines += clips(folder, meta)
    lines += targets(ev)
    lines += hp_search(hp, ae_origin(meta["record"])[0][-1]["from_bundle"] if new else None, trained_together(meta))
    lines += sface_limits(ev) if new else limits(ev)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=models_dir(),
                        help="the model bundle's folder; the card is written there (default: %(default)s)")
    folder = parser.parse_args().models
    text = card(folder)
    (folder / "MODEL_CARD.md").write_text(text)
    print(f"written {folder / 'MODEL_CARD.md'}")


if __name__ == "__main__":
    main()
