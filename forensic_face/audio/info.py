"""What an audio file says about itself, read from its header, and the limits checked before decoding.

:func:`audio_info` opens the file without decoding a sample (libsndfile; for anything else FFmpeg reads, through
PyAV: AAC/M4A, WMA, and the sound track of a video file) and refuses recordings that cannot be
decoded within bounded memory. :func:`plan_read` turns a request (whole file, its first seconds,
or a window around a time) into the frames to decode, checked against the limits below, so that a
1-hour or 10-hour recording costs the memory of the window that is analysed, not of the file.

Limits (module constants, so a deployment with more memory may raise them):

- :data:`MAX_FILE_S` (24 h): a header that claims a longer recording is taken as corrupt;
- :data:`MAX_WHOLE_S` (10 min): longer recordings are never decoded whole, only as a window;
- :data:`MAX_DECODE_BYTES` (512 MiB): the decoded float32 samples of one read, all channels.

Times in a file FFmpeg reads count from the container's start (:mod:`forensic_face.core.media`), the clock of
a video's frames: the sound at t s is that of the frame at t s.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import soundfile as sf

from forensic_face.core.errors import AudioDecodeError, NoAudioTrackError, SampleRateError
from forensic_face.core.media import open_media, origin, stream_time

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
    frames: int  # samples per channel the header announces (0: the container does not say)
    duration_s: float  # frames / sr
    container: str  # e.g. "WAV", "FLAC"; for PyAV the container and codec, e.g. "QuickTime / MOV, aac"
    subtype: str | None  # libsndfile subtype such as "PCM_16" (PyAV: "PCM_16" for 16-bit PCM); None if compressed
    decoder: Literal["soundfile", "pyav"]

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
    """The error for a file neither libsndfile nor FFmpeg can read."""
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
    """Rate, channels and length of an audio file, or of a video file's (first) audio track, from the headers;
    no sample is decoded.

    Raises:
        AudioDecodeError: missing, empty or unreadable file; a header claiming more than :data:`MAX_FILE_S`.
        NoAudioTrackError: a video file without sound.
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
        info = _track_info(path, str(exc))
    check_rate(info.sr, path)
    if not math.isfinite(info.duration_s) or info.duration_s > MAX_FILE_S:
        raise AudioDecodeError(
            f"{path}: the header claims a recording of {hms(info.duration_s)}, more than the "
            f"{MAX_FILE_S / 3600:g} h this tool reads; the file is probably corrupt. If it is genuine, "
            f"cut the hours you need into a shorter copy (e.g. ffmpeg -ss START -t DURATION)"
        )
    return info


def has_audio_track(path: str | Path) -> bool:
    """Whether a file carries sound: an audio file, or a video file with an audio stream (headers only).

    Raises :class:`AudioDecodeError` for a missing or empty file, or one that no decoder can open.
    """
    path = Path(path)
    check_file(path)
    try:
        sf.info(str(path))
        return True
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        sf_reason = str(exc).rstrip(".")
    with open_media(path, lambda why: undecodable(path, f"{sf_reason}; FFmpeg: {why}")) as container:
        return bool(container.streams.audio)


def _track_info(path: Path, sf_reason: str) -> AudioInfo:
    """Header of the first audio track of a file libsndfile cannot read (a video's own sound, AAC, WMA, ...),
    through PyAV: its length runs from the container's start to the track's end."""
    with open_media(path, lambda why: undecodable(path, f"{sf_reason.rstrip('.')}; FFmpeg: {why}")) as container:
        if not container.streams.audio:
            if container.streams.video:
                raise NoAudioTrackError(f"{path} has no audio track; add the recording as a separate audio file")
            raise undecodable(path, f"no audio stream in it ({container.format.long_name})")
        stream = container.streams.audio[0]
        ctx, zero = stream.codec_context, origin(container)
        sr = int(ctx.sample_rate or 0)
        start = max(stream_time(stream.start_time, stream, zero) or 0.0, 0.0)
        if stream.duration:
            duration = start + float(stream.duration * stream.time_base)
        else:
            duration = container.duration / 1e6 if container.duration else 0.0
        bits = re.fullmatch(r"pcm_[su](8|16|24|32)(?:[lb]e)?", ctx.name)
        return AudioInfo(path, sr, int(ctx.channels or 0), int(round(duration * sr)), duration,
                         f"{container.format.long_name}, {ctx.name}", f"PCM_{bits.group(1)}" if bits else None, "pyav")


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
