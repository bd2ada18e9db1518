"""Deterministic speech-like and chirp signals for tests, demos and benchmarks.

Nothing here is meant to sound natural; it is meant to have the structure the audio features look
at: a periodic glottal source with a moving F0, formant resonances, syllables and pauses. Every
random choice comes from ``numpy.random.default_rng(seed)``, so a (seconds, sr, f0, seed) tuple
always gives the same samples.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import signal

#: (F1, F2, F3) in Hz of a few vowels (adult male averages, Peterson & Barney 1952); F4 is fixed.
_VOWELS: tuple[tuple[float, float, float], ...] = (
    (730.0, 1090.0, 2440.0),  # /a/
    (530.0, 1840.0, 2480.0),  # /e/
    (270.0, 2290.0, 3010.0),  # /i/
    (570.0, 840.0, 2410.0),  # /o/
    (300.0, 870.0, 2240.0),  # /u/
    (660.0, 1720.0, 2410.0),  # /ae/
)
_F4_HZ = 3500.0
_BANDWIDTHS_HZ = (80.0, 100.0, 150.0, 250.0)  # F1..F4 bandwidths

F0Contour = Callable[[np.ndarray], np.ndarray]  # time in s (n,) -> F0 multiplier (n,)


def _phase_from_frequency(freq_hz: np.ndarray, sr: int) -> np.ndarray:
    """Running phase in cycles for an instantaneous frequency track (n,) in Hz."""
    return np.cumsum(freq_hz / sr)


def _rosenberg_derivative(phase_cycles: np.ndarray, open_q: float = 0.4, close_q: float = 0.16) -> np.ndarray:
    """Time derivative of the Rosenberg glottal flow pulse, evaluated at each sample's phase.

    ``open_q``/``close_q`` are the opening and closing phases as fractions of a period. The
    derivative (lip radiation folded in) is what a microphone records from the source.
    """
    p = np.mod(phase_cycles, 1.0)
    flow = np.zeros_like(p)
    opening = p < open_q
    closing = (p >= open_q) & (p < open_q + close_q)
    flow[opening] = 0.5 * (1.0 - np.cos(np.pi * p[opening] / open_q))
    flow[closing] = np.cos(0.5 * np.pi * (p[closing] - open_q) / close_q)
    return np.diff(flow, prepend=flow[0])


def _resonator(freq_hz: float, bandwidth_hz: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Klatt two-pole resonator (b, a) with unit gain at DC."""
    r = np.exp(-np.pi * bandwidth_hz / sr)
    a = np.array([1.0, -2.0 * r * np.cos(2.0 * np.pi * freq_hz / sr), r * r])
    return np.array([a.sum()]), a


def _syllable_plan(
    seconds: float, rng: np.random.Generator, syllable_rate: float
) -> list[tuple[float, float]]:
    """(start_s, length_s) of each syllable: words of 1-4 syllables separated by 0.15-0.4 s pauses."""
    plan: list[tuple[float, float]] = []
    t = 0.05
    mean_len = 1.0 / syllable_rate
    while t < seconds - 0.1:
        for _ in range(int(rng.integers(1, 5))):
            length = float(rng.uniform(0.7, 1.3) * mean_len)
            if t + length > seconds - 0.02:
                break
            plan.append((t, length))
            t += length
        t += float(rng.uniform(0.15, 0.4))
    return plan


def _envelope_and_vowels(
    n: int, sr: int, plan: list[tuple[float, float]], rng: np.random.Generator
) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Amplitude envelope (n,) with a raised-cosine bump per syllable, and (start, stop, vowel) segments."""
    env = np.zeros(n)
    segments = []
    for start_s, length_s in plan:
        i0, i1 = int(start_s * sr), min(n, int((start_s + length_s) * sr))
        env[i0:i1] = np.sin(np.pi * np.linspace(0.0, 1.0, i1 - i0)) ** 0.7 * rng.uniform(0.6, 1.0)
        segments.append((i0, i1, int(rng.integers(len(_VOWELS)))))
    return env, segments


def _formant_filter(
    source: np.ndarray, sr: int, segments: list[tuple[int, int, int]], shift: float
) -> np.ndarray:
    """Cascade of four resonators whose F1-F3 jump to each syllable's vowel; filter state carries over."""
    out = np.zeros_like(source)
    bounds = [0] + [s[0] for s in segments[1:]] + [len(source)] if segments else [0, len(source)]
    vowels = [s[2] for s in segments] or [0]
    states = [np.zeros(2) for _ in range(4)]
    for k, vowel in enumerate(vowels):
        seg = source[bounds[k] : bounds[k + 1]]
        freqs = [f * shift for f in _VOWELS[vowel]] + [_F4_HZ * shift]
        for j, (freq, bw) in enumerate(zip(freqs, _BANDWIDTHS_HZ, strict=True)):
            b, a = _resonator(min(freq, 0.45 * sr), bw, sr)
            seg, states[j] = signal.lfilter(b, a, seg, zi=states[j])
        out[bounds[k] : bounds[k + 1]] = seg
    return out


def _default_contour(t: np.ndarray, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Declination (-15 % over the clip) plus slow random accents of about +-8 %."""
    knots = np.linspace(0.0, max(seconds, 1e-3), max(3, int(seconds * 3) + 1))
    accents = np.interp(t, knots, rng.uniform(-0.08, 0.08, knots.size))
    return 1.0 - 0.15 * t / max(seconds, 1e-3) + accents


def synth_speech(
    seconds: float,
    sr: int = 16000,
    f0: float = 120.0,
    seed: int = 0,
    *,
    contour: F0Contour | None = None,
    formant_shift: float = 1.0,
    syllable_rate: float = 4.0,
    breath: float = 0.003,
    peak: float = 0.5,
) -> np.ndarray:
    """Speech-like test signal (source-filter model), deterministic for a given ``seed``.

    A Rosenberg glottal pulse train whose F0 follows ``f0 * contour(t)`` (default: declination plus
    random accents, with 0.5 % jitter) goes through four formant resonators (F1-F3 from a vowel
    table per syllable, scaled by ``formant_shift``, F4 fixed), and is shaped by syllable envelopes
    of ~1/``syllable_rate`` s separated by pauses. ``breath`` adds that much aspiration noise
    (relative amplitude) inside syllables.

    Returns float32 samples, shape (round(seconds * sr),), peak-normalised to ``peak`` (full scale 1).
    """
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    mult = contour(t) if contour is not None else _default_contour(t, seconds, rng)
    f0_track = f0 * np.asarray(mult, dtype=np.float64) * (1.0 + 0.005 * rng.standard_normal(n))
    source = _rosenberg_derivative(_phase_from_frequency(f0_track, sr))
    source /= max(np.abs(source).max(), 1e-12)
    env, segments = _envelope_and_vowels(n, sr, _syllable_plan(seconds, rng, syllable_rate), rng)
    voiced = _formant_filter(source, sr, segments, formant_shift)
    voiced /= max(np.abs(voiced).max(), 1e-12)
    y = env * (voiced + breath * rng.standard_normal(n))
    return _normalise(y, peak)


def chirp(
    seconds: float,
    sr: int = 16000,
    f_start: float = 120.0,
    f_end: float = 240.0,
    *,
    n_harmonics: int = 20,
    max_hz: float = 4000.0,
    log_sweep: bool = True,
    peak: float = 0.5,
) -> np.ndarray:
    """Harmonic chirp: F0 sweeps from ``f_start`` to ``f_end`` Hz (log or linear in time).

    Harmonic k has amplitude 1/k and is muted (smoothly) wherever k*F0 exceeds ``max_hz`` or
    0.45*sr. ``f_start == f_end`` gives a steady harmonic tone. Returns float32 (round(seconds*sr),)
    peak-normalised to ``peak``.
    """
    n = int(round(seconds * sr))
    frac = np.arange(n) / max(n - 1, 1)
    if log_sweep:
        f0 = f_start * (f_end / f_start) ** frac
    else:
        f0 = f_start + (f_end - f_start) * frac
    phase = 2.0 * np.pi * _phase_from_frequency(f0, sr)
    limit = min(max_hz, 0.45 * sr)
    y = np.zeros(n)
    for k in range(1, n_harmonics + 1):
        fk = k * f0
        gain = np.clip((limit - fk) / 50.0, 0.0, 1.0)  # 50 Hz fade instead of a hard cut
        if gain.any():
            y += gain * np.sin(k * phase) / k
    return _normalise(y, peak)


def _normalise(y: np.ndarray, peak: float) -> np.ndarray:
    top = np.abs(y).max() if y.size else 0.0
    scale = peak / top if top > 0 else 0.0
    return (y * scale).astype(np.float32)
