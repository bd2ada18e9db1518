"""Noise reduction: each method raises the SNR of speech for the noise it is meant for, keeps clean speech,
keeps length and time alignment, and does not blow up silence.

SNR is measured against the clean reference, sample by sample, so any change of length or any time shift
of the output would lower it. The speech is synthetic (always) and, when ``../shared/data/lfw-voices`` is
present, three real clips of it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from forensic_face.audio import denoise as dn
from forensic_face.audio.io import load_audio
from forensic_face.audio.synth import synth_speech

SR = 16000
METHODS = ("spectral_subtraction", "bandpass", "wiener", "chain")
INPUT_SNR_DB = 5.0


# ----------------------------------------------------------------------------- helpers


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """SNR of ``estimate`` against the clean ``reference`` (same length), dB."""
    ref = reference.astype(np.float64)
    err = estimate.astype(np.float64) - ref
    return float(10.0 * np.log10(np.sum(ref**2) / max(np.sum(err**2), 1e-20)))


def add_noise(clean: np.ndarray, noise: np.ndarray, snr: float) -> np.ndarray:
    """``clean`` plus ``noise`` scaled to the given SNR (dB), float32."""
    clean64 = clean.astype(np.float64)
    gain = np.sqrt(np.mean(clean64**2) / np.mean(noise**2)) / 10.0 ** (snr / 20.0)
    return (clean64 + gain * noise).astype(np.float32)


def white_noise(n: int, seed: int) -> np.ndarray:
    """Stationary white Gaussian noise, unit variance."""
    return np.random.default_rng(seed).standard_normal(n)


def hum_rumble_hiss(n: int, seed: int) -> np.ndarray:
    """Out-of-band noise: 50 Hz mains hum with harmonics, rumble below 60 Hz and hiss above 5 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    hum = sum(
        np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) / k for k, f in enumerate((50, 100, 150), 1)
    )
    rumble = signal.sosfilt(signal.butter(4, 60, "lowpass", fs=SR, output="sos"), rng.standard_normal(n))
    hiss = signal.sosfilt(signal.butter(6, 5000, "highpass", fs=SR, output="sos"), rng.standard_normal(n))
    return sum(part / np.std(part) for part in (hum, rumble, hiss))


def _voice_clips(voices_dir: Path, count: int = 3) -> list[np.ndarray]:
    clips = sorted(voices_dir.glob("*/*_v01.ogg"))[:count]
    return [load_audio(path).samples for path in clips]


@pytest.fixture(scope="module", params=["synthetic", "lfw-voices"])
def speech(request: pytest.FixtureRequest) -> list[np.ndarray]:
    """Clean speech signals: a synthetic voice, or three real clips (skipped when the data is absent)."""
    if request.param == "synthetic":
        return [synth_speech(3.0, f0=120.0, seed=1), synth_speech(2.5, f0=210.0, seed=2)]
    return _voice_clips(request.getfixturevalue("voices_dir"))


def _gains(clean_clips: list[np.ndarray], make_noise, method: str, seed: int = 0) -> list[float]:
    """SNR gain (dB) of ``method`` on each clip with noise from ``make_noise(n, seed)`` at 5 dB."""
    gains = []
    for k, clean in enumerate(clean_clips):
        noisy = add_noise(clean, make_noise(clean.size, seed + k), INPUT_SNR_DB)
        out = dn.denoise(noisy, SR, method)
        assert out.shape == clean.shape and out.dtype == np.float32
        gains.append(snr_db(clean, out) - snr_db(clean, noisy))
    return gains


# ----------------------------------------------------------------------------- SNR gains


@pytest.mark.parametrize(
    ("method", "min_gain_db"),
    # measured on these signals (seeded): spectral subtraction +7.0..+10.4 dB, Wiener +7.3..+13.4 dB,
    # chain +7.3..+14.0 dB (real voices at the low end)
    [("spectral_subtraction", 4.0), ("wiener", 4.0), ("chain", 4.0)],
)
def test_stft_methods_raise_snr_in_white_noise(
    speech: list[np.ndarray], method: str, min_gain_db: float
) -> None:
    gains = _gains(speech, white_noise, method)
    assert min(gains) >= min_gain_db, f"{method}: SNR gains {np.round(gains, 1)} dB"


@pytest.mark.parametrize(
    ("method", "min_gain_db"),
    # measured: band-pass +10.2..+11.0 dB, chain +11.8..+22.0 dB
    [("bandpass", 6.0), ("chain", 8.0)],
)
def test_bandpass_removes_hum_rumble_and_hiss(
    speech: list[np.ndarray], method: str, min_gain_db: float
) -> None:
    gains = _gains(speech, hum_rumble_hiss, method)
    assert min(gains) >= min_gain_db, f"{method}: SNR gains {np.round(gains, 1)} dB"


def test_chain_beats_each_part_on_mixed_noise(speech: list[np.ndarray]) -> None:
    """Hum + hiss + white noise: the chain (band-pass then Wiener) does better than either stage alone."""

    def mixed(n: int, seed: int) -> np.ndarray:
        return hum_rumble_hiss(n, seed) / np.sqrt(3.0) + white_noise(n, seed + 100)

    gains = {m: np.array(_gains(speech, mixed, m)) for m in METHODS}
    assert np.all(gains["chain"] > gains["bandpass"]), gains
    assert np.all(gains["chain"] > gains["wiener"]), gains
    # measured: chain +8.3..+15.7 dB, Wiener +7.8..+13.0 dB, band-pass +5.4..+5.7 dB
    assert gains["chain"].min() >= 6.0, gains


@pytest.mark.parametrize("method", ["spectral_subtraction", "wiener"])
def test_min_stats_follows_a_noise_level_step(method: str) -> None:
    """Noise 10 dB louder in the second half: minimum statistics tracks it, the global estimate cannot."""
    clean = synth_speech(3.0, seed=3)
    n = clean.size
    step = np.where(np.arange(n) < n // 2, 1.0, np.sqrt(10.0))
    noisy = add_noise(clean, white_noise(n, 7) * step, INPUT_SNR_DB)
    func = dn.spectral_subtraction if method == "spectral_subtraction" else dn.wiener
    gain = {
        how: snr_db(clean, func(noisy, SR, noise=how)) - snr_db(clean, noisy)
        for how in ("low_energy", "min_stats")
    }
    # measured: low_energy +1.6 / +2.4 dB, min_stats +5.2 / +6.5 dB (spectral subtraction / Wiener)
    assert gain["min_stats"] > gain["low_energy"] + 1.0, gain


def test_estimate_noise_psd_levels() -> None:
    """Both estimators recover the level of pure noise; min_stats follows a 10x step within a factor 2."""
    rng = np.random.default_rng(0)
    level = np.where(np.arange(600) < 300, 1.0, 10.0)[:, None]
    power = rng.exponential(1.0, size=(600, 64)) * level  # periodogram of Gaussian noise
    low = dn.estimate_noise_psd(power[:300], "low_energy")
    assert low.shape == (1, 64)
    # the quietest 20 % of frames of pure noise sit a little below the mean
    assert 0.7 < float(np.median(low)) < 1.05
    track = dn.estimate_noise_psd(power, "min_stats")
    assert track.shape == power.shape
    assert 0.5 < float(np.median(track[150:250])) < 2.0
    assert 5.0 < float(np.median(track[480:])) < 20.0
    with pytest.raises(ValueError, match="unknown noise estimation"):
        dn.estimate_noise_psd(power, "median")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- no harm


@pytest.mark.parametrize("method", METHODS)
def test_clean_speech_survives(speech: list[np.ndarray], method: str) -> None:
    """On clean input the output stays close to the input (distortion at least 15 dB down)."""
    # measured: spectral subtraction >= 37 dB, Wiener >= 31 dB, band-pass and chain >= 22 dB
    snrs = [snr_db(clean, dn.denoise(clean, SR, method)) for clean in speech]
    assert min(snrs) >= 15.0, f"{method}: {np.round(snrs, 1)} dB"


@pytest.mark.parametrize("method", METHODS)
def test_output_is_time_aligned(method: str) -> None:
    """The cross-correlation of output and clean input peaks at lag 0 (no delay, zero-phase)."""
    clean = synth_speech(2.0, seed=4)
    noisy = add_noise(clean, white_noise(clean.size, 5), 10.0)
    out = dn.denoise(noisy, SR, method).astype(np.float64)
    clean = clean.astype(np.float64)
    max_lag = 40
    lags = np.arange(-max_lag, max_lag + 1)
    core = slice(max_lag, clean.size - max_lag)
    xcorr = [float(np.sum(clean[core] * out[max_lag + lag : clean.size - max_lag + lag])) for lag in lags]
    assert lags[int(np.argmax(xcorr))] == 0


@pytest.mark.parametrize("method", ["spectral_subtraction", "wiener", "chain"])
def test_noise_only_is_attenuated(method: str) -> None:
    """A recording of stationary noise alone comes out at least 10 dB quieter (measured -14 to -22 dB)."""
    noise = (0.05 * white_noise(2 * SR, 11)).astype(np.float32)
    out = dn.denoise(noise, SR, method)
    change_db = 10.0 * np.log10(np.mean(out.astype(np.float64) ** 2) / np.mean(noise.astype(np.float64) ** 2))
    assert change_db <= -10.0


@pytest.mark.parametrize("method", [*METHODS, "none"])
def test_silence_stays_silent(method: str) -> None:
    zeros = np.zeros(SR, dtype=np.float32)
    out = dn.denoise(zeros, SR, method)
    assert out.dtype == np.float32 and out.shape == zeros.shape
    assert np.all(np.isfinite(out)) and np.abs(out).max() <= 1e-9
    # a very quiet hiss (-80 dBFS) is not amplified
    faint = (1e-4 * white_noise(SR, 12)).astype(np.float32)
    out = dn.denoise(faint, SR, method)
    assert np.all(np.isfinite(out))
    assert np.sqrt(np.mean(out.astype(np.float64) ** 2)) <= 1.01 * np.sqrt(
        np.mean(faint.astype(np.float64) ** 2)
    )


@pytest.mark.parametrize("method", [*METHODS, "none"])
@pytest.mark.parametrize("n", [0, 1, 100, 511, 16001])
def test_any_length_and_dtype(method: str, n: int) -> None:
    """Any length is kept; float64 input gives float32 output; the input is not modified."""
    x = (0.1 * white_noise(n, n)).astype(np.float64)
    before = x.copy()
    out = dn.denoise(x, SR, method)
    assert out.shape == (n,) and out.dtype == np.float32
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(x, before)


def test_bandpass_at_8khz_and_band_edges() -> None:
    """At 8 kHz (Nyquist at the band edge) only the high-pass is applied; in-band tones pass, hum does not."""
    t = np.arange(8000) / 8000
    hum = np.sin(2 * np.pi * 50 * t)
    tone = np.sin(2 * np.pi * 1000 * t)
    out = dn.bandpass(hum + tone, 8000)
    assert out.shape == t.shape
    core = slice(800, -800)
    assert np.std(out[core] - tone[core]) < 0.05
    # 16 kHz: 6 kHz hiss is cut by more than 20 dB, 1 kHz kept within 0.5 dB
    t = np.arange(SR) / SR
    for freq, check in ((6000.0, lambda g: g < -20.0), (1000.0, lambda g: abs(g) < 0.5)):
        x = np.sin(2 * np.pi * freq * t)
        gain = 20 * np.log10(np.std(dn.bandpass(x, SR)[1600:-1600]) / np.std(x[1600:-1600]))
        assert check(gain), (freq, gain)


def test_unknown_method_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown denoise method"):
        dn.denoise(np.zeros(100, dtype=np.float32), SR, "median")  # type: ignore[arg-type]
