"""The audio vector per video frame: LBRP histogram + scaled prosody statistics.

Stages (each callable on its own, so callers can time them): :func:`load` (decode, 16 kHz mono),
:func:`clean` (noise reduction), :func:`prosody` and :func:`lbrp`; :func:`audio_features` runs
the last three and assembles :class:`AudioFeatures`.

Prosody scaling in ``vector``: the raw columns (Hz, semitones, dB, fractions) are mapped by fixed
affine maps (:data:`PROSODY_SCALE`; no statistics fitted per clip, so a frame's vector never
depends on other frames or clips) that send typical conversational speech to 0 and its usual
spread to about +-1; F0 is first turned into octaves re 140 Hz, and an unvoiced window (F0 0)
maps to 0, the "typical" value, i.e. no information. Scaled values are clipped to +-3 (a silent
window's -100 dBFS, or the slope of a short voiced stretch, would otherwise dominate). The block
is then multiplied by ``prosody_weight`` (default 0.5 / sqrt(7) ~ 0.19: its norm is about half
that of the unit-norm LBRP block). The weight was chosen on speaker verification with the
synthetic LFW voices (people disjoint from those in the tests): at 1 / sqrt(7) the seven
content-dependent prosody numbers diluted the LBRP block; at 0.5 / sqrt(7) the combined vector
was at least as good as either part.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from forensic_face.audio.denoise import DenoiseMethod, denoise
from forensic_face.audio.info import ANALYSIS_SPAN_S, AudioInfo, audio_info
from forensic_face.audio.io import AudioClip, load_audio
from forensic_face.audio.lbrp import LBRPConfig, lbrp_features
from forensic_face.audio.prosody import PROSODY_COLUMNS, ProsodyConfig, prosody_track, window_prosody
from forensic_face.core.errors import AudioError

log = logging.getLogger(__name__)

#: (offset, divisor) per prosody column: scaled = (raw - offset) / divisor, with F0 first mapped
#: to log2(f0 / F0_REF_HZ) octaves (0 for unvoiced windows). Offsets are typical speech values.
PROSODY_SCALE: dict[str, tuple[float, float]] = {
    "f0_median_hz": (0.0, 1.0),  # on log2(f0 / 140 Hz): an octave -> 1
    "f0_std_st": (1.5, 1.5),  # 0..3 semitones -> -1..1
    "f0_slope_st_per_s": (0.0, 12.0),  # an octave per second -> 1
    "voiced_fraction": (0.5, 0.5),  # 0..1 -> -1..1
    "energy_mean_db": (-30.0, 15.0),  # -45..-15 dBFS -> -1..1
    "energy_std_db": (6.0, 6.0),  # 0..12 dB -> -1..1
    "speech_fraction": (0.5, 0.5),  # 0..1 -> -1..1
}
F0_REF_HZ = 140.0  # between typical male (~120 Hz) and female (~210 Hz) F0, on a log scale
PROSODY_CLIP = 3.0  # bound of each scaled prosody value


@dataclass(frozen=True)
class AudioFeatureConfig:
    """Everything that determines the audio vector of a frame (recorded in the audit log)."""

    denoise_method: DenoiseMethod = "chain"  # noise reduction before the features ("none" to skip)
    prosody_window_s: float = 1.0  # window of the prosody statistics, centred on the frame, s
    prosody_weight: float = float(0.5 / np.sqrt(len(PROSODY_COLUMNS)))  # scale of the prosody block
    prosody: ProsodyConfig = field(default_factory=ProsodyConfig)
    lbrp: LBRPConfig = field(default_factory=LBRPConfig)


@dataclass(frozen=True)
class AudioFeatures:
    """Audio features aligned to video-frame timestamps; n = number of timestamps."""

    timestamps_s: np.ndarray  # (n,) frame times, s
    lbrp: np.ndarray  # (n, d) float32, unit L2 rows
    prosody: np.ndarray  # (n, k) float32, raw units (columns in PROSODY_COLUMNS)
    vector: np.ndarray  # (n, d + k) float32: lbrp then scaled prosody
    names: tuple[str, ...]  # d + k column names of ``vector``
    params: dict[str, Any]  # parameters and versions used, for the audit log
    voiced: np.ndarray  # (n,) bool: the window holds voiced speech; False: its vector describes no voice
    warnings: tuple[str, ...] = ()  # for the analyst: the frame times whose window holds no voice, or no audio


def load(
    path: str | Path, *, max_seconds: float | None = None, around_s: float | None = None,
    span_s: float = ANALYSIS_SPAN_S,
) -> AudioClip:
    """Stage 1: decode a file to a 16 kHz mono :class:`AudioClip` (see :func:`load_audio`).

    ``around_s`` (s, in the file's time) decodes only a ``span_s`` window around it, so a recording
    of any length costs the memory of the window; features at times inside that window are then
    those of the window. A file no longer than ``span_s`` is read whole.
    """
    return load_audio(path, max_seconds=max_seconds, around_s=around_s, span_s=span_s)


def clean(samples: np.ndarray, sr: int, method: DenoiseMethod = "chain") -> np.ndarray:
    """Stage 2: noise reduction, (n,) -> (n,) float32, same length and alignment."""
    return denoise(samples, sr, method)


def prosody(
    samples: np.ndarray, sr: int, timestamps_s: np.ndarray, config: AudioFeatureConfig | None = None
) -> np.ndarray:
    """Stage 3: raw prosody statistics per timestamp, float32 (n, 7) (columns PROSODY_COLUMNS)."""
    cfg = config or AudioFeatureConfig()
    return window_prosody(prosody_track(samples, sr, cfg.prosody), timestamps_s, cfg.prosody_window_s)


def lbrp(
    samples: np.ndarray, sr: int, timestamps_s: np.ndarray, config: AudioFeatureConfig | None = None
) -> np.ndarray:
    """Stage 4: LBRP vectors per timestamp, float32 (n, config.lbrp.dim)."""
    cfg = config or AudioFeatureConfig()
    return lbrp_features(samples, sr, timestamps_s, cfg.lbrp)


def scale_prosody(raw: np.ndarray, weight: float) -> np.ndarray:
    """Map raw prosody (n, 7) to the comparable range used in ``vector`` (see module docstring)."""
    out = np.array(raw, dtype=np.float64)
    f0 = out[:, 0]
    out[:, 0] = np.where(f0 > 0, np.log2(np.maximum(f0, 1.0) / F0_REF_HZ), 0.0)
    for j, name in enumerate(PROSODY_COLUMNS):
        offset, divisor = PROSODY_SCALE[name]
        out[:, j] = (out[:, j] - offset) / divisor
    return (weight * np.clip(out, -PROSODY_CLIP, PROSODY_CLIP)).astype(np.float32)


def column_names(config: AudioFeatureConfig) -> tuple[str, ...]:
    """Names of the columns of ``AudioFeatures.vector`` for ``config``."""
    lbrp_names = tuple(f"lbrp_{i:04d}" for i in range(config.lbrp.dim))
    return lbrp_names + tuple(f"prosody_{name}" for name in PROSODY_COLUMNS)


def _params(clip: AudioClip, config: AudioFeatureConfig, denoised: bool) -> dict[str, Any]:
    import librosa
    import scipy

    return {
        "source": str(clip.source) if clip.source else None,
        "sr": clip.sr,
        "original_sr": clip.original_sr,
        "original_channels": clip.original_channels,
        "duration_s": clip.duration_s,
        "offset_s": clip.offset_s,
        "file_duration_s": clip.file_duration_s,
        "quality": asdict(clip.quality),
        "denoise": config.denoise_method if denoised else "none",
        "config": asdict(config),
        "lbrp_dim": config.lbrp.dim,
        "prosody_scale": {"columns": PROSODY_SCALE, "f0_ref_hz": F0_REF_HZ, "clip": PROSODY_CLIP},
        "versions": {"numpy": np.__version__, "scipy": scipy.__version__, "librosa": librosa.__version__},
    }


def _window_times(clip: AudioClip, ts: np.ndarray) -> np.ndarray:
    """Timestamps relative to the clip's first sample; refuses times a window does not hold."""
    if not clip.is_window:
        return ts
    total = clip.file_duration_s if clip.file_duration_s is not None else clip.end_s
    lo = clip.offset_s if clip.offset_s > 0 else -np.inf  # before the file: padding, as for a whole clip
    hi = clip.end_s if clip.end_s < total - 1.0 / clip.sr else np.inf
    outside = ts[(ts < lo - 1e-6) | (ts > hi + 1e-6)]
    if outside.size:
        raise AudioError(
            f"{clip.source}: time {outside[0]:.3f} s is outside the part of the recording that was read "
            f"({clip.offset_s:.3f}-{clip.end_s:.3f} s); load the audio around that time"
        )
    return ts - clip.offset_s


def audio_features(
    clip: AudioClip,
    timestamps_s: np.ndarray,
    *,
    denoise: bool = True,
    config: AudioFeatureConfig | None = None,
) -> AudioFeatures:
    """Audio vector for each video-frame timestamp (s, in the recording's time) of a loaded clip.

    Runs :func:`clean` (if ``denoise``), :func:`prosody` and :func:`lbrp` on the clip and
    concatenates LBRP (n, d) with the scaled prosody (n, 7) into ``vector`` (n, d + 7) float32.
    For a window of a recording (``clip.offset_s`` > 0) the timestamps are shifted onto the window;
    a timestamp outside the window raises :class:`AudioError`. A timestamp whose prosody window holds no voiced
    speech, or lies wholly outside the recording, gets its vector as any other, ``voiced`` False, and its time
    named in ``warnings`` (:func:`voice_warnings`): such a vector carries no voice.
    """
    cfg = config or AudioFeatureConfig()
    ts = np.atleast_1d(np.asarray(timestamps_s, dtype=np.float64))
    local = _window_times(clip, ts)
    samples = clean(clip.samples, clip.sr, cfg.denoise_method) if denoise else clip.samples
    raw = prosody(samples, clip.sr, local, cfg)
    lbrp_vec = lbrp(samples, clip.sr, local, cfg)
    vector = np.concatenate([lbrp_vec, scale_prosody(raw, cfg.prosody_weight)], axis=1)
    voiced = raw[:, PROSODY_COLUMNS.index("voiced_fraction")] > 0
    half = cfg.prosody_window_s / 2
    outside = (local + half < 0) | (local - half > clip.duration_s)
    warnings = voice_warnings(ts, ~voiced & ~outside, outside, cfg.prosody_window_s)
    for warning in warnings:
        log.warning("%s: %s", clip.source or "audio", warning)
    log.debug("audio features: %d timestamps, dim %d", ts.size, vector.shape[1])
    return AudioFeatures(
        timestamps_s=ts,
        lbrp=lbrp_vec,
        prosody=raw,
        vector=vector,
        names=column_names(cfg),
        params=_params(clip, cfg, denoise),
        voiced=voiced,
        warnings=warnings,
    )


def voice_warnings(times_s: np.ndarray, silent: np.ndarray, outside: np.ndarray, window_s: float) -> tuple[str, ...]:
    """Warnings naming the frame times (s) whose audio window holds no voiced speech (``silent``) or lies wholly
    outside the recording (``outside``): their vectors carry no voice (pitch 0 maps to the neutral value, and
    the LBRP describes background sound or silence), so a comparison must not take them for a speaker's."""
    out = []
    if silent.any():
        out.append(f"no voice in the {window_s:g} s audio window at {_times(times_s, silent)}: the audio "
                   "features there describe background sound or silence, not a speaker")
    if outside.any():
        out.append(f"no audio at {_times(times_s, outside)} (outside the recording): the audio features there "
                   "are those of silence")
    return tuple(out)


def _times(times_s: np.ndarray, mask: np.ndarray, most: int = 8) -> str:
    """The times where ``mask`` holds, as runs of neighbouring entries: '0.40 s, 1.20-1.60 s and 3 more'."""
    runs: list[list[float]] = []
    previous = -2
    for i in np.flatnonzero(mask):
        if i == previous + 1:
            runs[-1][1] = float(times_s[i])
        else:
            runs.append([float(times_s[i]), float(times_s[i])])
        previous = i
    shown = [f"{a:.2f} s" if a == b else f"{a:.2f}-{b:.2f} s" for a, b in runs[:most]]
    more = f" and {len(runs) - most} more" if len(runs) > most else ""
    return ", ".join(shown) + more


class AudioFeatureExtractor:
    """Holds one :class:`AudioFeatureConfig` and exposes the stages as methods.

    Construction builds the cached Radon matrix and mel filter bank once, so the first clip is
    not slower than the rest.
    """

    def __init__(self, config: AudioFeatureConfig | None = None, *, denoise: bool = True) -> None:
        self.config = config or AudioFeatureConfig()
        self.denoise = denoise
        lbrp_features(
            np.zeros(16000, dtype=np.float32), 16000, np.array([0.5]), self.config.lbrp
        )  # warm caches

    def info(self, path: str | Path) -> AudioInfo:
        """The file's header (duration, rate, channels) with the limits checked; no sample is decoded."""
        return audio_info(path)

    def load(
        self, path: str | Path, *, max_seconds: float | None = None, around_s: float | None = None,
        span_s: float = ANALYSIS_SPAN_S,
    ) -> AudioClip:
        """Decode a file (stage 1); ``around_s`` reads only a ``span_s`` window around that time (see :func:`load`)."""
        return load(path, max_seconds=max_seconds, around_s=around_s, span_s=span_s)

    def clean(self, clip: AudioClip) -> np.ndarray:
        """Noise-reduced samples of ``clip`` (stage 2); the samples unchanged if denoising is off."""
        if not self.denoise:
            return clip.samples
        return clean(clip.samples, clip.sr, self.config.denoise_method)

    def prosody(self, samples: np.ndarray, sr: int, timestamps_s: np.ndarray) -> np.ndarray:
        """Raw prosody statistics (n, 7) (stage 3)."""
        return prosody(samples, sr, timestamps_s, self.config)

    def lbrp(self, samples: np.ndarray, sr: int, timestamps_s: np.ndarray) -> np.ndarray:
        """LBRP vectors (n, d) (stage 4)."""
        return lbrp(samples, sr, timestamps_s, self.config)

    def __call__(self, clip: AudioClip, timestamps_s: np.ndarray) -> AudioFeatures:
        """All stages after loading; see :func:`audio_features`."""
        return audio_features(clip, timestamps_s, denoise=self.denoise, config=self.config)
