"""The audit log as the report prints it: one row per entry, in words, with the entry's full hash.

Cases written by older versions logged every result file of an analysis as its own ``result.image``
entry (ten or more per analysis); consecutive ones of the same analysis become one row naming the
entries it stands for and their files, with the last entry's hash (each entry's hash covers the one
before it, so the last stands for the group). The log is read from the case folder: every field is
treated as untrusted text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from forensic_face.store.case import ANALYSIS_FAILED, ANALYSIS_NOTE, ANALYSIS_WITHDRAWN, EVIDENCE_PROVENANCE

#: The per-file entries of analyses saved file by file (before an analysis was logged as one unit).
RESULT_FILE_ACTION = "result.image"
#: Longest text of one field the log row prints (notes and reasons are printed whole with their analysis).
MAX_FIELD = 400


@dataclass(frozen=True)
class LogRow:
    seq: str  # "7", or "5–14" for a group
    time: str  # "YYYY-MM-DD HH:MM:SS.mmm" (UTC), of the first entry
    action: str
    who: str  # "analyst / user"
    details: str  # in words; empty when the entry's details are not one this module describes
    hash: str  # the entry's hash; a group's is its last entry's
    raw: Any = None  # the entry's details, for a generic line when ``details`` is empty
    entries: int = 1


def _text(value: Any, n: int = MAX_FIELD) -> str:
    s = " ".join(str(value).split())
    return s if len(s) <= n else s[: n - 1] + "…"


def _short_hash(value: Any) -> str:
    s = str(value)
    return s[:16] + "…" if len(s) > 16 else s


def _time(entry: dict) -> str:
    return _text(entry.get("time", ""), 40)[:23].replace("T", " ")


def _who(entry: dict) -> str:
    return f"{_text(entry.get('analyst', ''), 120)} / {_text(entry.get('user', ''), 60)}"


def _evidence_name(value: Any) -> str:
    return _text(value.get("evidence", "?"), 160) if isinstance(value, dict) else "none"


def _analysis(d: dict) -> str:
    files = d.get("files") if isinstance(d.get("files"), dict) else {}
    kept = (f"{len(files)} files in results/{_text(d.get('analysis'), 40)}/" if files
            else f"record {_text(d.get('result', '?'), 160)}")
    return (f"{_text(d.get('analysis'), 40)}: frame {_evidence_name(d.get('frame'))}, audio "
            f"{_evidence_name(d.get('audio'))}; models {_text(d.get('model_version', '?'), 60)} on "
            f"{_text(d.get('device', '?'), 20)}; {kept}, each with its SHA-256 (checked in section 1); "
            f"result: {_text(d.get('verdict') or 'no gallery search', 200)}")


def _evidence_added(d: dict) -> str:
    orig = d.get("original_name")
    size = d.get("size")
    return (f"{_text(d.get('name', '?'), 160)} ({_text(d.get('kind', '?'), 20)} / {_text(d.get('format', '?'), 20)}, "
            f"{f'{size:,} B' if isinstance(size, int) else '? B'}"
            + (f"; original name {_text(orig, 160)}" if orig and orig != d.get("name") else "")
            + f"), SHA-256 {_short_hash(d.get('sha256', '?'))}, copied from {_text(d.get('source', '?'))}")


def _report(d: dict) -> str:
    names = d.get("analyses") if isinstance(d.get("analyses"), list) else []
    left = d.get("left_out") if isinstance(d.get("left_out"), list) else []
    return (f"{_text(d.get('file', '?'))}: {_text(d.get('pages', '?'), 10)} pages, SHA-256 "
            f"{_short_hash(d.get('sha256', '?'))}; analyses {_text(', '.join(map(str, names)) or 'none')}"
            + (f"; left out {_text(', '.join(map(str, left)))}" if left else ""))


def _provenance(d: dict) -> str:
    return (f"{_text(d.get('evidence', '?'), 160)}: exhibit {_text(d.get('exhibit') or 'not recorded')}; "
            f"received from {_text(d.get('received_from') or 'not recorded')}; received at "
            f"{_text(d.get('received_at') or 'not recorded')}")


_DESCRIBE = {
    "analysis": _analysis,
    "evidence.added": _evidence_added,
    "report.exported": _report,
    EVIDENCE_PROVENANCE: _provenance,
    ANALYSIS_WITHDRAWN: lambda d: f"{_text(d.get('analysis'), 40)} WITHDRAWN; reason: {_text(d.get('reason'))}",
    ANALYSIS_NOTE: lambda d: f"note on {_text(d.get('analysis'), 40)}: {_text(d.get('note'))}",
    ANALYSIS_FAILED: lambda d: (f"analysis of frame {_text(d.get('frame') or 'none chosen', 160)}, audio "
                                f"{_text(d.get('audio') or 'none', 160)} failed: {_text(d.get('reason'))}"),
}


def describe(entry: dict) -> str:
    """An entry's details in words, or "" when its action is not one described here."""
    d = entry.get("details")
    how = _DESCRIBE.get(str(entry.get("action", "")))
    return how(d) if how is not None and isinstance(d, dict) else ""


def _file_of(entry: dict) -> tuple[str, str, str] | None:
    """(analysis, role, who) of an older version's per-file entry, None for any other entry."""
    d = entry.get("details")
    if entry.get("action") != RESULT_FILE_ACTION or not isinstance(d, dict) or not isinstance(d.get("analysis"), str):
        return None
    return d["analysis"], _text(d.get("role", "?"), 40), _who(entry)


def _same_analysis(a: tuple[str, str, str], b: tuple[str, str, str] | None) -> bool:
    """Both per-file entries of one analysis, logged by the same analyst and user."""
    return b is not None and (a[0], a[2]) == (b[0], b[2])


def _group_row(group: list[dict]) -> LogRow:
    first, last = group[0], group[-1]
    aid = _text(first["details"]["analysis"], 40)
    roles = [f[1] for f in map(_file_of, group) if f is not None]
    return LogRow(
        seq=f"{_text(first.get('seq', ''), 12)}–{_text(last.get('seq', ''), 12)}", time=_time(first),
        action=f"{RESULT_FILE_ACTION} × {len(group)}", who=_who(first),
        details=(f"the {len(group)} result files of {aid}, one entry each (an older version's layout): "
                 f"{_text(', '.join(roles), MAX_FIELD)}; each file's SHA-256 is checked in section 1; the hash "
                 f"is the last entry's ({_time(last)[11:]})"),
        hash=str(last.get("hash", "")), entries=len(group))


def log_rows(entries: list[dict]) -> list[LogRow]:
    """The log's rows, oldest first, consecutive per-file entries of one analysis grouped."""
    out: list[LogRow] = []
    i = 0
    while i < len(entries):
        e, key = entries[i], _file_of(entries[i])
        j = i + 1
        while key is not None and j < len(entries) and _same_analysis(key, _file_of(entries[j])):
            j += 1
        if j - i > 1:
            out.append(_group_row(entries[i:j]))
        else:
            out.append(LogRow(seq=_text(e.get("seq", ""), 12), time=_time(e), action=_text(e.get("action", ""), 60),
                              who=_who(e), details=describe(e), hash=str(e.get("hash", "")),
                              raw=e.get("details", {})))
        i = j
    return out
