"""Case folders with chain of custody.

Layout of a case folder::

    case.json      metadata (schema version, id, title, analyst, created), the evidence list with
                   SHA-256 per file, the head (sequence number and hash) of the audit log, and the
                   entry an unfinished operation is about to log ("pending")
    evidence/      copies of the evidence, read-only, never modified after entry
    results/       one folder per analysis (its JSON record, the faces, the candidates' gallery faces)
    audit.log      one JSON entry per line; each carries the SHA-256 of the previous entry (store.audit)
    .lock          the OS advisory lock writers hold (store.lock); holds no evidence

Writing. Every change runs inside :meth:`Case.writing`: the case lock is taken, case.json and the
log are read afresh, the record is checked (a case whose log or head is in doubt is never written
to, so nothing covers the problem) and what a crash of this tool can leave is finished or removed,
and logged. A change then goes: its files to temporary names; case.json announces the log entry
about to be written ("pending"); the entry is appended (the commit point); the files get their
final names; case.json records the new head. A process killed at any moment leaves the previous
state or the new one, and an entry past the head that case.json did not announce is an alarm, not
something to finish.

Reading and verifying never write (:meth:`Case.open`, :meth:`Case.verify`); they hold the lock
shared so that they never see a half-done change.

Hostile input: ``case.json`` and ``audit.log`` are size-capped and schema-checked before use;
evidence names are generated here (never taken from the case file as paths); result paths read
from the log or a result file are checked to name a file inside ``results/``; symbolic links inside
the case are refused; a file that is not what its extension says is refused at entry.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from forensic_face import __version__
from forensic_face.core.errors import (
    CaseError,
    CaseFormatError,
    CaseIntegrityError,
    EvidenceError,
)
from forensic_face.core.hashing import sha256_file
from forensic_face.core.progress import Progress
from forensic_face.store import audit
from forensic_face.store.atomic import atomic_write_bytes, atomic_write_json, fsync_dir
from forensic_face.store.audit import GENESIS, MAX_AUDIT_BYTES, VIEW_EXPORTED, UnitKey, canonical, entry_hash
from forensic_face.store.lock import DEFAULT_WAIT_S, LOCK_FILE, case_lock
from forensic_face.store.verify import VerifyReport
from forensic_face.vision.containers import SNIFF_BYTES, VIDEO_SUFFIXES, sniff_video

log = logging.getLogger(__name__)

__all__ = ["GENESIS", "Case", "EvidenceItem", "VerifyReport", "entry_hash", "sniff_kind"]

SCHEMA_VERSION = 1
CASE_FILE = "case.json"
AUDIT_FILE = "audit.log"
EVIDENCE_DIR = "evidence"
RESULTS_DIR = "results"
MAX_CASE_JSON_BYTES = 4 << 20
MAX_EVIDENCE_BYTES = 8 << 30
#: Longest id / analyst / title a new case takes (a hostile case.json may hold longer ones: they are
#: read, shown shortened and reported by verification as changed since creation).
MAX_FIELD_CHARS = {"id": 100, "analyst": 120, "title": 300}
MAX_READ_FIELD_CHARS = 10_000
#: Free space a write needs beyond its own bytes, so a full disk is refused before any work.
MIN_FREE_BYTES = 32 << 20
#: An analyst's note or reason, characters.
MAX_TEXT_CHARS = 2000
#: Log actions about analyses and evidence after they were recorded.
ANALYSIS_WITHDRAWN = "analysis.withdrawn"
ANALYSIS_NOTE = "analysis.note"
ANALYSIS_FAILED = "analysis.failed"
EVIDENCE_PROVENANCE = "evidence.provenance"
INCOMING = ".incoming-"
STAGING = ".partial-"
ANALYSIS_ID = re.compile(r"^analysis-(\d{3,6})$")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_RESULT_REL = re.compile(r"^results/(?:(analysis-\d{3,6})/)?([A-Za-z0-9_-][A-Za-z0-9._-]{0,159})$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_INCOMING_NAME = re.compile(r"^\.incoming-\d+-[A-Za-z0-9_-][A-Za-z0-9._-]*$")

#: Magic bytes -> (kind, format); checked against the file's extension at entry.
_SIGNATURES: list[tuple[int, bytes, str, str]] = [
    (0, b"\xff\xd8\xff", "image", "JPEG"),
    (0, b"\x89PNG\r\n\x1a\n", "image", "PNG"),
    (0, b"BM", "image", "BMP"),
    (0, b"II*\x00", "image", "TIFF"),
    (0, b"MM\x00*", "image", "TIFF"),
    (0, b"fLaC", "audio", "FLAC"),
    (0, b"OggS", "audio", "Ogg"),
    (0, b"ID3", "audio", "MP3"),
    (0, b"\xff\xfb", "audio", "MP3"),
    (0, b"\xff\xf3", "audio", "MP3"),
]
_EXTENSIONS = {
    "image": {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"},
    "audio": {".wav", ".flac", ".ogg", ".opus", ".oga", ".mp3"},
    "video": VIDEO_SUFFIXES,
}
#: Metadata fixed at creation; its values are in the log's first entry.
META_FIELDS = ("id", "title", "analyst", "created")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def sniff_kind(head: bytes) -> tuple[str, str] | None:
    """(kind, format) from a file's first bytes (:data:`SNIFF_BYTES` of them: video containers need more than
    a magic number to be told from random bytes), or None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio", "WAV"
    for offset, magic, kind, fmt in _SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            return kind, fmt
    video = sniff_video(head)
    return ("video", video) if video else None


@dataclass(frozen=True)
class EvidenceItem:
    name: str  # file name inside evidence/ (generated, safe)
    sha256: str
    size: int
    kind: str  # image | audio | video
    format: str
    original_name: str
    added: str  # ISO time, UTC

    @classmethod
    def from_dict(cls, d: Any) -> EvidenceItem:
        if not isinstance(d, dict):
            raise CaseFormatError("case.json: an evidence entry is not an object")
        try:
            item = cls(name=str(d["name"]), sha256=str(d["sha256"]), size=int(d["size"]), kind=str(d["kind"]),
                       format=str(d.get("format", "")), original_name=str(d.get("original_name", "")),
                       added=str(d.get("added", "")))
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise CaseFormatError(f"case.json: malformed evidence entry ({exc})") from None
        if item.name != _safe_name(item.name) or item.name.startswith(".") or "/" in item.name:
            raise CaseFormatError(f"case.json: evidence name {item.name!r} is not a plain file name")
        if not _HEX64.match(item.sha256):
            raise CaseFormatError(f"case.json: evidence {item.name!r} has no valid SHA-256")
        if item.kind not in _EXTENSIONS:
            raise CaseFormatError(f"case.json: evidence {item.name!r} has unknown kind {item.kind!r}")
        return item


@dataclass(frozen=True)
class LoggedNote:
    """A text the log records about an analysis or an evidence file: who wrote it, when, what."""

    time: str
    analyst: str
    user: str
    text: str

    @classmethod
    def of(cls, entry: dict, text: str) -> LoggedNote:
        return cls(str(entry.get("time", "")), str(entry.get("analyst", "")), str(entry.get("user", "")), text)


@dataclass(frozen=True)
class AnalysisRef:
    """An analysis as the audit log records it: its id, its JSON record inside the case, its files, and
    what was logged about it later (its withdrawal, the analyst's notes)."""

    analysis_id: str
    record: Path | None  # None when the logged path is not a file name inside results/
    files: dict[str, str]  # results/... -> SHA-256 logged (empty for analyses saved file by file)
    withdrawn: LoggedNote | None = None  # why and by whom it was withdrawn; it stays in the case and the report
    notes: tuple[LoggedNote, ...] = ()  # the analyst's notes, oldest first


@dataclass(frozen=True)
class FailedAnalysis:
    """An analysis that was started and failed (nothing of it was saved but this log entry)."""

    when: LoggedNote  # the failure's text is the reason
    frame: str  # the frame evidence it was asked for ("" when none was chosen)
    audio: str


@dataclass(frozen=True)
class Provenance:
    """Where an evidence file came from, as the analyst recorded it (the latest record in the log)."""

    exhibit: str  # exhibit number or reference
    received_from: str  # who handed it over
    received_at: str  # when it was received, as the analyst wrote it
    recorded: LoggedNote  # who recorded this, when


def _safe_name(name: str) -> str:
    base = _SAFE_NAME.sub("_", Path(name).name).strip("._") or "file"
    return base[:120]


def _refuse_symlink(path: Path, what: str) -> None:
    if path.is_symlink():
        raise CaseError(f"{path}: {what} is a symbolic link; a case folder must hold real files only")


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        return ""


def _check_text(what: str, value: str, limit: int | None = None, allow_empty: bool = False) -> str:
    """An analyst's text for the log: printable (lines and tabs allowed), stripped, not empty unless allowed,
    at most ``limit`` (default MAX_TEXT_CHARS) characters; CaseError saying what is wrong otherwise."""
    limit = limit or MAX_TEXT_CHARS
    value = str(value).strip()
    if not value and not allow_empty:
        raise CaseError(f"the {what} is empty; write why")
    if _CONTROL.search(value.replace("\n", " ").replace("\t", " ")):
        raise CaseError(f"the {what} holds control characters; write printable text")
    if len(value) > limit:
        raise CaseError(f"the {what} has {len(value)} characters; at most {limit} are allowed")
    return value


def _about(entries: list[dict], action: str, key: str) -> Iterator[tuple[dict, str, str]]:
    """(entry, analysis id, text under ``key``) of each well-formed ``action`` entry about an analysis."""
    for e in entries:
        d = e.get("details")
        if e.get("action") == action and isinstance(d, dict) and isinstance(d.get("analysis"), str) \
                and isinstance(d.get(key), str):
            yield e, d["analysis"], d[key]


def _check_new_field(name: str, value: str) -> str:
    value = value.strip()
    if _CONTROL.search(value):
        raise CaseError(f"the case {name} must be one line of printable text")
    if len(value) > MAX_FIELD_CHARS[name]:
        raise CaseError(f"the case {name} has {len(value)} characters; at most {MAX_FIELD_CHARS[name]} are allowed")
    return value


class Case:
    """An open case folder. Create with :meth:`create`, open with :meth:`open`; change it only
    through the methods here, which take the case lock and log what they do."""

    def __init__(self, root: Path, meta: dict) -> None:
        self.root = root
        self.meta = meta
        self._entries: list[dict] | None = None  # the log, while this object holds the write lock
        self._key: UnitKey | None = None

    # ---------------------------------------------------------------------------------------- paths
    @property
    def case_file(self) -> Path:
        return self.root / CASE_FILE

    @property
    def audit_file(self) -> Path:
        return self.root / AUDIT_FILE

    @property
    def evidence_dir(self) -> Path:
        return self.root / EVIDENCE_DIR

    @property
    def results_dir(self) -> Path:
        return self.root / RESULTS_DIR

    @property
    def evidence(self) -> list[EvidenceItem]:
        return [EvidenceItem.from_dict(d) for d in self.meta["evidence"]]

    def evidence_path(self, name: str) -> Path:
        """Path of an evidence file by its name in the case (checked to stay inside evidence/)."""
        names = {e.name for e in self.evidence}
        if name not in names:
            raise CaseError(f"no evidence named {name!r} in case {self.meta['id']!r}")
        path = self.evidence_dir / name
        _refuse_symlink(path, "evidence file")
        return path

    def checked_evidence_path(self, item: EvidenceItem) -> Path:
        """The evidence file after re-hashing it: raises EvidenceError when it no longer matches the
        SHA-256 recorded at entry, so an altered file is never analysed."""
        path = self.evidence_path(item.name)
        if not path.is_file():
            raise EvidenceError(f"evidence/{item.name} is missing; run `forensic-face case verify`")
        if sha256_file(path) != item.sha256:
            raise EvidenceError(f"evidence/{item.name} no longer matches the SHA-256 recorded when it was added "
                                "(altered); it is not analysed. Run `forensic-face case verify` and report it")
        return path

    def result_file(self, rel: Any) -> Path | None:
        """The file a logged or recorded path names, when it is ``results/<name>`` or
        ``results/<analysis-id>/<name>`` (no other folder, no hidden name, no link); else None."""
        if not isinstance(rel, str):
            return None
        m = _RESULT_REL.match(rel)
        if m is None:
            return None
        path = self.root / rel
        if path.is_symlink() or (path.parent != self.results_dir and path.parent.is_symlink()):
            return None
        return path

    # ---------------------------------------------------------------------------------------- create/open
    @classmethod
    def create(cls, root: str | Path, case_id: str, analyst: str, title: str = "") -> Case:
        root = Path(root)
        case_id, analyst = _check_new_field("id", case_id), _check_new_field("analyst", analyst)
        title = _check_new_field("title", title)
        if not case_id or not analyst:
            raise CaseError("a case needs a non-empty id and analyst name")
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise CaseError(f"{root}: exists and is not an empty folder; choose a new folder for the case")
        try:
            root.mkdir(parents=True, exist_ok=True)
            (root / EVIDENCE_DIR).mkdir()
            (root / RESULTS_DIR).mkdir()
        except PermissionError:
            raise CaseError(f"{root}: cannot create the case folder here (permission denied); choose a folder "
                            "you can write to") from None
        meta = {"schema": SCHEMA_VERSION, "id": case_id, "title": title, "analyst": analyst, "created": now_iso(),
                "software": f"forensic-face {__version__}", "evidence": [], "log_head": {"seq": 0, "hash": GENESIS}}
        case = cls(root, meta)
        with case_lock(root, exclusive=True):
            case._entries, case._key = [], UnitKey.from_env()
            try:
                entry = case._new_entry("case.created", {k: meta[k] for k in META_FIELDS})
                atomic_write_bytes(case.audit_file, canonical(entry) + b"\n")
                meta["log_head"] = {"seq": entry["seq"], "hash": entry["hash"]}
                atomic_write_json(case.case_file, meta)
                fsync_dir(root)
            finally:
                case._entries = None
        return case

    @classmethod
    def open(cls, root: str | Path) -> Case:
        """Open and validate a case for reading; nothing is written (see :meth:`writing`)."""
        root = Path(root)
        if not root.is_dir():
            raise CaseError(f"{root}: not a case folder (no such folder)")
        for name in (CASE_FILE, AUDIT_FILE, EVIDENCE_DIR, RESULTS_DIR):
            _refuse_symlink(root / name, name)
        return cls(root, _read_case_json(root / CASE_FILE))

    def refresh(self) -> None:
        """Re-read case.json (another process may have changed the case)."""
        self.meta = _read_case_json(self.case_file)

    # ---------------------------------------------------------------------------------------- audit log
    def read_log(self) -> list[dict]:
        """Entries of the audit log (parsed, not verified; see :meth:`verify`)."""
        _refuse_symlink(self.audit_file, AUDIT_FILE)
        return audit.read_log(self.audit_file)

    def append_log(self, action: str, details: dict, progress: Progress | None = None) -> dict:
        """Append one entry to the log (a change of its own: lock, checks, commit)."""
        with self.writing(progress):
            return self._commit(action, details)

    # ---------------------------------------------------------------------------------------- writing
    @contextmanager
    def writing(self, progress: Progress | None = None, wait_s: float = DEFAULT_WAIT_S,
                need_bytes: int = 0) -> Iterator[Case]:
        """Hold the case for a change: lock, fresh state, record checked, crash leftovers dealt with.

        Raises CaseLockedError when another process keeps the case longer than ``wait_s``,
        CaseIntegrityError when the log or its head is in doubt, CaseError on a read-only case or a
        disk without ``need_bytes`` + MIN_FREE_BYTES free. Nothing is written in any of these cases."""
        with case_lock(self.root, exclusive=True, wait_s=wait_s, progress=progress):
            if self._entries is not None:  # nested in a change of this object
                yield self
                return
            self.refresh()
            self._entries, self._key = self.read_log(), UnitKey.from_env()
            try:
                state = self._check_record()
                self._check_space(need_bytes)
                self._recover(state)
                yield self
            finally:
                self._entries = None

    def check_writable(self, need_bytes: int = 0) -> None:
        """Fail now, before long work, if the case could not take a change (lock, record, disk)."""
        with self.writing(need_bytes=need_bytes):
            pass

    def _check_record(self) -> audit.HeadState:
        """How the log ends against case.json's head, once the record is known to be intact (else
        CaseIntegrityError)."""
        entries = self._entries or []
        state = audit.head_state(entries, self.meta["log_head"], self.meta.get("pending"))
        problems = audit.chain_problems(entries) + list(state.problems)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise CaseIntegrityError(
                f"{self.root}: the case's record is in doubt: {problems[0]}{more}. Nothing is written to it, so "
                "that no change covers the problem; run `forensic-face case verify` and report it")
        return state

    def _check_space(self, need_bytes: int) -> None:
        try:
            free = shutil.disk_usage(self.root).free
        except OSError:
            return
        if free < need_bytes + MIN_FREE_BYTES:
            raise CaseError(f"{self.root}: only {free >> 20} MiB free on its disk, and this change needs about "
                            f"{(need_bytes + MIN_FREE_BYTES) >> 20} MiB; free some space and try again "
                            "(nothing was changed)")

    def _new_entry(self, action: str, details: dict) -> dict:
        entries = self._entries
        assert entries is not None, "log entries are written inside Case.writing()"
        prev = entries[-1] if entries else None
        entry = {"seq": (prev["seq"] + 1) if prev else 1, "time": now_iso(), "action": action,
                 "analyst": self.meta.get("analyst", ""), "user": _user(), "software": f"forensic-face {__version__}",
                 "details": details, "prev": prev["hash"] if prev else GENESIS}
        if self._key is not None:
            entry["sealed_by"] = self._key.key_id
        entry["hash"] = entry_hash(entry)
        if self._key is not None:
            entry["seal"] = self._key.seal(entry["hash"])
        return entry

    def _commit(self, action: str, details: dict, finish: Callable[[dict], None] | None = None) -> dict:
        """Announce, append (the commit point), finish, record the head. Inside :meth:`writing`."""
        entry = self._new_entry(action, details)
        line = canonical(entry) + b"\n"
        old = self.audit_file.read_bytes() if self.audit_file.exists() else b""
        if len(old) + len(line) > MAX_AUDIT_BYTES:
            raise CaseError(f"{self.audit_file}: the audit log would exceed {MAX_AUDIT_BYTES >> 20} MiB; "
                            "nothing was changed. Start a new case for further work")
        if old and not old.endswith(b"\n"):
            old += b"\n"
        self.meta["pending"] = {"seq": entry["seq"], "hash": entry["hash"], "action": action}
        atomic_write_json(self.case_file, self.meta)
        atomic_write_bytes(self.audit_file, old + line)
        assert self._entries is not None
        self._entries.append(entry)
        if finish is not None:
            finish(entry)
        self.meta["log_head"] = {"seq": entry["seq"], "hash": entry["hash"]}
        self.meta.pop("pending", None)
        atomic_write_json(self.case_file, self.meta)
        return entry

    # ---------------------------------------------------------------------------------------- recovery
    def _recover(self, state: audit.HeadState) -> None:
        """Finish or undo what a crash of this tool can leave (only that), and log what was done."""
        done: list[str] = []
        if state.pending_logged is not None:
            entry = state.pending_logged
            self._finish(entry)
            self.meta["log_head"] = {"seq": entry["seq"], "hash": entry["hash"]}
            self.meta.pop("pending", None)
            atomic_write_json(self.case_file, self.meta)
            done.append(f"finished the interrupted {entry.get('action')} (seq {entry['seq']})")
        elif state.pending_unlogged is not None:
            self.meta.pop("pending", None)
            atomic_write_json(self.case_file, self.meta)
            done.append(f"discarded an interrupted {state.pending_unlogged.get('action')} that never reached the log "
                        "(it did not happen)")
        withdrawn = sorted(p.name[len(STAGING):] for p in self.results_dir.glob(f"{STAGING}analysis-*"))
        done += self._remove_leftovers()
        if done:
            log.warning("%s: recovery: %s", self.root, "; ".join(done))
            # the ids of staged analyses removed are named, so they are never given to another analysis
            self._commit("case.recovered", {"actions": done, "unrecorded_analyses": withdrawn})

    def _finish(self, entry: dict) -> None:
        """Complete the file work of a logged entry whose change was interrupted after its commit point."""
        action, d = entry.get("action"), entry.get("details") or {}
        if action == "evidence.added":
            item = EvidenceItem.from_dict(d)
            incoming = str(d.get("incoming", ""))
            ok = _INCOMING_NAME.match(incoming) is not None
            self._finish_evidence(item, self.evidence_dir / (incoming if ok else f"{INCOMING}none"))
        elif action == "analysis" and isinstance(d.get("files"), dict):
            self._finish_analysis(str(d.get("analysis", "")), str(d.get("staging", "")), d["files"])

    def _remove_leftovers(self) -> list[str]:
        """Partial copies and staged analyses that never reached the log, and unfinished atomic writes:
        under the exclusive lock no live process owns them."""
        done = []
        for p in sorted(self.evidence_dir.glob(f"{INCOMING}*")):
            done.append(f"removed evidence/{p.name} ({p.stat().st_size} bytes), a copy whose addition never "
                        "reached the log")
            p.unlink()
        for p in sorted(self.results_dir.glob(f"{STAGING}*")):
            if p.is_symlink() or not p.is_dir():
                continue
            done.append(f"removed results/{p.name} ({sum(1 for _ in p.iterdir())} files), an analysis interrupted "
                        "before it was logged")
            shutil.rmtree(p)
        for folder in (self.root, self.evidence_dir, self.results_dir):
            for p in sorted(folder.glob(".*.tmp")):
                p.unlink()
                done.append(f"removed {p.relative_to(self.root)}, an unfinished atomic write")
        if done:
            for folder in (self.evidence_dir, self.results_dir, self.root):
                fsync_dir(folder)
        return done

    # ---------------------------------------------------------------------------------------- evidence
    def add_evidence(self, files: list[str | Path], progress: Progress | None = None) -> list[EvidenceItem]:
        """Copy files into evidence/ (hashing while copying), make them read-only, log each.

        The source files are only read. A file whose content is already in the case is skipped
        (logged as such). Raises :class:`EvidenceError` before copying anything if a file is
        missing, empty, too large, a link, or not what its extension says."""
        checked = [self._check_source(Path(f)) for f in files]
        total = sum(src.stat().st_size for src, _, _ in checked)
        added = []
        with self.writing(progress, need_bytes=total):
            for i, (src, kind, fmt) in enumerate(checked):
                if progress is not None:
                    progress.update(i, len(checked), f"copying {src.name}")
                added.append(self._add_one(src, kind, fmt, progress))
        if progress is not None:
            progress.update(len(checked), len(checked), "done")
        return [a for a in added if a is not None]

    def _check_source(self, src: Path) -> tuple[Path, str, str]:
        if src.is_symlink():
            raise EvidenceError(f"{src}: is a symbolic link; add the file it points to instead")
        if not src.is_file():
            raise EvidenceError(f"{src}: no such file")
        size = src.stat().st_size
        if size == 0:
            raise EvidenceError(f"{src}: the file is empty")
        if size > MAX_EVIDENCE_BYTES:
            raise EvidenceError(f"{src}: larger than {MAX_EVIDENCE_BYTES >> 30} GiB")
        try:
            with open(src, "rb") as fh:
                head = fh.read(SNIFF_BYTES)
        except OSError as exc:
            raise EvidenceError(f"{src}: cannot be read ({exc.strerror})") from None
        sniffed = sniff_kind(head)
        ext = src.suffix.lower()
        if sniffed is None:
            raise EvidenceError(f"{src}: not a recognised image, audio or video file (first bytes {head[:8]!r})")
        kind, fmt = sniffed
        if ext not in _EXTENSIONS[kind]:
            raise EvidenceError(f"{src}: the content is {fmt} ({kind}) but the extension is {ext or 'missing'}; "
                                "rename it to match its content before adding it")
        return src, kind, fmt

    def _copy_in(self, src: Path, progress: Progress | None) -> tuple[Path, str, int]:
        """Copy a source into evidence/ under a temporary name, hashing it; removed again on any failure."""
        incoming = self.evidence_dir / f"{INCOMING}{os.getpid()}-{_safe_name(src.name)}"
        h, size = hashlib.sha256(), 0
        try:
            with open(src, "rb") as fin, open(incoming, "wb") as fout:
                for block in iter(lambda: fin.read(1 << 20), b""):
                    h.update(block)
                    fout.write(block)
                    size += len(block)
                    if progress is not None and size % (64 << 20) == 0:
                        progress.check()
                fout.flush()
                os.fsync(fout.fileno())
        except BaseException:
            incoming.unlink(missing_ok=True)
            raise
        return incoming, h.hexdigest(), size

    def _add_one(self, src: Path, kind: str, fmt: str, progress: Progress | None) -> EvidenceItem | None:
        incoming, digest, size = self._copy_in(src, progress)
        dup = next((e for e in self.evidence if e.sha256 == digest), None)
        if dup is not None:
            incoming.unlink()
            self._commit("evidence.duplicate_skipped", {"source": str(src), "sha256": digest, "same_as": dup.name})
            return None
        item = EvidenceItem(name=self._unique_name(_safe_name(src.name)), sha256=digest, size=size, kind=kind,
                            format=fmt, original_name=src.name, added=now_iso())
        try:
            self._commit("evidence.added", {**asdict(item), "source": str(src.resolve()), "incoming": incoming.name},
                         finish=lambda _e: self._finish_evidence(item, incoming))
        except BaseException:
            last = (self._entries or [{}])[-1]
            logged = last.get("action") == "evidence.added" and (last.get("details") or {}).get("name") == item.name
            if not logged:
                incoming.unlink(missing_ok=True)  # the log entry was not written: the addition did not happen
            raise
        return item

    def _finish_evidence(self, item: EvidenceItem, incoming: Path) -> None:
        """Give a logged addition its final name, make it read-only, list it in case.json (memory)."""
        final = self.evidence_dir / item.name
        if incoming.name.startswith(INCOMING) and incoming.is_file() and not final.exists():
            if sha256_file(incoming) != item.sha256:
                raise CaseIntegrityError(f"{incoming}: does not hold the content its log entry records; nothing "
                                         "was changed. Run `forensic-face case verify` and report it")
            os.replace(incoming, final)
            fsync_dir(self.evidence_dir)
        if not final.is_file() or final.is_symlink() or sha256_file(final) != item.sha256:
            raise CaseIntegrityError(f"evidence/{item.name}: the logged addition cannot be finished (the file is "
                                     "missing or holds other content); nothing was changed. Run "
                                     "`forensic-face case verify` and report it")
        os.chmod(final, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        if not any(e["name"] == item.name for e in self.meta["evidence"]):
            self.meta["evidence"].append(asdict(item))

    def _unique_name(self, name: str) -> str:
        taken = {e["name"] for e in self.meta["evidence"]} | {p.name for p in self.evidence_dir.iterdir()}
        taken |= {str((e.get("details") or {}).get("name")) for e in self._entries or []
                  if e.get("action") == "evidence.added"}
        stem, suffix = Path(name).stem, Path(name).suffix
        candidate, k = name, 1
        while candidate in taken:
            k += 1
            candidate = f"{stem}_{k}{suffix}"
        return candidate

    # ---------------------------------------------------------------------------------------- analyses
    def analyses(self, entries: list[dict] | None = None) -> list[AnalysisRef]:
        """The analyses the audit log records, oldest first, each with its record file (checked), its
        withdrawal and its notes. ``entries``: the log as just read (read here when None)."""
        entries = self.read_log() if entries is None else entries
        refs = {}
        for e in entries:
            d = e.get("details")
            if e.get("action") != "analysis" or not isinstance(d, dict):
                continue
            aid = d.get("analysis")
            if not isinstance(aid, str) or not ANALYSIS_ID.match(aid):
                continue
            files = d.get("files") if isinstance(d.get("files"), dict) else {}
            rel = d.get("record") if files else d.get("result")
            record = self.result_file(rel)
            if record is not None and record.name != f"{aid}.json":
                record = None
            refs[aid] = AnalysisRef(aid, record, {str(k): str(v) for k, v in files.items()})
        for e, aid, text in _about(entries, ANALYSIS_WITHDRAWN, "reason"):
            if aid in refs and refs[aid].withdrawn is None:
                refs[aid] = replace(refs[aid], withdrawn=LoggedNote.of(e, text))
        for e, aid, text in _about(entries, ANALYSIS_NOTE, "note"):
            if aid in refs:
                refs[aid] = replace(refs[aid], notes=(*refs[aid].notes, LoggedNote.of(e, text)))
        return list(refs.values())

    def withdraw_analysis(self, analysis_id: str, reason: str, progress: Progress | None = None) -> dict:
        """Mark a logged analysis withdrawn, with the analyst's reason: logged, never deleted (its files stay,
        the GUI and the report show it as withdrawn). CaseError for an unknown or already withdrawn one."""
        reason = _check_text("reason for withdrawing", reason)
        with self.writing(progress):
            ref = self._logged_analysis(analysis_id)
            if ref.withdrawn is not None:
                raise CaseError(f"{analysis_id} was already withdrawn on {ref.withdrawn.time} ({ref.withdrawn.text})")
            return self._commit(ANALYSIS_WITHDRAWN, {"analysis": analysis_id, "reason": reason})

    def add_note(self, analysis_id: str, note: str, progress: Progress | None = None) -> dict:
        """Log an analyst's note on a logged analysis (shown with it in the GUI and printed in the report)."""
        note = _check_text("note", note)
        with self.writing(progress):
            self._logged_analysis(analysis_id)
            return self._commit(ANALYSIS_NOTE, {"analysis": analysis_id, "note": note})

    def _logged_analysis(self, analysis_id: str) -> AnalysisRef:
        for ref in self.analyses():
            if ref.analysis_id == analysis_id:
                return ref
        raise CaseError(f"the audit log records no analysis {str(analysis_id)[:40]!r}; nothing was changed")

    def log_failed_analysis(self, frame: str | None, audio: str | None, reason: str, parameters: dict) -> dict:
        """Record an analysis that failed (no face found, unusable audio, a gallery refused...): nothing of it
        is saved but this entry, which the report lists."""
        return self.append_log(ANALYSIS_FAILED, {"frame": frame or "", "audio": audio or "",
                                                 "reason": str(reason)[:MAX_TEXT_CHARS], "parameters": parameters})

    def failed_analyses(self, entries: list[dict] | None = None) -> list[FailedAnalysis]:
        """The failed analyses the log records, oldest first (``entries``: the log as just read, or None)."""
        out = []
        for e in self.read_log() if entries is None else entries:
            d = e.get("details")
            if e.get("action") == ANALYSIS_FAILED and isinstance(d, dict):
                out.append(FailedAnalysis(LoggedNote.of(e, str(d.get("reason", ""))), str(d.get("frame", "")),
                                          str(d.get("audio", ""))))
        return out

    def export_view(self, out: str | Path, png: bytes, details: dict, progress: Progress | None = None) -> dict:
        """Write an exported view (a frame, a face crop, a comparison: PNG bytes, its caption drawn in) to
        ``out`` atomically and log it with its SHA-256 and ``details`` (what it shows, the caption, the
        evidence and its hash). The case must be able to take the entry before the file is written."""
        target = Path(out).resolve()
        with self.writing(progress):
            atomic_write_bytes(target, png)
            return self._commit(VIEW_EXPORTED, {"file": str(target), "sha256": hashlib.sha256(png).hexdigest(),
                                                "bytes": len(png), **details})

    # ---------------------------------------------------------------------------------------- provenance
    def set_provenance(self, evidence: str, exhibit: str, received_from: str, received_at: str,
                       progress: Progress | None = None) -> dict:
        """Record where an evidence file came from (exhibit number, who handed it over, when): logged; a later
        record supersedes an earlier one, both stay in the log."""
        fields = {k: _check_text(k.replace("_", " "), v, MAX_FIELD_CHARS["title"], allow_empty=True)
                  for k, v in (("exhibit", exhibit), ("received_from", received_from), ("received_at", received_at))}
        if not any(fields.values()):
            raise CaseError("give at least one of the exhibit number, who it was received from, when")
        with self.writing(progress):
            if not any(e.name == evidence for e in self.evidence):
                raise CaseError(f"no evidence named {str(evidence)[:120]!r} in the case; nothing was changed")
            return self._commit(EVIDENCE_PROVENANCE, {"evidence": evidence, **fields})

    def provenance(self, entries: list[dict] | None = None) -> dict[str, Provenance]:
        """Each evidence file's latest provenance record (files without one are absent; ``entries``: the log as
        just read, or None)."""
        out = {}
        for e in self.read_log() if entries is None else entries:
            d = e.get("details")
            if e.get("action") == EVIDENCE_PROVENANCE and isinstance(d, dict) and isinstance(d.get("evidence"), str):
                out[d["evidence"]] = Provenance(*(str(d.get(k, "")) for k in ("exhibit", "received_from",
                                                                              "received_at")), LoggedNote.of(e, ""))
        return out

    def _next_analysis_id(self) -> str:
        taken = [0]
        for e in self._entries or []:
            d = e.get("details") if isinstance(e.get("details"), dict) else {}
            named = d.get("unrecorded_analyses") if isinstance(d.get("unrecorded_analyses"), list) else []
            for aid in [d.get("analysis"), *named]:
                m = ANALYSIS_ID.match(aid) if isinstance(aid, str) else None
                if m:
                    taken.append(int(m.group(1)))
        for p in self.results_dir.iterdir():
            m = re.match(r"^(?:\.partial-)?analysis-(\d{3,6})", p.name)
            if m:
                taken.append(int(m.group(1)))
        return f"analysis-{max(taken) + 1:03d}"

    def commit_analysis(self, build: Callable[[str], tuple[dict[str, bytes], dict]],
                        progress: Progress | None = None) -> tuple[str, dict]:
        """Write one analysis as a unit and log it: ``build(analysis_id)`` gives its files (plain
        names -> bytes; ``<analysis_id>.json`` among them) and the log entry's details.

        The id is allocated under the lock. The files are written into ``results/.partial-<id>/``,
        the entry (with every file's SHA-256) is logged, then the folder is renamed to
        ``results/<id>/``: a kill leaves the whole analysis or a staged folder that the next change
        removes and logs. Returns (analysis id, log entry)."""
        with self.writing(progress):
            aid = self._next_analysis_id()
            files, details = build(aid)
            if f"{aid}.json" not in files:
                raise ValueError("an analysis needs its JSON record")
            self._check_space(sum(len(b) for b in files.values()))
            staging = self.results_dir / f"{STAGING}{aid}"
            staging.mkdir()
            digests = {}
            for name, data in files.items():
                if _safe_name(name) != name:
                    raise ValueError(f"result file name {name!r} is not a plain file name")
                atomic_write_bytes(staging / name, data)
                digests[f"{RESULTS_DIR}/{aid}/{name}"] = hashlib.sha256(data).hexdigest()
            fsync_dir(staging)
            details = {**details, "analysis": aid, "record": f"{RESULTS_DIR}/{aid}/{aid}.json", "files": digests,
                       "staging": staging.name}
            entry = self._commit("analysis", details,
                                 finish=lambda _e: self._finish_analysis(aid, staging.name, digests))
        return aid, entry

    def _finish_analysis(self, aid: str, staging_name: str, files: dict) -> None:
        if not ANALYSIS_ID.match(aid):
            raise CaseIntegrityError(f"the logged analysis id {aid!r} is not valid; nothing was changed")
        final = self.results_dir / aid
        staging = self.results_dir / staging_name if staging_name.startswith(STAGING) else None
        if not final.exists() and staging is not None and staging.is_dir() and not staging.is_symlink():
            os.replace(staging, final)
            fsync_dir(self.results_dir)
        for rel, digest in files.items():
            path = self.result_file(rel)
            if path is None or not path.is_file() or sha256_file(path) != digest:
                raise CaseIntegrityError(f"{rel}: the logged analysis {aid} cannot be finished (a file is missing or "
                                         "holds other content); nothing was changed. Run `forensic-face case verify`")

    # ---------------------------------------------------------------------------------------- verify
    def verify(self, progress: Progress | None = None, expected_head: str | None = None,
               key: UnitKey | None = None) -> VerifyReport:
        """Check everything the log knows (never writes; see store.verify). ``key`` defaults to the
        unit key named by FORENSIC_FACE_AUDIT_KEY, if any."""
        from forensic_face.store.verify import verify_case

        return verify_case(self, progress, expected_head, key if key is not None else UnitKey.from_env())

    def log_verification(self, report: VerifyReport) -> dict:
        """Record a verification run in the log (refused, like any change, when the record is in doubt)."""
        return self.append_log("case.verified", {
            "ok": report.ok, "problems": len(report.problems), "evidence_checked": report.evidence_checked,
            "log_entries": report.log_entries, "head_checked": report.head,
            "first_problems": report.problems[:5]})


def _check_meta_types(path: Path, meta: dict) -> None:
    for key in ("id", "analyst", "created", "title", "software"):
        value = meta.get(key, "")
        if key in ("id", "analyst", "created") and key not in meta:
            raise CaseFormatError(f"{path}: field {key!r} is missing")
        if not isinstance(value, str):
            raise CaseFormatError(f"{path}: field {key!r} is not text")
        if len(value) > MAX_READ_FIELD_CHARS:
            raise CaseFormatError(f"{path}: field {key!r} has {len(value)} characters (more than "
                                  f"{MAX_READ_FIELD_CHARS}); the case file was edited outside the tool")
    if not isinstance(meta.get("evidence"), list):
        raise CaseFormatError(f"{path}: field 'evidence' is missing or not a list")
    head = meta.get("log_head")
    if not isinstance(head, dict) or not isinstance(head.get("seq"), int) or isinstance(head.get("seq"), bool) \
            or head["seq"] < 0 or not isinstance(head.get("hash"), str) or not _HEX64.match(head["hash"]):
        raise CaseFormatError(f"{path}: field 'log_head' is missing or malformed")
    pending = meta.get("pending")
    if pending is not None and (not isinstance(pending, dict) or not isinstance(pending.get("seq"), int)
                                or not isinstance(pending.get("hash"), str)):
        raise CaseFormatError(f"{path}: field 'pending' is malformed")


def _read_case_json(path: Path) -> dict:
    _refuse_symlink(path, CASE_FILE)
    if not path.is_file():
        raise CaseFormatError(f"{path.parent}: not a case folder (no {CASE_FILE})")
    size = path.stat().st_size
    if size > MAX_CASE_JSON_BYTES:
        raise CaseFormatError(f"{path}: {size} bytes, more than the {MAX_CASE_JSON_BYTES >> 20} MiB a case file "
                              "may have; refusing to read it")
    try:
        meta = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CaseFormatError(f"{path}: not valid JSON ({exc}); the case file is damaged") from None
    except PermissionError:
        raise CaseError(f"{path}: cannot be read (permission denied)") from None
    if not isinstance(meta, dict):
        raise CaseFormatError(f"{path}: the top level is not an object")
    schema = meta.get("schema")
    if schema != SCHEMA_VERSION:
        raise CaseFormatError(f"{path}: schema version {schema!r} is not supported (this version of "
                              f"forensic-face reads version {SCHEMA_VERSION}); open it with the version that made it")
    _check_meta_types(path, meta)
    names = [EvidenceItem.from_dict(d).name for d in meta["evidence"]]
    if len(set(names)) != len(names):
        raise CaseFormatError(f"{path}: the same evidence name appears twice")
    return meta


def copy_case(src: Path, dst: Path) -> None:
    """Copy a whole case folder (for handing over), refusing symbolic links; taken under the case's
    shared lock so the copy is of one state."""
    with case_lock(src, exclusive=False):
        shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns(LOCK_FILE))
    for p in dst.rglob("*"):
        if p.is_symlink():
            raise CaseError(f"{p}: the case holds a symbolic link; refusing to hand it over")
