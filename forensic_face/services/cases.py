"""Cases as the user handles them: what a case view shows after opening or changing a case, and the
verification that records itself in the log (the CLI's `case verify` and the GUI's Verify action)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from forensic_face.core.errors import CaseError
from forensic_face.core.progress import Progress
from forensic_face.store.case import Case, VerifyReport

log = logging.getLogger(__name__)


@dataclass
class CaseState:
    """What the case view shows after opening or changing a case."""

    case: Case
    verification: VerifyReport
    log: list[dict]
    analyses: list[str]  # analysis ids, oldest first
    latest: Any = None  # reports.content.AnalysisView of the newest analysis, if any


def case_state(case: Case, progress: Progress | None = None, with_latest: bool = True,
               verification: VerifyReport | None = None) -> CaseState:
    """Verify the case (unless ``verification`` was just made) and read what the view shows; the analyses
    are those the audit log records (ids and record paths checked by the store, never built from log text)."""
    from forensic_face.reports.content import load_analysis
    from forensic_face.store.lock import case_lock

    with case_lock(case.root, exclusive=False, progress=progress):
        verification = verification or case.verify(progress)
        entries = case.read_log()
        refs = case.analyses(entries)
        latest = None
        if with_latest and refs:
            if progress is not None:  # the audio view's pitch code is compiled on its first use (numba, cached)
                progress.update(0, 1, f"reading {refs[-1].analysis_id} and its audio")
            try:
                latest = load_analysis(case, refs[-1], verification)
            except (OSError, ValueError) as exc:
                log.warning("%s: %s", refs[-1].analysis_id, exc)
    return CaseState(case, verification, entries, [r.analysis_id for r in refs], latest)


@dataclass(frozen=True)
class RecordedVerification:
    """A verification and whether it was recorded in the log."""

    report: VerifyReport
    head: dict  # the log's head after the run: its own entry when recorded, else the head it checked
    not_logged: str  # why the run was not recorded; empty when it was


def verify_and_record(case: Case, progress: Progress | None = None, expected_head: str | None = None,
                      record: bool = True) -> RecordedVerification:
    """Verify everything the log knows (never repairing anything) and record the run as ``case.verified``
    when ``record`` and the case can take it (a case whose record is in doubt is not written to: the reason
    is returned instead)."""
    report = case.verify(progress=progress, expected_head=expected_head)
    if not record:
        return RecordedVerification(report, report.head, "recording was not asked for")
    try:
        entry = case.log_verification(report)
    except CaseError as exc:
        return RecordedVerification(report, report.head, str(exc))
    return RecordedVerification(report, {"seq": entry["seq"], "hash": entry["hash"]}, "")
