"""Load audio evidence into one canonical form: float32 mono samples in [-1, 1] at 16 kHz.

Decoding goes through libsndfile (``soundfile``: WAV, FLAC, Ogg Vorbis/Opus, MP3, ...); a file it cannot read
goes to FFmpeg through PyAV (AAC/M4A, WMA, and the first audio track of a video file: a clip's own sound, whose
times are those of its frames).
The input file is opened read-only and never written. The header is read and the limits of
:mod:`forensic_face.audio.info` are checked before any sample is decoded; a long recording is read
as a window around the time of interest (``load_audio(path, around_s=t)``), never whole.

Level checks, all on the decoded samples before resampling (resampling would smear clipped
plateaus and move peaks):

- **silent** when the peak is below :data:`SILENT_PEAK_DBFS` (-60 dBFS) or the RMS over the part
  decoded (the whole clip, or the window read) is below :data:`SILENT_RMS_DBFS` (-70 dBFS; speech
  recorded at a usable level sits around -40 to -20 dBFS RMS, so -70 dBFS leaves margin for quiet,
  mostly-pause recordings);
- **clipped** when more than :data:`CLIPPED_MAX_FRACTION` (1 %) of the samples lie within
  :data:`CLIP_TOLERANCE` (1e-3, plus one quantisation step for integer formats) of full scale;
  any smaller non-zero fraction only adds a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import soundfile as sf

from forensic_face.audio import info as limits
from forensic_face.audio.info import (
    ANALYSIS_SPAN_S,
    MIN_SR,
    AudioInfo,
    ReadPlan,
    audio_info,
    check_rate,
    plan_read,
    too_long,
    undecodable,
)
from forensic_face.core.errors import AudioClippedError, AudioDecodeError, AudioSilentError
from forensic_face.core.media import demux_from, open_media, origin, reason, stream_time

__all__ = ["MIN_SR", "TARGET_SR", "AudioClip", "AudioInfo", "AudioQuality", "audio_from_array", "audio_info",
           "load_audio", "measure_quality", "resample"]

log = logging.getLogger(__name__)

TARGET_SR = 16000
SILENT_PEAK_DBFS = -60.0
SILENT_RMS_DBFS = -70.0
CLIP_TOLERANCE = 1e-3
CLIPPED_MAX_FRACTION = 0.01
#: Peak level under which a (not silent) recording gets a "very quiet" warning.
QUIET_PEAK_DBFS = -35.0
_MIN_DBFS = -200.0  # floor reported for digital silence instead of -inf
#: Samples per step of the level measurement and of skipping in a file that cannot seek (bounds
#: the temporaries: |x| and x**2 of one step, not of the whole recording).
_BLOCK = 1 << 20
#: A compressed track is decoded from this long before a window (s): the decoder's first frames after a seek
#: lack their predecessors (MDCT overlap, MP3's bit reservoir) and fall before the window, not in it.
_PREROLL_S = 0.5


@dataclass(frozen=True)
class AudioQuality:
    """Level measurements of the decoded samples (all channels, before resampling)."""

    peak_dbfs: float  # max |sample| in dB re full scale (0 dBFS = 1.0); -200 for digital silence
    rms_dbfs: float  # RMS over the part decoded (whole recording or window), dBFS
    clipped_fraction: float  # fraction of samples within CLIP_TOLERANCE of full scale, 0..1
    warnings: tuple[str, ...] = ()  # human-readable notes for the report (tuple: the dataclass is frozen)


@dataclass(frozen=True)
class AudioClip:
    """Decoded audio ready for analysis.

    ``samples`` is float32, shape (n,), mono, in [-1, 1], at ``sr`` Hz; the array is read-only.
    """

    samples: np.ndarray  # (n,) float32 mono, read-only
    sr: int  # sample rate of ``samples`` in Hz (16000 unless asked otherwise)
    source: Path | None  # file the clip came from; None for in-memory audio
    original_sr: int  # sample rate of the recording, Hz
    original_channels: int  # channel count of the recording before the mean downmix
    duration_s: float  # len(samples) / sr: the part decoded, s
    quality: AudioQuality  # of the part decoded
    offset_s: float = 0.0  # where ``samples`` start in the recording, s (non-zero for a window)
    file_duration_s: float | None = None  # length of the whole recording, s; None: same as duration_s

    @property
    def end_s(self) -> float:
        """Where ``samples`` end in the recording, s."""
        return self.offset_s + self.duration_s

    @property
    def is_window(self) -> bool:
        """True when ``samples`` are only part of the recording (see :func:`load_audio`'s ``around_s``)."""
        total = self.duration_s if self.file_duration_s is None else self.file_duration_s
        return self.offset_s > 0 or self.end_s < total - 1.0 / self.sr

    @property
    def warnings(self) -> tuple[str, ...]:
        """Shortcut for ``quality.warnings``."""
        return self.quality.warnings


def load_audio(
    path: str | Path,
    *,
    target_sr: int = TARGET_SR,
    max_seconds: float | None = None,
    around_s: float | None = None,
    span_s: float = ANALYSIS_SPAN_S,
) -> AudioClip:
    """Decode an audio file into a mono float32 :class:`AudioClip` at ``target_sr`` Hz.

    Any channel count is downmixed by the mean; any rate >= 8000 Hz is resampled with soxr (HQ,
    linear phase, so no time shift). The header is read first (:func:`audio_info`) and the limits
    of :mod:`forensic_face.audio.info` are checked before any sample is decoded.

    What is decoded: by default the whole file (refused beyond ``MAX_WHOLE_S``, 10 min);
    ``max_seconds`` reads only the first seconds; ``around_s`` reads a ``span_s`` window (60 s) around
    that time in the file, or the whole file when it is no longer than ``span_s``. The clip then
    says where it lies (``offset_s``) and how long the recording is (``file_duration_s``); levels
    are checked on the part decoded.

    Raises:
        AudioDecodeError: missing or empty file, undecodable content, no samples, NaN/inf samples,
            a read over the limits.
        NoAudioTrackError: a video file without sound.
        SampleRateError: recording rate below 8000 Hz.
        AudioSilentError: peak below -60 dBFS or RMS below -70 dBFS.
        AudioClippedError: more than 1 % of samples at full scale.
    """
    path = Path(path)
    info = audio_info(path)
    plan = plan_read(info, max_seconds=max_seconds, around_s=around_s, span_s=span_s)
    data, sr, notes = _decode(info, plan)
    offset, whole = plan.start / info.sr, plan.start == 0 and plan.to_end
    end = offset + data.shape[0] / sr
    clip = _make_clip(data, sr, target_sr=target_sr, source=path, bits=info.bits, notes=plan.notes + notes,
                      name=None if whole else f"{path} ({offset:g}-{end:g} s)", offset_s=offset,
                      file_duration_s=None if whole else end if plan.to_end else max(info.duration_s, end))
    log.info(
        "loaded %s: %.2f s from %.2f s of %.2f s, %d Hz x %d ch -> %d Hz mono, peak %.1f dBFS",
        path,
        clip.duration_s,
        clip.offset_s,
        clip.file_duration_s,
        sr,
        data.shape[1],
        target_sr,
        clip.quality.peak_dbfs,
    )
    return clip


def audio_from_array(
    samples: np.ndarray, sr: int, *, target_sr: int = TARGET_SR, name: str = "in-memory audio"
) -> AudioClip:
    """Wrap samples already in memory as an :class:`AudioClip`, with the same checks as :func:`load_audio`.

    ``samples``: shape (n,) or (n, channels) like soundfile returns; a (channels, n) array with at
    most 8 channels and more samples than channels is taken as channels-first. Integer arrays are
    scaled by their type's full scale (int16 / 32768); float arrays must already be in [-1, 1].
    ``name`` is used in error messages.
    """
    data = np.asarray(samples)
    if data.ndim == 1:
        data = data[:, None]
    elif data.ndim == 2 and data.shape[0] <= 8 < data.shape[1]:
        data = data.T
    elif data.ndim != 2:
        raise AudioDecodeError(f"{name}: expected samples of shape (n,) or (n, channels), got {data.shape}")
    bits = None
    if np.issubdtype(data.dtype, np.integer):
        info = np.iinfo(data.dtype)
        bits = info.bits
        data = (data.astype(np.float64) - (info.min + info.max + 1) / 2) / ((info.max - info.min + 1) / 2)
    return _make_clip(
        data.astype(np.float32, copy=False), int(sr), target_sr=target_sr, source=None, bits=bits, name=name
    )


def _decode(info: AudioInfo, plan: ReadPlan) -> tuple[np.ndarray, int, tuple[str, ...]]:
    """(samples (n, ch) float32, rate, notes) of the planned frames, from soundfile or else PyAV."""
    if info.decoder == "pyav":
        return _decode_track(info, plan)
    # a header may undercount the frames of a compressed stream a little: read on to the real end
    slack = info.sr if plan.to_end else 0
    try:
        with sf.SoundFile(str(info.path), mode="r") as fh:
            _seek(fh, plan.start)
            data = fh.read(frames=plan.frames + slack, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        raise undecodable(info.path, str(exc)) from exc
    return data, info.sr, ()


def _seek(fh: sf.SoundFile, frame: int) -> None:
    """Move to ``frame``; where the format cannot seek, decode and drop blocks up to it."""
    if frame <= 0:
        return
    try:
        fh.seek(frame)
        return
    except (sf.LibsndfileError, RuntimeError):
        log.info("%s cannot seek; skipping %d frames block by block", fh.name, frame)
    fh.seek(0)
    while frame > 0:
        got = fh.read(frames=min(frame, _BLOCK), dtype="float32", always_2d=True).shape[0]
        if got == 0:
            break
        frame -= got


def _decode_track(info: AudioInfo, plan: ReadPlan) -> tuple[np.ndarray, int, tuple[str, ...]]:
    """The planned frames of the file's first audio track, decoded by PyAV: (samples (n, ch) float32 at the
    track's rate, rate, notes).

    Sample i is the recording's sample ``plan.start + i`` counted from the container's start (silence before
    the track starts, and in place of a packet that cannot be decoded). A read to the end stops one second past
    :data:`~forensic_face.audio.info.MAX_WHOLE_S` (the header's length of a compressed track is not trusted).
    """
    sr, channels, first = info.sr, info.channels, plan.start
    stop = first + (int((limits.MAX_WHOLE_S + 1.0) * sr) if plan.to_end else plan.frames)
    pieces: list[tuple[int, np.ndarray]] = []  # (sample position, samples (n, ch))
    end, damaged = first, []
    with open_media(info.path, lambda why: undecodable(info.path, f"FFmpeg: {why}")) as container:
        stream, zero = container.streams.audio[0], origin(container)
        for packet in demux_from(container, stream, max(first / sr - _PREROLL_S, 0.0), zero):
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:
                damaged.append(f"{stream_time(packet.pts, stream, zero) or 0.0:.2f} s ({reason(exc)})")
                continue
            for frame in frames:
                t = stream_time(frame.pts, stream, zero)
                pos = int(round(t * sr)) if t is not None else end
                data = _float_samples(frame, channels, info.path)
                lo, hi = max(pos, first), min(pos + data.shape[0], stop)
                if hi > lo:
                    pieces.append((lo - first, data[lo - pos : hi - pos]))
                    end = max(end, hi)
            if end >= stop:
                break
    if plan.to_end and end - first > limits.MAX_WHOLE_S * sr:
        raise too_long(info.path, (end - first) / sr, max(info.duration_s, end / sr))
    out = np.zeros((end - first, channels), np.float32)
    for offset, data in pieces:
        out[offset : offset + data.shape[0]] = data
    notes = (f"{len(damaged)} damaged audio packet(s) could not be decoded (the first at {damaged[0]}); silence "
             "stands in their place",) if damaged else ()
    return out, sr, notes


def _float_samples(frame: av.AudioFrame, channels: int, path: Path) -> np.ndarray:
    """A decoded audio frame as (n, channels) float32 in [-1, 1] full scale, whatever its sample format."""
    data = frame.to_ndarray()  # planar formats: (channels, n); packed: (1, n * channels)
    data = data.T if frame.format.is_planar else data.reshape(-1, frame.layout.nb_channels)
    if data.shape[1] != channels:
        raise undecodable(path, f"the audio track changes from {channels} to {data.shape[1]} channels")
    if np.issubdtype(data.dtype, np.integer):
        kind = np.iinfo(data.dtype)
        return ((data.astype(np.float64) - (kind.min + kind.max + 1) / 2) / ((kind.max - kind.min + 1) / 2)
                ).astype(np.float32)
    return data.astype(np.float32, copy=False)


def _to_dbfs(value: float) -> float:
    return float(max(20.0 * np.log10(value), _MIN_DBFS)) if value > 0 else _MIN_DBFS


def measure_quality(data: np.ndarray, bits: int | None = None) -> AudioQuality:
    """Peak, RMS (dBFS) and clipped fraction of samples (n,) or (n, ch) in [-1, 1] full scale.

    ``bits`` is the integer bit depth of the source, if any: the clip tolerance then grows by one
    quantisation step, because the positive full scale of an N-bit code is 1 - 2**(1-N). Measured
    in steps of about a million samples, so the temporaries stay small whatever the length.
    """
    flat = np.asarray(data).reshape(-1)
    tol = CLIP_TOLERANCE + (2.0 ** (1 - bits) if bits else 0.0)
    peak, energy, clipped = 0.0, 0.0, 0
    for i in range(0, flat.size, _BLOCK):
        mag = np.abs(flat[i : i + _BLOCK])
        peak = max(peak, float(mag.max()))
        energy += float(np.sum(np.square(mag, dtype=np.float64)))
        clipped += int(np.count_nonzero(mag >= 1.0 - tol))
    rms = float(np.sqrt(energy / flat.size)) if flat.size else 0.0
    return AudioQuality(peak_dbfs=_to_dbfs(peak), rms_dbfs=_to_dbfs(rms), clipped_fraction=clipped / max(flat.size, 1))


def _check_levels(q: AudioQuality, name: str) -> list[str]:
    """Raise on silent or heavily clipped audio; return warnings for milder problems."""
    if q.peak_dbfs < SILENT_PEAK_DBFS or q.rms_dbfs < SILENT_RMS_DBFS:
        raise AudioSilentError(
            f"{name}: audio is silent or nearly so (peak {q.peak_dbfs:.1f} dBFS, RMS {q.rms_dbfs:.1f} dBFS; "
            f"needs peak >= {SILENT_PEAK_DBFS:g} and RMS >= {SILENT_RMS_DBFS:g} dBFS); check that the right "
            "track or channel was exported"
        )
    if q.clipped_fraction > CLIPPED_MAX_FRACTION:
        raise AudioClippedError(
            f"{name}: {100 * q.clipped_fraction:.1f}% of samples sit at full scale (limit "
            f"{100 * CLIPPED_MAX_FRACTION:g}%), so pitch and spectral features would be distorted; "
            "use a recording made at a lower gain"
        )
    notes = []
    if q.clipped_fraction > 0:
        notes.append(
            f"{100 * q.clipped_fraction:.2g}% of samples are clipped (tolerated up to "
            f"{100 * CLIPPED_MAX_FRACTION:g}%)"
        )
    if q.peak_dbfs < QUIET_PEAK_DBFS:
        notes.append(f"very quiet recording (peak {q.peak_dbfs:.1f} dBFS); features are noisier")
    return notes


def _make_clip(
    data: np.ndarray,
    sr: int,
    *,
    target_sr: int,
    source: Path | None,
    bits: int | None,
    name: str | None = None,
    notes: tuple[str, ...] = (),
    offset_s: float = 0.0,
    file_duration_s: float | None = None,
) -> AudioClip:
    """Validate (n, ch) float samples at ``sr``, downmix, resample and package them."""
    name = name or str(source)
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise AudioDecodeError(f"{name}: the audio contains no samples; check the export or recording")
    if not all(np.isfinite(data[i : i + _BLOCK]).all() for i in range(0, data.shape[0], _BLOCK)):
        raise AudioDecodeError(f"{name}: the audio contains NaN or infinite samples; the file is corrupt")
    check_rate(sr, name)
    quality = measure_quality(data, bits)
    notes = [*notes, *_check_levels(quality, name)]
    mono = data.mean(axis=1, dtype=np.float64) if data.shape[1] > 1 else data[:, 0].astype(np.float64)
    if sr < 9000:  # Nyquist within 500 Hz of the 4 kHz band edge
        notes.append(f"recorded at {sr} Hz: little or no headroom above 4 kHz; upper speech band is weak")
    if mono.size / sr < 0.5:
        notes.append(f"very short clip ({mono.size / sr:.2f} s); prosody and LBRP windows are mostly padding")
    samples = np.clip(resample(mono, sr, target_sr), -1.0, 1.0).astype(np.float32)
    samples.setflags(write=False)
    quality = AudioQuality(quality.peak_dbfs, quality.rms_dbfs, quality.clipped_fraction, tuple(notes))
    for note in notes:
        log.warning("%s: %s", name, note)
    return AudioClip(
        samples=samples,
        sr=target_sr,
        source=source,
        original_sr=sr,
        original_channels=int(data.shape[1]),
        duration_s=samples.size / target_sr,
        quality=quality,
        offset_s=offset_s,
        file_duration_s=samples.size / target_sr if file_duration_s is None else file_duration_s,
    )


def resample(x: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    """Resample (n,) samples from ``sr`` to ``target_sr`` Hz with soxr HQ (linear phase, no delay).

    Returns float64 of length ceil(n * target_sr / sr); the input itself when the rates agree.
    """
    if sr == target_sr:
        return x
    import soxr  # soundfile-level dependency of librosa; imported lazily to keep import time short

    return soxr.resample(x, sr, target_sr, quality="HQ")
