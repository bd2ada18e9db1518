"""Case folders with chain of custody.

Layout of a case folder::

    case.json      metadata (schema version, id, title, analyst, created), the evidence list with
                   SHA-256 per file, the head (sequence number and hash) of the audit log
    evidence/      copies of the evidence, read-only, never modified after entry
    results/       analysis outputs (reconstructions, searches) with model version and parameters
    audit.log      one JSON entry per line; each carries the SHA-256 of the previous entry

Durability: every file is replaced atomically (temp file, fsync, rename, fsync of the folder). A
change that touches several files has one commit point, the audit log: the entry is written
first, then the other files. Opening a case for writing finishes (rolls forward) an operation
whose entry is in the log but whose other files were not yet written, and removes the leftovers
(partial copies) of operations that never reached the log. So a process killed at any moment
leaves the previous or the new state.

Hostile input: ``case.json`` and ``audit.log`` are size-capped and schema-checked before use;
evidence names are generated here (never taken from the case file as paths); symbolic links
inside the case are refused; a file that is not what its extension says is refused at entry.
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
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from forensic_face import __version__
from forensic_face.core.errors import CaseError, CaseFormatError, EvidenceError
from forensic_face.core.hashing import sha256_file
from forensic_face.core.progress import Progress
from forensic_face.store.atomic import atomic_write_bytes, atomic_write_json, fsync_dir

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
CASE_FILE = "case.json"
AUDIT_FILE = "audit.log"
EVIDENCE_DIR = "evidence"
RESULTS_DIR = "results"
MAX_CASE_JSON_BYTES = 4 << 20
MAX_AUDIT_BYTES = 64 << 20
MAX_EVIDENCE_BYTES = 8 << 30
GENESIS = "0" * 64
_INCOMING = ".incoming-"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

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
    (0, b"\x1a\x45\xdf\xa3", "video", "Matroska/WebM"),
    (4, b"ftyp", "video", "MP4/MOV"),
]
_EXTENSIONS = {
    "image": {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"},
    "audio": {".wav", ".flac", ".ogg", ".opus", ".oga", ".mp3"},
    "video": {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm"},
}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def sniff_kind(head: bytes) -> tuple[str, str] | None:
    """(kind, format) from a file's first bytes, or None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio", "WAV"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video", "AVI"
    for offset, magic, kind, fmt in _SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            return kind, fmt
    return None


def _canonical(entry: dict) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def entry_hash(entry: dict) -> str:
    """SHA-256 of an audit entry without its own ``hash`` field (canonical JSON)."""
    return hashlib.sha256(_canonical({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


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
        except (KeyError, TypeError, ValueError) as exc:
            raise CaseFormatError(f"case.json: malformed evidence entry ({exc})") from None
        if item.name != _safe_name(item.name) or item.name.startswith(".") or "/" in item.name:
            raise CaseFormatError(f"case.json: evidence name {item.name!r} is not a plain file name")
        if not _HEX64.match(item.sha256):
            raise CaseFormatError(f"case.json: evidence {item.name!r} has no valid SHA-256")
        if item.kind not in _EXTENSIONS:
            raise CaseFormatError(f"case.json: evidence {item.name!r} has unknown kind {item.kind!r}")
        return item


@dataclass
class VerifyReport:
    ok: bool
    evidence_checked: int
    log_entries: int
    problems: list[str] = field(default_factory=list)  # each names the file or entry
    notes: list[str] = field(default_factory=list)  # not tampering (e.g. an interrupted operation)
    evidence_status: dict[str, str] = field(default_factory=dict)  # name -> verified | altered | missing | link

    def as_dict(self) -> dict:
        return asdict(self)


def _safe_name(name: str) -> str:
    base = _SAFE_NAME.sub("_", Path(name).name).strip("._") or "file"
    return base[:120]


def _refuse_symlink(path: Path, what: str) -> None:
    if path.is_symlink():
        raise CaseError(f"{path}: {what} is a symbolic link; a case folder must hold real files only")


class Case:
    """An open case folder. Create with :meth:`create`, open with :meth:`open`."""

    def __init__(self, root: Path, meta: dict) -> None:
        self.root = root
        self.meta = meta

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

    # ---------------------------------------------------------------------------------------- create/open
    @classmethod
    def create(cls, root: str | Path, case_id: str, analyst: str, title: str = "") -> Case:
        root = Path(root)
        if not case_id.strip() or not analyst.strip():
            raise CaseError("a case needs a non-empty id and analyst name")
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise CaseError(f"{root}: exists and is not an empty folder; choose a new folder for the case")
        root.mkdir(parents=True, exist_ok=True)
        (root / EVIDENCE_DIR).mkdir()
        (root / RESULTS_DIR).mkdir()
        meta = {"schema": SCHEMA_VERSION, "id": case_id.strip(), "title": title.strip(),
                "analyst": analyst.strip(), "created": now_iso(), "software": f"forensic-face {__version__}",
                "evidence": [], "log_head": {"seq": 0, "hash": GENESIS}}
        case = cls(root, meta)
        case.append_log("case.created", {"id": meta["id"], "title": meta["title"], "analyst": meta["analyst"]},
                        write_meta=False)
        atomic_write_json(case.case_file, case.meta)
        fsync_dir(root)
        return case

    @classmethod
    def open(cls, root: str | Path, *, recover: bool = True) -> Case:
        """Open and validate a case; ``recover`` finishes or undoes an interrupted operation."""
        root = Path(root)
        if not root.is_dir():
            raise CaseError(f"{root}: not a case folder (no such folder)")
        for name in (CASE_FILE, AUDIT_FILE, EVIDENCE_DIR, RESULTS_DIR):
            _refuse_symlink(root / name, name)
        meta = _read_case_json(root / CASE_FILE)
        case = cls(root, meta)
        if recover:
            case._recover()
        return case

    # ---------------------------------------------------------------------------------------- audit log
    def read_log(self) -> list[dict]:
        """Entries of the audit log (parsed, not verified; see :meth:`verify`)."""
        return _read_log(self.audit_file)

    def append_log(self, action: str, details: dict, *, write_meta: bool = True) -> dict:
        """Append one hash-chained entry (atomic rewrite of the log) and update the head in case.json."""
        entries_bytes = self.audit_file.read_bytes() if self.audit_file.exists() else b""
        entries = _read_log(self.audit_file) if entries_bytes else []
        prev = entries[-1] if entries else None
        entry = {"seq": (prev["seq"] + 1) if prev else 1, "time": now_iso(), "action": action,
                 "analyst": self.meta.get("analyst", ""), "user": _user(), "software": f"forensic-face {__version__}",
                 "details": details, "prev": prev["hash"] if prev else GENESIS}
        entry["hash"] = entry_hash(entry)
        if len(entries_bytes) > MAX_AUDIT_BYTES:
            raise CaseError(f"{self.audit_file}: the audit log exceeds {MAX_AUDIT_BYTES >> 20} MiB")
        atomic_write_bytes(self.audit_file, entries_bytes + _canonical(entry) + b"\n")
        self.meta["log_head"] = {"seq": entry["seq"], "hash": entry["hash"]}
        if write_meta:
            atomic_write_json(self.case_file, self.meta)
        return entry

    # ---------------------------------------------------------------------------------------- evidence
    def add_evidence(self, files: list[str | Path], progress: Progress | None = None) -> list[EvidenceItem]:
        """Copy files into evidence/ (hashing while copying), make them read-only, log each.

        The source files are only read. A file whose content is already in the case is skipped
        (logged as such). Raises :class:`EvidenceError` before copying anything if a file is
        missing, empty, too large, a link, or not what its extension says.
        """
        checked = [self._check_source(Path(f)) for f in files]
        added = []
        for i, (src, kind, fmt) in enumerate(checked):
            if progress is not None:
                progress.update(i, len(checked), f"copying {src.name}")
            added.append(self._add_one(src, kind, fmt))
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
        with open(src, "rb") as fh:
            head = fh.read(32)
        sniffed = sniff_kind(head)
        ext = src.suffix.lower()
        if sniffed is None:
            raise EvidenceError(f"{src}: not a recognised image, audio or video file (first bytes {head[:8]!r})")
        kind, fmt = sniffed
        if ext not in _EXTENSIONS[kind]:
            raise EvidenceError(f"{src}: the content is {fmt} ({kind}) but the extension is {ext or 'missing'}; "
                                "rename it to match its content before adding it")
        return src, kind, fmt

    def _add_one(self, src: Path, kind: str, fmt: str) -> EvidenceItem | None:
        incoming = self.evidence_dir / f"{_INCOMING}{os.getpid()}-{_safe_name(src.name)}"
        h = hashlib.sha256()
        size = 0
        with open(src, "rb") as fin, open(incoming, "wb") as fout:
            for block in iter(lambda: fin.read(1 << 20), b""):
                h.update(block)
                fout.write(block)
                size += len(block)
            fout.flush()
            os.fsync(fout.fileno())
        digest = h.hexdigest()
        dup = next((e for e in self.evidence if e.sha256 == digest), None)
        if dup is not None:
            incoming.unlink()
            self.append_log("evidence.duplicate_skipped", {"source": str(src), "sha256": digest, "same_as": dup.name})
            return None
        name = self._unique_name(_safe_name(src.name))
        item = EvidenceItem(name=name, sha256=digest, size=size, kind=kind, format=fmt, original_name=src.name,
                            added=now_iso())
        # commit point: the log entry; then the file's final name, then case.json (roll-forward on open)
        self.append_log("evidence.added", {**asdict(item), "source": str(src.resolve()), "incoming": incoming.name},
                        write_meta=False)
        self._finish_add(item, incoming)
        return item

    def _finish_add(self, item: EvidenceItem, incoming: Path) -> None:
        final = self.evidence_dir / item.name
        if incoming.exists():
            os.replace(incoming, final)
            fsync_dir(self.evidence_dir)
        if final.exists():
            os.chmod(final, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        if not any(e["name"] == item.name for e in self.meta["evidence"]):
            self.meta["evidence"].append(asdict(item))
        atomic_write_json(self.case_file, self.meta)

    def _unique_name(self, name: str) -> str:
        taken = {e["name"] for e in self.meta["evidence"]} | {p.name for p in self.evidence_dir.iterdir()}
        stem, suffix = Path(name).stem, Path(name).suffix
        candidate, k = name, 1
        while candidate in taken:
            k += 1
            candidate = f"{stem}_{k}{suffix}"
        return candidate

    # ---------------------------------------------------------------------------------------- results
    def save_result(self, name: str, data: bytes | dict, action: str, details: dict) -> Path:
        """Write a result file into results/ atomically and log it with its hash."""
        fname = _safe_name(name)
        payload = data if isinstance(data, bytes) else (json.dumps(data, indent=2) + "\n").encode()
        path = self.results_dir / fname
        atomic_write_bytes(path, payload)
        self.append_log(action, {**details, "result": f"{RESULTS_DIR}/{fname}",
                                 "sha256": hashlib.sha256(payload).hexdigest()})
        return path

    # ---------------------------------------------------------------------------------------- recovery
    def _recover(self) -> None:
        entries = _read_log(self.audit_file)
        listed = {e["name"] for e in self.meta["evidence"]}
        pending_incoming = set()
        for entry in entries:
            if entry.get("action") != "evidence.added":
                continue
            d = entry.get("details", {})
            try:
                item = EvidenceItem.from_dict(d)
            except CaseFormatError:
                continue
            if item.name not in listed:
                incoming = self.evidence_dir / _safe_name(str(d.get("incoming", "")))
                if incoming.exists() or (self.evidence_dir / item.name).exists():
                    log.warning("%s: finishing the interrupted addition of %s", self.root, item.name)
                    self._finish_add(item, incoming)
                    listed.add(item.name)
                    pending_incoming.add(incoming.name)
        for leftover in self.evidence_dir.glob(f"{_INCOMING}*"):
            if leftover.name not in pending_incoming:
                leftover.unlink()  # a copy that never reached the log: the operation did not happen
        for tmp in list(self.root.glob(".*.tmp")) + list(self.evidence_dir.glob(".*.tmp")) + \
                list(self.results_dir.glob(".*.tmp")):
            tmp.unlink()  # an atomic write that never reached its rename
        if entries and self.meta["log_head"]["seq"] != entries[-1]["seq"]:
            self.meta["log_head"] = {"seq": entries[-1]["seq"], "hash": entries[-1]["hash"]}
            atomic_write_json(self.case_file, self.meta)

    # ---------------------------------------------------------------------------------------- verify
    def verify(self, progress: Progress | None = None) -> VerifyReport:
        """Re-hash the evidence and check the audit chain; every problem names the file or entry."""
        problems, notes, status = [], [], {}
        items = self.evidence
        for i, item in enumerate(items):
            if progress is not None:
                progress.update(i, len(items), f"hashing {item.name}")
            path = self.evidence_dir / item.name
            if path.is_symlink():
                problems.append(f"evidence/{item.name}: replaced by a symbolic link")
                status[item.name] = "link"
            elif not path.is_file():
                problems.append(f"evidence/{item.name}: missing")
                status[item.name] = "missing"
            else:
                digest = sha256_file(path)
                status[item.name] = "verified" if digest == item.sha256 else "altered"
                if digest != item.sha256:
                    problems.append(f"evidence/{item.name}: altered (SHA-256 {digest[:16]}…, "
                                    f"recorded {item.sha256[:16]}…)")
        listed = {e.name for e in items}
        for path in sorted(self.evidence_dir.iterdir()):
            if path.name not in listed:
                if path.name.startswith(_INCOMING):
                    notes.append(f"evidence/{path.name}: partial copy of an interrupted addition")
                else:
                    problems.append(f"evidence/{path.name}: added outside the tool (not in case.json)")
        try:
            entries = _read_log(self.audit_file)
        except CaseFormatError as exc:
            problems.append(str(exc))
            entries = []
        problems += chain_problems(entries, self.meta.get("log_head"))
        logged = {e.get("details", {}).get("name") for e in entries if e.get("action") == "evidence.added"}
        for item in items:
            if item.name not in logged:
                problems.append(f"evidence/{item.name}: listed in case.json but its addition is not in the audit log")
        if progress is not None:
            progress.update(len(items), len(items), "done")
        return VerifyReport(ok=not problems, evidence_checked=len(items), log_entries=len(entries),
                            problems=problems, notes=notes, evidence_status=status)


def chain_problems(entries: list[dict], head: dict | None) -> list[str]:
    """Edited, removed or reordered audit entries, each named by its position and sequence number."""
    problems = []
    prev_hash, expected_seq = GENESIS, 1
    for pos, entry in enumerate(entries, start=1):
        seq = entry.get("seq")
        if entry.get("hash") != entry_hash(entry):
            problems.append(f"audit.log line {pos} (seq {seq}, {entry.get('action')}): edited "
                            "(its content no longer matches its hash)")
        if seq != expected_seq:
            if isinstance(seq, int) and seq > expected_seq:
                problems.append(f"audit.log line {pos}: entries {expected_seq}..{seq - 1} removed "
                                f"(expected seq {expected_seq}, found {seq})")
            else:
                problems.append(f"audit.log line {pos}: out of order (expected seq {expected_seq}, found {seq})")
        elif entry.get("prev") != prev_hash:
            problems.append(f"audit.log line {pos} (seq {seq}): does not follow the entry before it "
                            "(chain broken: an entry was replaced or reordered)")
        prev_hash = entry.get("hash")
        expected_seq = (seq + 1) if isinstance(seq, int) else expected_seq + 1
    if head and entries:
        last = entries[-1]
        if head.get("seq", 0) > last.get("seq", 0):
            problems.append(f"audit.log: entries after seq {last.get('seq')} up to {head.get('seq')} removed "
                            "(case.json records a later head)")
        elif head.get("seq") == last.get("seq") and head.get("hash") != last.get("hash"):
            problems.append(f"audit.log: the last entry (seq {last.get('seq')}) differs from the head recorded "
                            "in case.json")
    elif head and head.get("seq", 0) > 0:
        problems.append("audit.log: missing or empty, but case.json records entries")
    return problems


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        return ""


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
    if not isinstance(meta, dict):
        raise CaseFormatError(f"{path}: the top level is not an object")
    schema = meta.get("schema")
    if schema != SCHEMA_VERSION:
        raise CaseFormatError(f"{path}: schema version {schema!r} is not supported (this version of "
                              f"forensic-face reads version {SCHEMA_VERSION}); open it with the version that made it")
    for key, typ in (("id", str), ("analyst", str), ("created", str), ("evidence", list), ("log_head", dict)):
        if not isinstance(meta.get(key), typ):
            raise CaseFormatError(f"{path}: field {key!r} is missing or not a {typ.__name__}")
    names = [EvidenceItem.from_dict(d).name for d in meta["evidence"]]
    if len(set(names)) != len(names):
        raise CaseFormatError(f"{path}: the same evidence name appears twice")
    return meta


def _read_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    _refuse_symlink(path, AUDIT_FILE)
    size = path.stat().st_size
    if size > MAX_AUDIT_BYTES:
        raise CaseFormatError(f"{path}: {size} bytes, more than {MAX_AUDIT_BYTES >> 20} MiB; refusing to read it")
    entries = []
    for pos, line in enumerate(path.read_bytes().split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise CaseFormatError(f"{path} line {pos}: not a valid JSON entry "
                                  "(the log was edited or damaged)") from None
        if not isinstance(entry, dict):
            raise CaseFormatError(f"{path} line {pos}: not a JSON object")
        entries.append(entry)
    return entries


def copy_case(src: Path, dst: Path) -> None:
    """Copy a whole case folder (for handing over), refusing symbolic links."""
    shutil.copytree(src, dst, symlinks=True)
    for p in dst.rglob("*"):
        if p.is_symlink():
            raise CaseError(f"{p}: the case holds a symbolic link; refusing to hand it over")
