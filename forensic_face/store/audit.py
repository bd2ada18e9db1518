"""The audit log of a case: one JSON entry per line, each carrying the SHA-256 of the one before.

An entry is ``{seq, time, action, analyst, user, software, details, prev, hash}``; ``hash`` is the
SHA-256 of the entry's canonical JSON without ``hash`` and ``seal``. ``case.json`` records the head
(sequence number and hash of the last entry), so removing entries at the end is seen too.

Anchors beyond the folder. Anyone who can write the folder can rewrite the whole log and recompute
every hash; two things catch that:

- the head hash written down by the examiner (``case verify`` prints it, the report carries it):
  ``verify(expected_head=...)`` says whether that entry is still in the chain, unchanged;
- an optional unit key (a file named by ``FORENSIC_FACE_AUDIT_KEY``, kept outside the case): every
  entry written with the key carries ``sealed_by`` (the key's id, inside the hash) and ``seal`` (an
  HMAC-SHA256 of the entry's hash); without the key nobody can make a seal that verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path

from forensic_face.core.errors import CaseError, CaseFormatError

GENESIS = "0" * 64
MAX_AUDIT_BYTES = 64 << 20
#: Environment variable naming the unit's key file (never stored in a case).
KEY_ENV = "FORENSIC_FACE_AUDIT_KEY"
_UNHASHED = ("hash", "seal")
#: Files written from a case (reports, exported views): logged with their SHA-256; one may lie in the case folder.
REPORT_EXPORTED = "report.exported"
VIEW_EXPORTED = "view.exported"
EXPORT_ACTIONS = (REPORT_EXPORTED, VIEW_EXPORTED)


def canonical(entry: dict) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def entry_hash(entry: dict) -> str:
    """SHA-256 of an audit entry without its own ``hash`` and ``seal`` fields (canonical JSON)."""
    return hashlib.sha256(canonical({k: v for k, v in entry.items() if k not in _UNHASHED})).hexdigest()


@dataclass(frozen=True)
class UnitKey:
    """The unit's secret for sealing audit entries; ``key_id`` names it without revealing it."""

    secret: bytes

    @property
    def key_id(self) -> str:
        return hashlib.sha256(b"forensic-face audit key id\x00" + self.secret).hexdigest()[:16]

    def seal(self, entry_hash_hex: str) -> str:
        return hmac.new(self.secret, entry_hash_hex.encode("ascii"), hashlib.sha256).hexdigest()

    @classmethod
    def from_file(cls, path: str | Path) -> UnitKey:
        p = Path(path)
        try:
            text = p.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise CaseError(f"{p}: the audit key file cannot be read ({exc}); check {KEY_ENV}") from None
        try:
            secret = bytes.fromhex(text)
        except ValueError:
            raise CaseError(f"{p}: the audit key file must hold hexadecimal digits (made by "
                            "`forensic-face case keygen`)") from None
        if len(secret) < 32:
            raise CaseError(f"{p}: the audit key is shorter than 32 bytes; make a new one with "
                            "`forensic-face case keygen`")
        return cls(secret)

    @classmethod
    def from_env(cls) -> UnitKey | None:
        path = os.environ.get(KEY_ENV)
        return cls.from_file(path) if path else None


def new_key_file(path: str | Path) -> UnitKey:
    """Write a new random 256-bit unit key, readable by its owner only; refuses to overwrite."""
    p = Path(path)
    secret = os.urandom(32)
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CaseError(f"{p}: exists; a unit key is never overwritten (the cases sealed with it need it)") from None
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(secret.hex() + "\n")
    return UnitKey(secret)


def read_log(path: Path) -> list[dict]:
    """The entries of an audit log file, parsed (not verified); [] when it does not exist."""
    if not path.exists():
        return []
    if path.is_symlink():
        raise CaseError(f"{path}: audit.log is a symbolic link; a case folder must hold real files only")
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


def chain_problems(entries: list[dict]) -> list[str]:
    """Edited, removed or reordered audit entries, each named by its position and sequence number
    (the head in case.json is checked by :func:`head_state`)."""
    problems = []
    prev_hash, expected_seq = GENESIS, 1
    for pos, entry in enumerate(entries, start=1):
        seq = entry.get("seq")
        if entry.get("hash") != entry_hash(entry):
            problems.append(f"audit.log line {pos} (seq {seq}, {entry.get('action')}): edited "
                            "(its content no longer matches its hash)")
        if seq != expected_seq:
            if isinstance(seq, int) and not isinstance(seq, bool) and seq > expected_seq:
                problems.append(f"audit.log line {pos}: entries {expected_seq}..{seq - 1} removed "
                                f"(expected seq {expected_seq}, found {seq})")
            else:
                problems.append(f"audit.log line {pos}: out of order (expected seq {expected_seq}, found {seq})")
        elif entry.get("prev") != prev_hash:
            problems.append(f"audit.log line {pos} (seq {seq}): does not follow the entry before it "
                            "(chain broken: an entry was replaced or reordered)")
        prev_hash = entry.get("hash")
        expected_seq = (seq + 1) if isinstance(seq, int) and not isinstance(seq, bool) else expected_seq + 1
    return problems


@dataclass(frozen=True)
class HeadState:
    """How the log's end relates to the head and the pending operation recorded in case.json.

    ``pending_logged``: the log holds exactly one entry past the head, the one case.json announced
    before writing it (an operation interrupted after its commit point: the next write finishes it).
    ``pending_unlogged``: case.json announced an entry that never reached the log (interrupted before
    its commit point: it did not happen)."""

    problems: tuple[str, ...] = ()
    pending_logged: dict | None = None
    pending_unlogged: dict | None = None


def _seq(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


def head_state(entries: list[dict], head: dict, pending: dict | None) -> HeadState:
    """Compare the log's last entries with the head and the pending entry case.json records."""
    head_seq, head_hash = _seq(head.get("seq")), head.get("hash")
    last_seq = _seq(entries[-1].get("seq")) if entries else 0
    if head_seq < 0:
        return HeadState((f"case.json: the recorded head {head!r} is not valid",))
    if last_seq < head_seq:
        missing = f"{last_seq + 1}..{head_seq}" if last_seq + 1 < head_seq else str(head_seq)
        return HeadState((f"audit.log: entries {missing} removed (case.json records entries up to seq {head_seq}, "
                          f"the log ends at seq {last_seq})",))
    at_head = next((e for e in entries if e.get("seq") == head_seq), None) if head_seq else None
    if head_seq and (at_head is None or at_head.get("hash") != head_hash):
        return HeadState((f"audit.log: entry seq {head_seq} differs from the head recorded in case.json "
                          "(the log was rewritten from there on)",))
    beyond = [e for e in entries if _seq(e.get("seq")) > head_seq]
    pend = pending if isinstance(pending, dict) else None
    if not beyond:
        return HeadState(pending_unlogged=pend)
    first = beyond[0]
    if pend is not None and len(beyond) == 1 and first.get("seq") == pend.get("seq") \
            and first.get("hash") == pend.get("hash"):
        return HeadState(pending_logged=first)
    seqs = f"{beyond[0].get('seq')}..{beyond[-1].get('seq')}" if len(beyond) > 1 else str(first.get("seq"))
    return HeadState((f"audit.log: entries {seqs} follow the head recorded in case.json (seq {head_seq}) and no "
                      "interrupted operation of this tool announced them: appended outside the tool",))


def seal_problems(entries: list[dict], key: UnitKey | None) -> tuple[list[str], list[str]]:
    """(problems, notes) about the entries' seals. With the unit key every entry must carry a valid
    seal of that key; without it, sealed entries only get a note that they cannot be checked here."""
    sealed = [e for e in entries if "seal" in e or "sealed_by" in e]
    if key is None:
        if not sealed:
            return [], []
        ids = sorted({str(e.get("sealed_by")) for e in sealed})
        return [], [f"{len(sealed)} of {len(entries)} audit entries are sealed with unit key {', '.join(ids)}; "
                    f"set {KEY_ENV} to that key's file to check the seals"]
    problems, unsealed = [], []
    for pos, e in enumerate(entries, start=1):
        if "seal" not in e:
            unsealed.append(str(e.get("seq", pos)))
        elif e.get("sealed_by") != key.key_id:
            problems.append(f"audit.log line {pos} (seq {e.get('seq')}): sealed with another key "
                            f"({e.get('sealed_by')!r}, not {key.key_id})")
        elif not isinstance(e.get("seal"), str) or not hmac.compare_digest(e["seal"], key.seal(entry_hash(e))):
            problems.append(f"audit.log line {pos} (seq {e.get('seq')}, {e.get('action')}): its seal does not verify "
                            "with the unit key (written or changed without the key)")
    if unsealed:
        shown = ", ".join(unsealed[:8]) + (" …" if len(unsealed) > 8 else "")
        problems.append(f"audit.log: {len(unsealed)} entries carry no seal of unit key {key.key_id} (seq {shown}): "
                        "written without the key, or their seals were removed")
    return problems, []


def anchor_problems(entries: list[dict], expected: str) -> list[str]:
    """Whether a head the examiner wrote down (``HASH`` or ``SEQ:HASH``, a prefix of 12+ hex digits
    is enough) is still in the chain: if not, the log was rewritten after it was noted."""
    text = expected.strip().lower()
    seq_text, _, digest = text.rpartition(":")
    if len(digest) < 12 or any(c not in "0123456789abcdef" for c in digest):
        raise CaseError(f"--expect-head {expected!r}: give the head hash noted earlier (at least 12 hexadecimal "
                        "digits), optionally as SEQ:HASH")
    hits = [e for e in entries if str(e.get("hash", "")).startswith(digest)]
    if seq_text and seq_text.isdigit():
        hits = [e for e in hits if e.get("seq") == int(seq_text)]
    if not hits:
        return [f"audit.log: the head noted earlier ({expected.strip()}) is no longer in the log: the log was "
                "rewritten after it was noted"]
    return []
