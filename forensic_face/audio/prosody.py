"""Pitch (F0), energy and voice activity on a 10 ms grid, and their statistics per video frame.

F0 comes from YIN (``librosa.yin``; pYIN's HMM is ~50x slower) run on an 8 kHz copy of the signal,
which keeps F0 and its first harmonics and halves the cost. YIN always returns a period, so
voicing is decided separately: a frame is voiced when the normalised cross-correlation (NCCF) of
the signal with itself one YIN period later is at least ``periodicity_threshold``, and the frame
is loud enough. Voice activity (speech, voiced or not) needs the level test and either voicing or
a low spectral flatness (noise is flat, speech is not).
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np
import scipy.fft as sfft

from forensic_face.audio.io import AudioClip, resample

_EPS = 1e-12
SILENCE_DB = -100.0  # RMS level reported for frames and windows that contain no signal, dBFS
MIN_SLOPE_FRAMES = 5  # voiced frames (50 ms) needed before an F0 slope is reported

#: Columns of :func:`per_frame_prosody` output, in order.
PROSODY_COLUMNS: tuple[str, ...] = (
    "f0_median_hz",  # median F0 of the voiced 10 ms frames in the window; 0 if none are voiced
    "f0_std_st",  # std of F0 in semitones (12*log2 f0) over voiced frames; 0 if fewer than 2
    "f0_slope_st_per_s",  # least-squares slope of F0 in semitones per second; 0 if fewer than 5
    "voiced_fraction",  # voiced frames / frames of the window inside the clip, 0..1
    "energy_mean_db",  # mean frame RMS in dBFS over the window (-100 where there is no signal)
    "energy_std_db",  # std of frame RMS in dB over the window
    "speech_fraction",  # voice-activity frames / frames of the window inside the clip, 0..1
)


@dataclass(frozen=True)
class ProsodyConfig:
    """Parameters of the 10 ms prosody track."""

    hop_s: float = 0.010  # frame step of the track, s
    fmin: float = 60.0  # lowest F0 searched, Hz
    fmax: float = 400.0  # highest F0 searched, Hz
    analysis_sr: int = 8000  # rate of the copy YIN and the NCCF run on, Hz
    yin_frame_s: float = 0.040  # YIN frame; must hold two periods of fmin (33 ms at 60 Hz)
    nccf_window_s: float = 0.030  # correlation window of the periodicity measure, s
    periodicity_threshold: float = 0.6  # NCCF at the YIN period needed to call a frame voiced
    spectrum_frame: int = 512  # FFT size (at the input rate) for RMS and spectral flatness
    flatness_threshold: float = 0.35  # flatness (80-4000 Hz) below which a loud frame counts as speech
    relative_floor_db: float = 35.0  # frames this far below the clip's 95th-percentile level are pauses
    absolute_floor_db: float = -60.0  # frames below this RMS (dBFS) are pauses whatever the clip level


@dataclass(frozen=True)
class ProsodyTrack:
    """Per-frame prosody on a regular grid; every array has shape (frames,)."""

    times_s: np.ndarray  # frame centres, s
    f0_hz: np.ndarray  # YIN F0 where voiced, 0 elsewhere
    voiced: np.ndarray  # bool
    periodicity: np.ndarray  # NCCF at the YIN period, -1..1 (0 for silent frames)
    rms_db: np.ndarray  # frame RMS, dBFS (>= -100)
    flatness: np.ndarray  # spectral flatness over 80-4000 Hz, 0..1
    speech: np.ndarray  # bool voice activity
    hop_s: float  # grid step, s


def _frames(x: np.ndarray, hop: int, length: int, n_frames: int, extra: int = 0) -> np.ndarray:
    """(n_frames, length + extra) view: frame i starts ``length // 2`` before sample i * hop (zero padded)."""
    pad = np.zeros(length // 2 + n_frames * hop + length + extra, dtype=x.dtype)
    used = min(x.size, pad.size - length // 2)
    pad[length // 2 : length // 2 + used] = x[:used]
    view = np.lib.stride_tricks.sliding_window_view(pad, length + extra)
    return view[: n_frames * hop : hop]


def _yin_f0(x8: np.ndarray, cfg: ProsodyConfig, n_frames: int) -> np.ndarray:
    """YIN F0 (Hz) per frame of the analysis-rate signal; shape (n_frames,)."""
    hop = int(round(cfg.hop_s * cfg.analysis_sr))
    frame = int(round(cfg.yin_frame_s * cfg.analysis_sr))
    f0 = librosa.yin(
        x8,
        fmin=cfg.fmin,
        fmax=cfg.fmax,
        sr=cfg.analysis_sr,
        frame_length=frame,
        hop_length=hop,
        center=True,
        pad_mode="constant",
    )
    out = np.full(n_frames, cfg.fmin)
    out[: min(n_frames, f0.size)] = f0[:n_frames]
    return out


def _nccf(x8: np.ndarray, f0: np.ndarray, cfg: ProsodyConfig) -> np.ndarray:
    """Normalised cross-correlation at the YIN period (best of floor/ceil lag); shape (frames,)."""
    sr, n = cfg.analysis_sr, f0.size
    win = int(round(cfg.nccf_window_s * sr))
    max_lag = int(np.ceil(sr / cfg.fmin)) + 1
    seg = _frames(x8, int(round(cfg.hop_s * sr)), win, n, extra=max_lag)  # (n, win + max_lag)
    head = seg[:, :win]
    e0 = np.einsum("ij,ij->i", head, head)
    period = np.clip(sr / f0, 1.0, max_lag - 1.0)
    best = np.full(n, -1.0)
    base = np.arange(win)[None, :]
    for lag in (np.floor(period), np.ceil(period)):
        shifted = np.take_along_axis(seg, base + lag.astype(np.intp)[:, None], axis=1)
        num = np.einsum("ij,ij->i", head, shifted)
        e1 = np.einsum("ij,ij->i", shifted, shifted)
        best = np.maximum(best, num / np.sqrt(e0 * e1 + _EPS))
    return np.where(e0 > _EPS, best, 0.0)


def _level_and_flatness(
    x: np.ndarray, sr: int, cfg: ProsodyConfig, n_frames: int
) -> tuple[np.ndarray, np.ndarray]:
    """Frame RMS (dBFS) and spectral flatness (80-4000 Hz) on the prosody grid; each (n_frames,)."""
    size = cfg.spectrum_frame
    frames = _frames(x, int(round(cfg.hop_s * sr)), size, n_frames)  # (n_frames, size) float32
    rms = np.sqrt(np.einsum("ij,ij->i", frames, frames) / size)
    rms_db = np.maximum(20.0 * np.log10(rms + _EPS), SILENCE_DB)
    spec = sfft.rfft(frames * np.hanning(size).astype(np.float32), axis=1)  # float32 FFT: 5x numpy's
    freqs = np.fft.rfftfreq(size, 1.0 / sr)
    band = spec[:, (freqs >= 80.0) & (freqs <= min(4000.0, sr / 2))]
    power = band.real**2 + band.imag**2 + 1e-10
    flatness = np.exp(np.mean(np.log(power), axis=1)) / np.mean(power, axis=1)
    return rms_db, flatness


def prosody_track(samples: np.ndarray, sr: int, config: ProsodyConfig | None = None) -> ProsodyTrack:
    """F0, voicing, RMS level, flatness and voice activity every ``hop_s`` (10 ms) for samples (n,) at ``sr``.

    Frame i is centred at i * hop_s; there are n // round(hop_s * sr) + 1 frames.
    """
    cfg = config or ProsodyConfig()
    x = np.asarray(samples, dtype=np.float32)
    n_frames = x.size // int(round(cfg.hop_s * sr)) + 1
    x8 = resample(x.astype(np.float64), sr, cfg.analysis_sr).astype(np.float32)
    f0 = _yin_f0(x8, cfg, n_frames)
    periodicity = _nccf(x8, f0, cfg)
    rms_db, flatness = _level_and_flatness(x, sr, cfg, n_frames)
    loud_ref = np.percentile(rms_db, 95) if rms_db.size else SILENCE_DB
    loud = rms_db > max(cfg.absolute_floor_db, loud_ref - cfg.relative_floor_db)
    in_range = (f0 > cfg.fmin * 1.01) & (f0 < cfg.fmax * 0.99)  # YIN's fallback sits on the bounds
    voiced = loud & in_range & (periodicity >= cfg.periodicity_threshold)
    speech = loud & (voiced | (flatness < cfg.flatness_threshold))
    return ProsodyTrack(
        times_s=np.arange(n_frames) * cfg.hop_s,
        f0_hz=np.where(voiced, f0, 0.0),
        voiced=voiced,
        periodicity=periodicity,
        rms_db=rms_db,
        flatness=flatness,
        speech=speech,
        hop_s=cfg.hop_s,
    )


def _masked_median(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Median of ``values`` (n, w) over the True entries of ``mask`` per row; 0 for empty rows."""
    count = mask.sum(axis=1)
    ordered = np.sort(np.where(mask, values, np.inf), axis=1)
    lo = np.take_along_axis(ordered, np.maximum((count - 1) // 2, 0)[:, None], axis=1)[:, 0]
    hi = np.take_along_axis(ordered, np.minimum(count // 2, values.shape[1] - 1)[:, None], axis=1)[:, 0]
    return np.where(count > 0, 0.5 * (lo + hi), 0.0)


def _masked_mean_std(values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, std, count) over the True entries per row; mean and std are 0 for empty rows."""
    count = mask.sum(axis=1)
    safe = np.maximum(count, 1)
    mean = np.where(mask, values, 0.0).sum(axis=1) / safe
    var = np.where(mask, (values - mean[:, None]) ** 2, 0.0).sum(axis=1) / safe
    return mean, np.sqrt(var), count


def _masked_slope(t: np.ndarray, y: np.ndarray, mask: np.ndarray, min_points: int = 2) -> np.ndarray:
    """Least-squares slope dy/dt per row over the masked entries; 0 with fewer than ``min_points``."""
    t_mean, _, count = _masked_mean_std(t, mask)
    y_mean, _, _ = _masked_mean_std(y, mask)
    dt = np.where(mask, t - t_mean[:, None], 0.0)
    denom = (dt * dt).sum(axis=1)
    num = (dt * np.where(mask, y - y_mean[:, None], 0.0)).sum(axis=1)
    return np.where((count >= max(min_points, 2)) & (denom > _EPS), num / np.maximum(denom, _EPS), 0.0)


def window_prosody(track: ProsodyTrack, timestamps_s: np.ndarray, window_s: float = 1.0) -> np.ndarray:
    """Statistics of ``track`` over a ``window_s`` window centred on each timestamp.

    Returns float32 (len(timestamps_s), 7) with the columns of :data:`PROSODY_COLUMNS`. Frames
    outside the clip are ignored; a window with no voiced frames gives F0 columns 0 and
    ``voiced_fraction`` 0; a window entirely outside the clip gives energy -100 dBFS. Never NaN.
    """
    ts = np.atleast_1d(np.asarray(timestamps_s, dtype=np.float64))
    half = int(round(window_s / 2.0 / track.hop_s))
    centre = np.rint(ts / track.hop_s).astype(np.int64)
    idx = centre[:, None] + np.arange(-half, half + 1)[None, :]  # (n, w)
    inside = (idx >= 0) & (idx < track.f0_hz.size)
    safe = np.clip(idx, 0, max(track.f0_hz.size - 1, 0))
    voiced = inside & track.voiced[safe]
    semitones = 12.0 * np.log2(np.maximum(track.f0_hz[safe], 1.0))
    _, st_std, n_voiced = _masked_mean_std(semitones, voiced)
    energy_mean, energy_std, n_inside = _masked_mean_std(track.rms_db[safe], inside)
    _, _, n_speech = _masked_mean_std(semitones, inside & track.speech[safe])
    frames_inside = np.maximum(n_inside, 1)
    out = np.stack(
        [
            _masked_median(track.f0_hz[safe], voiced),
            np.where(n_voiced >= 2, st_std, 0.0),
            _masked_slope(idx * track.hop_s, semitones, voiced, MIN_SLOPE_FRAMES),
            n_voiced / frames_inside,
            np.where(n_inside > 0, energy_mean, SILENCE_DB),
            energy_std,
            n_speech / frames_inside,
        ],
        axis=1,
    )
    return out.astype(np.float32)


def per_frame_prosody(
    clip_or_samples: AudioClip | np.ndarray,
    sr: int | None,
    timestamps_s: np.ndarray,
    window_s: float = 1.0,
    config: ProsodyConfig | None = None,
) -> np.ndarray:
    """Prosody statistics for a ``window_s`` window centred on each video-frame timestamp (s).

    ``clip_or_samples``: an :class:`AudioClip` (``sr`` may be None) or samples (n,) at ``sr`` Hz.
    Returns float32 (len(timestamps_s), 7), columns :data:`PROSODY_COLUMNS`; see :func:`window_prosody`.
    """
    if isinstance(clip_or_samples, AudioClip):
        samples, rate = clip_or_samples.samples, clip_or_samples.sr
    elif sr is None:
        raise ValueError("per_frame_prosody: pass sr (Hz) with a raw sample array")
    else:
        samples, rate = np.asarray(clip_or_samples), int(sr)
    return window_prosody(prosody_track(samples, rate, config), timestamps_s, window_s)
