"""Verification of a case: everything the audit log knows, checked against what is on disk.

- the log: every entry's hash and link, the head and the pending entry recorded in case.json (a log
  shorter than the head, or entries past it that no interrupted operation announced, are alarms);
  the unit key's seals when the key is set; the head the examiner noted, when given;
- the case metadata against the values the log's first entry recorded;
- every evidence file against the SHA-256 in case.json *and* in the log's ``evidence.added``;
  every logged addition still listed; no file in ``evidence/`` the log does not know;
- every result file the log recorded (each analysis's files, reports written inside the case)
  against its logged SHA-256; no file in ``results/`` the log does not know.

Verification never writes and never repairs: what a crash of this tool can leave is named in
``notes`` and dealt with by the next change (store.case); everything else is a problem.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from forensic_face.core.errors import CaseError
from forensic_face.core.hashing import sha256_file
from forensic_face.core.progress import Progress
from forensic_face.store import audit
from forensic_face.store.audit import EXPORT_ACTIONS, UnitKey
from forensic_face.store.lock import LOCK_FILE, case_lock

RESULT_OK = "matches the audit log"
_EVIDENCE_FIELDS = ("sha256", "size", "kind", "format", "original_name", "added")


@dataclass
class VerifyReport:
    ok: bool
    evidence_checked: int
    log_entries: int
    problems: list[str] = field(default_factory=list)  # each names the file or entry
    notes: list[str] = field(default_factory=list)  # not tampering (an interrupted operation, unchecked seals)
    evidence_status: dict[str, str] = field(default_factory=dict)  # name -> verified | altered | missing | ...
    result_status: dict[str, str] = field(default_factory=dict)  # results/... -> RESULT_OK | ALTERED | ...
    head: dict = field(default_factory=dict)  # {"seq", "hash"} of the log's last entry: the anchor to note
    sealed_with: str | None = None  # the unit key's id the seals were checked with

    def as_dict(self) -> dict:
        return asdict(self)


def verify_case(case, progress: Progress | None, expected_head: str | None, key: UnitKey | None) -> VerifyReport:
    """See the module docstring. ``case`` is a store.case.Case; its metadata is re-read from disk."""
    with case_lock(case.root, exclusive=False, progress=progress):
        return _Verifier(case, progress).run(expected_head, key)


class _Verifier:
    def __init__(self, case, progress: Progress | None) -> None:
        self.case, self.progress = case, progress
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.status: dict[str, str] = {}
        self.results: dict[str, str] = {}
        self.pending: dict | None = None  # the logged entry of an interrupted change, if any

    def run(self, expected_head: str | None, key: UnitKey | None) -> VerifyReport:
        case = self.case
        try:
            case.refresh()
        except CaseError as exc:
            return VerifyReport(False, 0, 0, problems=[str(exc)])
        try:
            entries = case.read_log()
        except CaseError as exc:
            self.problems.append(str(exc))
            entries = []
        self.check_log(entries, expected_head, key)
        self.check_meta(entries)
        items = self.check_evidence(entries)
        self.check_results(entries)
        self.check_root(entries)
        last = entries[-1] if entries else {}
        head = {"seq": last.get("seq"), "hash": last.get("hash")}
        return VerifyReport(not self.problems, len(items), len(entries), self.problems, self.notes, self.status,
                            self.results, head, key.key_id if key is not None else None)

    # ------------------------------------------------------------------------------------------ the log
    def check_log(self, entries: list[dict], expected_head: str | None, key: UnitKey | None) -> None:
        meta = self.case.meta
        self.problems += audit.chain_problems(entries)
        if not entries:
            self.problems.append("audit.log: missing or empty; a case's log holds at least its creation")
        state = audit.head_state(entries, meta["log_head"], meta.get("pending"))
        self.problems += list(state.problems)
        self.pending = state.pending_logged
        pend = state.pending_logged
        if pend is not None:
            self.notes.append(f"audit.log: {pend.get('action')} (seq {pend.get('seq')}) was interrupted after it was "
                              "logged; the next change to the case finishes it")
        if state.pending_unlogged is not None:
            self.notes.append(f"case.json: an interrupted {state.pending_unlogged.get('action')} never reached the "
                              "log (it did not happen); the next change to the case clears it")
        problems, notes = audit.seal_problems(entries, key)
        self.problems += problems
        self.notes += notes
        if expected_head:
            self.problems += audit.anchor_problems(entries, expected_head)

    def check_meta(self, entries: list[dict]) -> None:
        from forensic_face.store.case import META_FIELDS

        first = entries[0] if entries else {}
        if first.get("action") != "case.created" or not isinstance(first.get("details"), dict):
            if entries:
                self.problems.append("audit.log: the first entry is not the case's creation")
            return
        logged = first["details"]
        meta = self.case.meta
        for key in META_FIELDS:
            if key in logged and logged[key] != meta.get(key):
                self.problems.append(f"case.json: the case {key} was changed after the case was created "
                                     f"(now {_short(meta.get(key))}, logged {_short(logged[key])})")
        if "created" not in logged:
            self.notes.append("case.json: this case was made before its creation time was logged; only its id, "
                              "title and analyst are checked against the log")

    # ------------------------------------------------------------------------------------------ evidence
    def check_evidence(self, entries: list[dict]) -> list:
        case = self.case
        try:
            items = case.evidence
        except CaseError as exc:
            self.problems.append(str(exc))
            return []
        logged = {}
        for e in entries:
            d = e.get("details")
            if e.get("action") == "evidence.added" and isinstance(d, dict) and isinstance(d.get("name"), str):
                logged[d["name"]] = (e, d)
        for i, item in enumerate(items):
            if self.progress is not None:
                self.progress.update(i, len(items), f"hashing {item.name}")
            self.status[item.name] = self._check_file(item)
            self._check_against_log(item, logged.get(item.name))
        listed = {e.name for e in items}
        pending_name = ((self.pending or {}).get("details") or {}).get("name") \
            if (self.pending or {}).get("action") == "evidence.added" else None
        for name, (e, _) in logged.items():
            if name not in listed and name != pending_name:
                self.problems.append(f"evidence/{name}: its addition is logged (seq {e.get('seq')}) but case.json no "
                                     "longer lists it (removed from the record)")
        for path in sorted(case.evidence_dir.iterdir()):
            if path.name in listed or path.name == pending_name:
                continue
            if path.name.startswith(".incoming-"):
                self.notes.append(f"evidence/{path.name}: partial copy of an interrupted addition (removed at the "
                                  "next change)")
            elif path.name.startswith(".") and path.name.endswith(".tmp"):
                self.notes.append(f"evidence/{path.name}: an unfinished atomic write (removed at the next change)")
            else:
                self.problems.append(f"evidence/{path.name}: added outside the tool (not in case.json)")
        if self.progress is not None:
            self.progress.update(len(items), len(items), "evidence checked")
        return items

    def _check_file(self, item) -> str:
        path = self.case.evidence_dir / item.name
        if path.is_symlink():
            self.problems.append(f"evidence/{item.name}: replaced by a symbolic link")
            return "link"
        if not path.is_file():
            self.problems.append(f"evidence/{item.name}: missing")
            return "missing"
        digest = sha256_file(path)
        if digest != item.sha256:
            self.problems.append(f"evidence/{item.name}: altered (SHA-256 {digest[:16]}…, "
                                 f"recorded {item.sha256[:16]}…)")
            return "altered"
        return "verified"

    def _check_against_log(self, item, logged) -> None:
        if logged is None:
            self.problems.append(f"evidence/{item.name}: listed in case.json but its addition is not in the audit log")
            self.status[item.name] = "not logged"
            return
        entry, d = logged
        changed = [f for f in _EVIDENCE_FIELDS if f in d and str(d[f]) != str(getattr(item, f))]
        if changed:
            self.problems.append(f"evidence/{item.name}: case.json's record ({', '.join(changed)}) differs from the "
                                 f"addition logged at seq {entry.get('seq')}"
                                 + (" — the file was swapped and its record edited" if "sha256" in changed else ""))
            self.status[item.name] = "swapped" if "sha256" in changed else "record edited"

    # ------------------------------------------------------------------------------------------ results
    def check_results(self, entries: list[dict]) -> None:
        case = self.case
        logged: dict[str, str] = {}
        staged: set[str] = set()
        pending_seq = (self.pending or {}).get("seq")
        for e in entries:
            d = e.get("details")
            if not isinstance(d, dict):
                continue
            files = d.get("files") if isinstance(d.get("files"), dict) else {}
            if isinstance(d.get("result"), str) and isinstance(d.get("sha256"), str):
                files = {**files, d["result"]: d["sha256"]}
            for rel, digest in files.items():
                if case.result_file(rel) is None:
                    self.problems.append(f"audit.log seq {e.get('seq')}: names {_short(rel)} as a result, which is "
                                         "not a file inside results/")
                elif e.get("seq") == pending_seq:
                    staged.add(rel)
                else:
                    logged[rel] = str(digest)
        for rel, digest in logged.items():
            path = case.result_file(rel)
            if not path.is_file():
                self.results[rel] = "missing"
                self.problems.append(f"{rel}: missing (logged with SHA-256 {digest[:16]}…)")
            elif sha256_file(path) != digest:
                self.results[rel] = "ALTERED"
                self.problems.append(f"{rel}: altered after it was written (its SHA-256 differs from the log's)")
            else:
                self.results[rel] = RESULT_OK
        self._unknown_results(set(logged) | staged)

    def _unknown_results(self, known: set[str]) -> None:
        case = self.case
        if not case.results_dir.is_dir():
            if known:
                self.problems.append("results/: the folder is missing")
            return
        for path in sorted(case.results_dir.rglob("*")):
            rel = path.relative_to(case.root).as_posix()
            top = path.relative_to(case.results_dir).parts[0]
            if top.startswith(".partial-"):
                if path.parent == case.results_dir:
                    self.notes.append(f"{rel}: an analysis interrupted before it was logged (not part of the case "
                                      "record; removed at the next change)")
                continue
            if path.name.startswith(".") and path.name.endswith(".tmp"):
                self.notes.append(f"{rel}: an unfinished atomic write (removed at the next change)")
                continue
            if path.is_symlink():
                self.problems.append(f"{rel}: a symbolic link inside results/")
            elif path.is_dir():
                continue
            elif rel not in known:
                self.results[rel] = "not in the audit log"
                self.problems.append(f"{rel}: added outside the tool (not in the audit log)")

    def check_root(self, entries: list[dict]) -> None:
        """Files beside case.json: reports written into the case are checked; anything else is named."""
        case = self.case
        reports = {}
        for e in entries:
            d = e.get("details")
            if e.get("action") in EXPORT_ACTIONS and isinstance(d, dict) and isinstance(d.get("file"), str):
                reports[d["file"]] = str(d.get("sha256", ""))
        known = {"case.json", "audit.log", "evidence", "results", LOCK_FILE}
        for path in sorted(case.root.iterdir()):
            if path.name in known:
                continue
            if path.name.startswith(".") and path.name.endswith(".tmp"):
                self.notes.append(f"{path.name}: an unfinished atomic write (removed at the next change)")
                continue
            digest = reports.get(str(path.resolve()))
            if digest is None:
                self.problems.append(f"{path.name}: in the case folder but not in the audit log (added outside the "
                                     "tool)")
            elif not path.is_file() or path.is_symlink() or sha256_file(path) != digest:
                self.problems.append(f"{path.name}: the report written here was changed after it was exported")


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"
