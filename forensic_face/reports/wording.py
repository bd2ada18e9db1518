"""The sentences a stored search result is told in, the same in the GUI and the report: its verdict, its
open-set condition and its candidates' distances (stored results are untrusted input: any value may be
missing or damaged)."""

from __future__ import annotations

from forensic_face.core.records import as_number, embedding_distance
from forensic_face.models.calibration import OPEN_SET_NEIGHBOURS


def candidate_distance(candidate: dict) -> float:
    """A saved candidate's Euclidean distance (computed from its similarity in results saved before the
    distance was stored); NaN when neither is there or the saved value is not a number (a damaged file)."""
    for key, convert in (("distance", float), ("similarity", embedding_distance)):
        try:
            if candidate.get(key) is not None:
                return convert(candidate[key])
        except (TypeError, ValueError):
            return float("nan")
    return float("nan")


def _rate_text(search: dict) -> str:
    return f"{as_number(search.get('fpir'), 0.01):.1%}".replace(".0%", "%")


def _lead_words(search: dict) -> str:
    """What the lead score of a stored search is, in words (the neighbours a gallery of its size has)."""
    people = search.get("people_searched")
    k = min(OPEN_SET_NEIGHBOURS, int(people) - 1) if isinstance(people, int) else OPEN_SET_NEIGHBOURS
    if k < 1:
        return "its similarity, the gallery holding one person"
    return "the best candidate's similarity less half " + (
        "the next one's" if k == 1 else f"the mean of the next {('two', 'three')[k - 2] if k <= 3 else k}")


def search_verdict(search: dict) -> str:
    """The verdict sentence of a stored search result (as saved by ``SearchOutcome.as_dict``), the same in
    the GUI and the report; "This is not an identification." ends a lead."""
    cands = [c for c in search.get("candidates") or [] if isinstance(c, dict)]
    if not cands:
        return "The gallery is empty: nobody was compared."
    best = cands[0]
    prob = as_number(best.get("match_probability"))
    if search.get("confident"):
        return (f"Investigative lead: {best.get('person', '?')} (match probability {prob:.3f}). "
                "This is not an identification.")
    thr = search.get("open_set_threshold")
    if prob >= 0.5 and thr is not None:
        people = search.get("people_searched", "?")
        rate = _rate_text(search)
        lead = search.get("lead_score")
        if lead is None:  # results saved before the lead score: the threshold was on the similarity itself
            return (f"No confident match: {best.get('person', '?')} has match probability {prob:.3f} as a single "
                    f"comparison, but its similarity {as_number(best.get('similarity')):.3f} is below "
                    f"{as_number(thr):.3f}, which the best of {people} people who are not the probe's person "
                    f"reaches in {rate} of searches.")
        return (f"No confident match: {best.get('person', '?')} has match probability {prob:.3f} as a single "
                f"comparison, but stands out too little from the next candidates for a gallery of {people}: lead "
                f"score {as_number(lead):.3f} ({_lead_words(search)}) is below "
                f"{as_number(thr):.3f}, which searches for someone not enrolled reach in {rate} of cases.")
    return "No confident match: no person in the gallery reaches a match probability of 0.5."


def open_set_note(search: dict) -> str:
    """One sentence on the open-set condition of a stored search result (empty without one), the same in
    the GUI and the report."""
    thr = search.get("open_set_threshold")
    if thr is None:
        return ""
    people = search.get("people_searched", "?")
    rate = _rate_text(search)
    lead = search.get("lead_score")
    if lead is None:  # saved before the lead score
        return (f"A lead also needs a similarity of at least {as_number(thr):.3f}: the best of {people} strangers "
                f"reaches that in {rate} of searches, so a person who is not in the gallery rarely yields a lead.")
    return (f"A lead also needs a lead score ({_lead_words(search)}) of at least {as_number(thr):.3f}; this "
            f"search's is {as_number(lead):.3f}. Searches of {people} people "
            f"for someone not among them reach that in {rate} of cases (measured on held-out calibration "
            f"searches), so a person who is not in the gallery rarely yields a lead.")
