"""The sentences a search is told in, the same in the GUI and the report: its verdict (the lead decision
and its false-lead rate first), its open-set condition, what the one-to-one figures are, and which
candidate to highlight. They read the typed record (core.records.SearchOutcome); a saved search is
converted once, on load, so old and damaged values arrive as the record's NaN or -inf and are written as
such."""

from __future__ import annotations

import math

from forensic_face.core.records import SearchOutcome
from forensic_face.models.calibration import OPEN_SET_NEIGHBOURS

#: what the match probability of a single candidate is called wherever a search is shown
ONE_TO_ONE = "one-to-one match probability"


def _rate_text(search: SearchOutcome) -> str:
    return f"{search.fpir:.1%}".replace(".0%", "%")


def _lead_words(search: SearchOutcome) -> str:
    """What the lead score of a search is, in words (the neighbours a gallery of its size has)."""
    people = search.people_searched
    k = min(OPEN_SET_NEIGHBOURS, people - 1) if people > 0 else OPEN_SET_NEIGHBOURS
    if k < 1:
        return "its similarity, the gallery holding one person"
    return "the best candidate's similarity less half " + (
        "the next one's" if k == 1 else f"the mean of the next {('two', 'three')[k - 2] if k <= 3 else k}")


def _people(search: SearchOutcome) -> str:
    return str(search.people_searched) if search.people_searched > 0 else "?"


def _has_open_set(search: SearchOutcome) -> bool:
    """Whether the search had an open-set threshold (-inf: none, as in results saved before there was one)."""
    return search.open_set_threshold != float("-inf")


def _decision(search: SearchOutcome, outcome: str) -> str:
    """The decision and the false-lead rate it was taken at: "Investigative lead at a false-lead rate of 1 %"."""
    return f"{outcome} at a false-lead rate of {_rate_text(search)}" if _has_open_set(search) else outcome


def search_verdict(search: SearchOutcome) -> str:
    """The verdict of a search, the same in the GUI and the report: the lead decision and the false-lead rate
    it was taken at first, then why; "This is not an identification." ends a lead."""
    if not search.candidates:
        return "The gallery is empty: nobody was compared."
    best = search.candidates[0]
    prob, thr = best.match_probability, search.open_set_threshold
    if search.confident:
        if not _has_open_set(search):
            return (f"Investigative lead: {best.person} ({ONE_TO_ONE} {prob:.3f}). "
                    "This is not an identification.")
        return (f"Investigative lead: {best.person}, found at a false-lead rate of {_rate_text(search)}: searches of "
                f"{_people(search)} people for someone who is not among them end with a lead in "
                f"{_rate_text(search)} of cases. {ONE_TO_ONE.capitalize()} {prob:.3f}. "
                "This is not an identification.")
    if prob >= 0.5 and _has_open_set(search):
        people, rate = _people(search), _rate_text(search)
        head = _decision(search, "No confident match")
        if math.isnan(search.lead_score):  # no lead score: the threshold was on the similarity itself
            return (f"{head}: {best.person} has {ONE_TO_ONE} {prob:.3f}, but its similarity "
                    f"{best.similarity:.3f} is below {thr:.3f}, which the best of {people} people who are not the "
                    f"probe's person reaches in {rate} of searches.")
        return (f"{head}: {best.person} has {ONE_TO_ONE} {prob:.3f}, but stands out too little from the "
                f"next candidates for a gallery of {people}: lead score {search.lead_score:.3f} "
                f"({_lead_words(search)}) is below {thr:.3f}, which searches for someone not enrolled reach in "
                f"{rate} of cases.")
    return f"{_decision(search, 'No confident match')}: no person in the gallery reaches a {ONE_TO_ONE} of 0.5."


def lead_row(search: SearchOutcome) -> int | None:
    """The candidate to highlight: the investigative lead (the first), or None when the search gave none."""
    return 0 if search.confident and search.candidates else None


def one_to_one_note(search: SearchOutcome) -> str:
    """What the one-to-one match probability is, and why it does not make a lead, in one sentence pair."""
    return (f"The {ONE_TO_ONE} compares the probe with one candidate alone: the calibrated probability that the "
            f"two are the same person. In a search of {_people(search)} people the best of the strangers often "
            "scores high on it, so it does not make a lead; the lead decision does.")


def open_set_note(search: SearchOutcome) -> str:
    """One sentence on the open-set condition of a search (empty without one), the same in the GUI and the
    report."""
    if not _has_open_set(search):
        return ""
    thr, people, rate = search.open_set_threshold, _people(search), _rate_text(search)
    if math.isnan(search.lead_score):  # no lead score
        return (f"A lead also needs a similarity of at least {thr:.3f}: the best of {people} strangers "
                f"reaches that in {rate} of searches, so a person who is not in the gallery rarely yields a lead.")
    return (f"A lead also needs a lead score ({_lead_words(search)}) of at least {thr:.3f}; this "
            f"search's is {search.lead_score:.3f}. Searches of {people} people "
            f"for someone not among them reach that in {rate} of cases (measured on held-out calibration "
            f"searches), so a person who is not in the gallery rarely yields a lead.")


#: The parts of a joined similarity in words (``SearchOutcome.paths``' keys).
PATH_NAMES = {"recogniser": "the recogniser tuned for degraded faces", "sharp": "SFace as published",
              "companion": "the companion recogniser of the reconstruction"}


def paths_note(search: SearchOutcome) -> str:
    """Which recognisers made the search's similarities and by how much (a joined bundle's); empty otherwise."""
    if not search.paths:
        return ""
    parts = [f"{PATH_NAMES.get(k, k)} {v:.0%}" if math.isfinite(v) else f"{PATH_NAMES.get(k, k)} ?"
             for k, v in search.paths.items()]
    return ("The similarities are a weighted mean of several recognisers' cosines, weighted by the probe's "
            "sharpness: " + ", ".join(parts) + ".")
