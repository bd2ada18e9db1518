"""The search told as a search, the same in the GUI and the report: the lead decision and its false-lead rate
first, one-to-one figures labelled as such, and never more than the lead highlighted."""

from __future__ import annotations

from types import SimpleNamespace

from forensic_face.core.records import Candidate, SearchOutcome
from forensic_face.reports import pdf
from forensic_face.reports.wording import lead_row, one_to_one_note, search_verdict


def outcome(probabilities: list[float], confident: bool, lead_score: float = 0.02) -> SearchOutcome:
    cands = [Candidate(f"P{k}", 0.6 - 0.05 * k, 1 / len(probabilities), p, f"g/{k}.jpg", k)
             for k, p in enumerate(probabilities)]
    return SearchOutcome(cands, confident, 0.23, 400, 800, "v1", 40.0, open_set_threshold=0.09, fpir=0.01,
                         lead_score=lead_score)


def search_block(search: SearchOutcome) -> list:
    pdf._register_fonts()
    return pdf._search_block(SimpleNamespace(record=SimpleNamespace(search=search), thumbnails=[]), pdf._styles())


def highlighted_rows(search: SearchOutcome) -> list[int]:
    """The candidate rows the report's table colours (row 0 is the heading)."""
    block = search_block(search)
    table = block[-1]
    return sorted({cmd[1][1] - 1 for cmd in table._bkgrndcmds if cmd[1][1] > 0})


def test_strangers_with_high_one_to_one_figures_are_not_a_lead_and_nothing_is_highlighted() -> None:
    search = outcome([0.91, 0.84, 0.71, 0.49], confident=False)
    verdict = search_verdict(search)
    assert verdict.startswith("No confident match at a false-lead rate of 1%: P0 has one-to-one match probability")
    assert lead_row(search) is None and highlighted_rows(search) == []  # before: three rows at or above 0.5
    assert "In a search of 400 people the best of the strangers often scores high" in one_to_one_note(search)


def test_a_lead_is_stated_first_with_its_rate_and_is_the_only_row_highlighted() -> None:
    search = outcome([0.62, 0.55, 0.51], confident=True, lead_score=0.2)
    verdict = search_verdict(search)
    assert verdict.startswith("Investigative lead: P0, found at a false-lead rate of 1%")
    assert "One-to-one match probability 0.620" in verdict and verdict.endswith("This is not an identification.")
    assert lead_row(search) == 0 and highlighted_rows(search) == [0]


def test_the_report_labels_the_column_one_to_one() -> None:
    block = search_block(outcome([0.7], False))
    assert block[-1]._cellvalues[0][-1] == "One-to-one\nmatch\nprobability"
