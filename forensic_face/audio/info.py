"""What an audio file says about itself, read from its header, and the limits checked before decoding.

:func:`audio_info` opens the file without decoding a sample (``soundfile.info``; for files only the
librosa/audioread fallback reads, audioread's header probe) and refuses recordings that cannot be
decoded within bounded memory. :func:`plan_read` turns a request (whole file, its first seconds,
or a window around a time) into the frames to decode, checked against the limits below, so that a
1-hour or 10-hour recording costs the memory of the window that is analysed, not of the file.

Limits (module constants, so a deployment with more memory may raise them):

- :data:`MAX_FILE_S` (24 h): a header that claims a longer recording is taken as corrupt;
- :data:`MAX_WHOLE_S` (10 min): longer recordings are never decoded whole, only as a window;
- :data:`MAX_DECODE_BYTES` (512 MiB): the decoded float32 samples of one read, all channels;
- :data:`MAX_FALLBACK_BYTES` (512 MiB): files that libsndfile cannot read are refused above this
  size before the fallback decoder (which has no reliable length before decoding) is started.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import soundfile as sf

from forensic_face.core.errors import AudioDecodeError, SampleRateError

log = logging.getLogger(__name__)

#: Below this rate the 80-4000 Hz speech band cannot be represented (Nyquist = rate / 2).
MIN_SR = 8000
#: A header claiming a longer recording than this (s) is refused as corrupt or absurd.
MAX_FILE_S = 24 * 3600.0
#: Recordings longer than this (s) are only ever decoded as a window (10 min at 48 kHz stereo is
#: 230 MB of float32 samples, and the analysis of 10 min at 16 kHz peaks near 1 GB).
MAX_WHOLE_S = 600.0
#: Decoded float32 samples (all channels) one read may produce, bytes.
MAX_DECODE_BYTES = 512 << 20
#: Files only the librosa/audioread fallback can read are refused above this size, bytes.
MAX_FALLBACK_BYTES = 512 << 20
#: Length of the window decoded around the analysis time of a recording longer than it, s. A file
#: no longer than this is read whole, so its features are those of a whole-file load.
ANALYSIS_SPAN_S = 60.0

#: Bits per sample of libsndfile's integer subtypes; used to widen the clip tolerance by one step.
_SUBTYPE_BITS = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32}
#: First bytes of common containers, to say what a file that failed to decode actually is.
_MAGIC = (
    (b"RIFF", "WAV (RIFF)"),
    (b"fLaC", "FLAC"),
    (b"OggS", "Ogg"),
    (b"ID3", "MP3 (ID3 tag)"),
    (b"FORM", "AIFF"),
    (b"\xff\xfb", "MP3"),
    (b"\xff\xf3", "MP3"),
    (b"\xff\xf2", "MP3"),
)


@dataclass(frozen=True)
class AudioInfo:
    """An audio file's header: what decoding it would produce, known before decoding it."""

    path: Path
    sr: int  # sample rate of the recording, Hz
    channels: int
    frames: int  # samples per channel the header announces
    duration_s: float  # frames / sr
    container: str  # e.g. "WAV", "FLAC"; "unknown" for the fallback decoder
    subtype: str | None  # libsndfile subtype such as "PCM_16"; None for the fallback decoder
    decoder: Literal["soundfile", "audioread"]

    @property
    def bits(self) -> int | None:
        """Integer bit depth of the samples, None for float or compressed formats."""
        return _SUBTYPE_BITS.get(self.subtype or "")


@dataclass(frozen=True)
class ReadPlan:
    """Which frames of a file to decode, and why."""

    start: int  # first frame, at the recording's rate
    frames: int  # frames to decode
    to_end: bool  # the read runs to the end of the file (a header may undercount slightly)
    notes: tuple[str, ...] = ()  # for the clip's warnings


def check_file(path: Path) -> None:
    """Raise :class:`AudioDecodeError` unless ``path`` is an existing, non-empty regular file."""
    if not path.exists():
        raise AudioDecodeError(f"audio file not found: {path}")
    if not path.is_file():
        raise AudioDecodeError(f"not a file: {path}; choose an audio file (WAV, FLAC, OGG, MP3)")
    if path.stat().st_size == 0:
        raise AudioDecodeError(f"audio file is empty (0 bytes): {path}; the copy or download may have failed")


def check_rate(sr: int, where: Path | str) -> None:
    """Raise :class:`SampleRateError` for rates that cannot carry the speech band."""
    if sr < MIN_SR:
        raise SampleRateError(
            f"{where}: sample rate {sr} Hz is below {MIN_SR} Hz, so it cannot represent the 80-4000 Hz "
            "speech band; use the original recording at a higher rate"
        )


def sniff(path: Path) -> str:
    """What the first bytes of a file say it is, for error messages."""
    with path.open("rb") as fh:
        head = fh.read(12)
    for magic, label in _MAGIC:
        if head.startswith(magic):
            return label
    return "not a recognised audio container"


def undecodable(path: Path, sf_reason: str) -> AudioDecodeError:
    """The error for a file neither libsndfile nor the fallback decoder can read."""
    suffix = path.suffix.lower().lstrip(".") or "no extension"
    return AudioDecodeError(
        f"cannot decode {path} (extension: {suffix}; content: {sniff(path)}): {sf_reason.rstrip('.')}. "
        "The file may be truncated, corrupt or not audio; convert it to WAV or FLAC "
        "(e.g. with ffmpeg) and load that copy."
    )


def hms(seconds: float) -> str:
    """A duration for messages: '45.0 s', '12 min 30 s', '3 h 05 min'."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def audio_info(path: str | Path) -> AudioInfo:
    """Rate, channels and length of an audio file from its header; no sample is decoded.

    Raises:
        AudioDecodeError: missing, empty or unreadable file; a fallback-only file over
            :data:`MAX_FALLBACK_BYTES`; a header claiming more than :data:`MAX_FILE_S`.
        SampleRateError: recording rate below 8000 Hz.
    """
    path = Path(path)
    check_file(path)
    try:
        with sf.SoundFile(str(path), mode="r") as fh:
            sr, frames = int(fh.samplerate), int(fh.frames)
            info = AudioInfo(path, sr, int(fh.channels), frames, frames / sr if sr > 0 else 0.0,
                             fh.format, fh.subtype, "soundfile")
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        info = _fallback_info(path, str(exc))
    check_rate(info.sr, path)
    if not math.isfinite(info.duration_s) or info.duration_s > MAX_FILE_S:
        raise AudioDecodeError(
            f"{path}: the header claims a recording of {hms(info.duration_s)}, more than the "
            f"{MAX_FILE_S / 3600:g} h this tool reads; the file is probably corrupt. If it is genuine, "
            f"cut the hours you need into a shorter copy (e.g. ffmpeg -ss START -t DURATION)"
        )
    return info


def _fallback_info(path: Path, sf_reason: str) -> AudioInfo:
    """Header of a file libsndfile cannot read, from audioread's probe (the decoder's stream info, no samples kept)."""
    size = path.stat().st_size
    if size > MAX_FALLBACK_BYTES:
        raise AudioDecodeError(
            f"{path}: libsndfile cannot read it ({sf_reason.rstrip('.')}), and at {size / 2**20:.0f} MiB it is "
            f"over the {MAX_FALLBACK_BYTES >> 20} MiB that the fallback decoder may open, since its length is "
            "not known before decoding; convert it to WAV or FLAC (e.g. ffmpeg -i IN OUT.flac) and load that copy"
        )
    log.info("soundfile cannot read %s (%s); probing with audioread", path, sf_reason)
    try:
        with warnings.catch_warnings():  # audioread imports modules Python deprecates (aifc, audioop, sunau)
            warnings.simplefilter("ignore", DeprecationWarning)
            import audioread  # librosa's decoder for formats libsndfile lacks (needs e.g. ffmpeg)

            with audioread.audio_open(str(path)) as fh:
                sr, channels, duration = int(fh.samplerate), int(fh.channels), float(fh.duration or 0.0)
    except Exception as exc:  # audioread raises many unrelated types; all mean "cannot decode"
        raise undecodable(path, sf_reason) from exc
    return AudioInfo(path, sr, channels, int(round(duration * sr)), duration, "unknown", None, "audioread")


def plan_read(
    info: AudioInfo, *, max_seconds: float | None = None, around_s: float | None = None,
    span_s: float = ANALYSIS_SPAN_S,
) -> ReadPlan:
    """The frames to decode: the whole file, its first ``max_seconds``, or ``span_s`` around ``around_s``.

    A window starts on a whole second (so the 10 ms and 31.25 ms analysis grids of the window fall
    on those of the file) and is moved inside the file near either end; a file no longer than
    ``span_s`` is read whole. Raises :class:`AudioDecodeError` when a whole read would exceed
    :data:`MAX_WHOLE_S` or any read :data:`MAX_DECODE_BYTES`.
    """
    if around_s is not None and max_seconds is not None:
        raise ValueError("pass either around_s or max_seconds, not both")
    if around_s is not None and not span_s > 0:
        raise ValueError(f"span_s must be positive, got {span_s}")
    sr, total = info.sr, info.frames
    if around_s is not None and info.duration_s > span_s:
        centre = min(max(float(around_s), 0.0), info.duration_s)
        start_s = min(max(math.floor(centre - span_s / 2), 0), max(math.floor(info.duration_s - span_s), 0))
        start = start_s * sr
        frames = min(int(math.ceil(span_s * sr)), total - start)
        plan = ReadPlan(start, frames, start + frames >= total, (
            f"a {span_s:g} s window ({start_s:g}-{(start + frames) / sr:g} s) of the {hms(info.duration_s)} "
            "recording was read; levels are measured on that window",))
    elif max_seconds is not None and total > max(1, int(max_seconds * sr)):
        plan = ReadPlan(0, max(1, int(max_seconds * sr)), False, (f"only the first {max_seconds:g} s were read",))
    else:
        plan = ReadPlan(0, total, True)
    _check_plan(info, plan)
    return plan


def _check_plan(info: AudioInfo, plan: ReadPlan) -> None:
    seconds = plan.frames / info.sr
    if seconds > MAX_WHOLE_S:
        raise too_long(info.path, seconds, info.duration_s)
    nbytes = plan.frames * info.channels * 4
    if nbytes > MAX_DECODE_BYTES:
        raise AudioDecodeError(
            f"{info.path}: reading {hms(seconds)} of {info.channels} channels at {info.sr} Hz would decode "
            f"{nbytes / 2**20:.0f} MiB of samples, more than the {MAX_DECODE_BYTES >> 20} MiB limit; export the "
            "channel you need, at a lower rate or as a shorter excerpt, and load that copy"
        )


def too_long(path: Path, seconds: float, total_s: float) -> AudioDecodeError:
    """The error for a read longer than :data:`MAX_WHOLE_S`."""
    what = f"the recording is {hms(total_s)} long" if seconds >= total_s else \
        f"decoding {hms(seconds)} of the {hms(total_s)} recording"
    return AudioDecodeError(
        f"{path}: {what}, more than the {MAX_WHOLE_S / 60:g} min that are decoded at once; only a window "
        "around the time of interest can be read from it, or cut the part you need into a shorter copy "
        "(e.g. ffmpeg -ss START -t 600)"
    )
