"""Load audio evidence into one canonical form: float32 mono samples in [-1, 1] at 16 kHz.

Decoding goes through libsndfile (``soundfile``: WAV, FLAC, Ogg Vorbis/Opus, MP3, ...); only when it
cannot read a file do we try librosa/audioread (which needs a system decoder such as ffmpeg).
The input file is opened read-only and never written.

Level checks, all on the decoded samples before resampling (resampling would smear clipped
plateaus and move peaks):

- **silent** when the peak is below :data:`SILENT_PEAK_DBFS` (-60 dBFS) or the RMS over the whole
  clip is below :data:`SILENT_RMS_DBFS` (-70 dBFS; speech recorded at a usable level sits around
  -40 to -20 dBFS RMS, so -70 dBFS leaves margin for quiet, mostly-pause recordings);
- **clipped** when more than :data:`CLIPPED_MAX_FRACTION` (1 %) of the samples lie within
  :data:`CLIP_TOLERANCE` (1e-3, plus one quantisation step for integer formats) of full scale;
  any smaller non-zero fraction only adds a warning.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from forensic_face.core.errors import AudioClippedError, AudioDecodeError, AudioSilentError, SampleRateError

log = logging.getLogger(__name__)

TARGET_SR = 16000
#: Below this rate the 80-4000 Hz speech band cannot be represented (Nyquist = rate / 2).
MIN_SR = 8000
SILENT_PEAK_DBFS = -60.0
SILENT_RMS_DBFS = -70.0
CLIP_TOLERANCE = 1e-3
CLIPPED_MAX_FRACTION = 0.01
#: Peak level under which a (not silent) recording gets a "very quiet" warning.
QUIET_PEAK_DBFS = -35.0
_MIN_DBFS = -200.0  # floor reported for digital silence instead of -inf

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
class AudioQuality:
    """Level measurements of the decoded recording (all channels, before resampling)."""

    peak_dbfs: float  # max |sample| in dB re full scale (0 dBFS = 1.0); -200 for digital silence
    rms_dbfs: float  # RMS over the whole recording, dBFS
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
    duration_s: float  # len(samples) / sr
    quality: AudioQuality

    @property
    def warnings(self) -> tuple[str, ...]:
        """Shortcut for ``quality.warnings``."""
        return self.quality.warnings


def load_audio(
    path: str | Path, *, target_sr: int = TARGET_SR, max_seconds: float | None = None
) -> AudioClip:
    """Decode an audio file into a mono float32 :class:`AudioClip` at ``target_sr`` Hz.

    Any channel count is downmixed by the mean; any rate >= 8000 Hz is resampled with soxr (HQ,
    linear phase, so no time shift). ``max_seconds`` reads only the first seconds of a long file.

    Raises:
        AudioDecodeError: missing or empty file, undecodable content, no samples, NaN/inf samples.
        SampleRateError: recording rate below 8000 Hz.
        AudioSilentError: peak below -60 dBFS or RMS below -70 dBFS.
        AudioClippedError: more than 1 % of samples at full scale.
    """
    path = Path(path)
    _check_file(path)
    data, sr, bits, truncated = _decode(path, max_seconds)
    notes = (f"only the first {max_seconds:g} s were read",) if truncated else ()
    clip = _make_clip(data, sr, target_sr=target_sr, source=path, bits=bits, notes=notes)
    log.info(
        "loaded %s: %.2f s, %d Hz x %d ch -> %d Hz mono, peak %.1f dBFS",
        path,
        clip.duration_s,
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


def _check_file(path: Path) -> None:
    if not path.exists():
        raise AudioDecodeError(f"audio file not found: {path}")
    if not path.is_file():
        raise AudioDecodeError(f"not a file: {path}; choose an audio file (WAV, FLAC, OGG, MP3)")
    if path.stat().st_size == 0:
        raise AudioDecodeError(f"audio file is empty (0 bytes): {path}; the copy or download may have failed")


def _sniff(path: Path) -> str:
    """What the first bytes of a file say it is, for error messages."""
    with path.open("rb") as fh:
        head = fh.read(12)
    for magic, label in _MAGIC:
        if head.startswith(magic):
            return label
    return "not a recognised audio container"


def _decode(path: Path, max_seconds: float | None) -> tuple[np.ndarray, int, int | None, bool]:
    """(samples (n, ch) float32, rate, integer bit depth or None, truncated?) from soundfile, else librosa."""
    try:
        with sf.SoundFile(str(path), mode="r") as fh:
            sr, subtype = int(fh.samplerate), fh.subtype
            _check_rate(sr, path)
            frames = -1 if max_seconds is None else max(1, int(max_seconds * sr))
            data = fh.read(frames=frames, dtype="float32", always_2d=True)
            truncated = frames > 0 and fh.frames > frames
        return data, sr, _SUBTYPE_BITS.get(subtype), truncated
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        sf_reason = str(exc)
    log.info("soundfile cannot read %s (%s); trying librosa/audioread", path, sf_reason)
    return _decode_fallback(path, max_seconds, sf_reason)


def _decode_fallback(
    path: Path, max_seconds: float | None, sf_reason: str
) -> tuple[np.ndarray, int, None, bool]:
    import librosa  # heavy import; only needed for formats libsndfile lacks

    try:
        with (
            warnings.catch_warnings()
        ):  # librosa warns that soundfile failed (we know) and audioread is deprecated
            warnings.simplefilter("ignore", (UserWarning, FutureWarning, DeprecationWarning))
            y, sr = librosa.load(str(path), sr=None, mono=False, duration=max_seconds)
    except Exception as exc:  # audioread raises many unrelated types; all mean "cannot decode"
        suffix = path.suffix.lower().lstrip(".") or "no extension"
        raise AudioDecodeError(
            f"cannot decode {path} (extension: {suffix}; content: {_sniff(path)}): {sf_reason.rstrip('.')}. "
            "The file may be truncated, corrupt or not audio; convert it to WAV or FLAC "
            "(e.g. with ffmpeg) and load that copy."
        ) from exc
    _check_rate(int(sr), path)
    data = np.atleast_2d(y).T.astype(np.float32, copy=False)  # librosa is channels-first
    truncated = max_seconds is not None and data.shape[0] >= int(max_seconds * sr)
    return data, int(sr), None, truncated


def _check_rate(sr: int, where: Path | str) -> None:
    if sr < MIN_SR:
        raise SampleRateError(
            f"{where}: sample rate {sr} Hz is below {MIN_SR} Hz, so it cannot represent the 80-4000 Hz "
            "speech band; use the original recording at a higher rate"
        )


def _to_dbfs(value: float) -> float:
    return float(max(20.0 * np.log10(value), _MIN_DBFS)) if value > 0 else _MIN_DBFS


def measure_quality(data: np.ndarray, bits: int | None = None) -> AudioQuality:
    """Peak, RMS (dBFS) and clipped fraction of samples (n,) or (n, ch) in [-1, 1] full scale.

    ``bits`` is the integer bit depth of the source, if any: the clip tolerance then grows by one
    quantisation step, because the positive full scale of an N-bit code is 1 - 2**(1-N).
    """
    mag = np.abs(data)
    tol = CLIP_TOLERANCE + (2.0 ** (1 - bits) if bits else 0.0)
    peak = float(mag.max())
    rms = float(np.sqrt(np.mean(np.square(data, dtype=np.float64))))
    clipped = float(np.count_nonzero(mag >= 1.0 - tol) / mag.size)
    return AudioQuality(peak_dbfs=_to_dbfs(peak), rms_dbfs=_to_dbfs(rms), clipped_fraction=clipped)


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
) -> AudioClip:
    """Validate (n, ch) float samples at ``sr``, downmix, resample and package them."""
    name = name or str(source)
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise AudioDecodeError(f"{name}: the audio contains no samples; check the export or recording")
    if not np.all(np.isfinite(data)):
        raise AudioDecodeError(f"{name}: the audio contains NaN or infinite samples; the file is corrupt")
    _check_rate(sr, name)
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
    )


def resample(x: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    """Resample (n,) samples from ``sr`` to ``target_sr`` Hz with soxr HQ (linear phase, no delay).

    Returns float64 of length ceil(n * target_sr / sr); the input itself when the rates agree.
    """
    if sr == target_sr:
        return x
    import soxr  # soundfile-level dependency of librosa; imported lazily to keep import time short

    return soxr.resample(x, sr, target_sr, quality="HQ")
