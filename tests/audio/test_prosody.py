"""Pitch (F0), RMS energy and voice activity per video-frame timestamp."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from forensic_face.audio.io import audio_from_array, load_audio
from forensic_face.audio.prosody import (
    PROSODY_COLUMNS,
    SILENCE_DB,
    per_frame_prosody,
    prosody_track,
    window_prosody,
)
from forensic_face.audio.synth import chirp, synth_speech

SR = 16000
COL = {name: j for j, name in enumerate(PROSODY_COLUMNS)}
MID = np.array([0.5, 1.0, 1.5])  # timestamps whose 1 s windows lie inside a 2 s clip


def _col(rows: np.ndarray, name: str) -> np.ndarray:
    return rows[:, COL[name]]


def test_columns() -> None:
    assert len(PROSODY_COLUMNS) == 7 and len(set(PROSODY_COLUMNS)) == 7
    assert PROSODY_COLUMNS[0] == "f0_median_hz" and "energy_mean_db" in PROSODY_COLUMNS


@pytest.mark.parametrize("f0", [90.0, 150.0, 220.0])
def test_steady_tone_pitch(f0: float) -> None:
    rows = per_frame_prosody(chirp(2.0, f_start=f0, f_end=f0), SR, MID)
    assert rows.shape == (3, 7) and rows.dtype == np.float32
    np.testing.assert_allclose(_col(rows, "f0_median_hz"), f0, rtol=0.015)  # measured within 0.3 %
    assert np.all(_col(rows, "voiced_fraction") >= 0.95)
    assert np.all(_col(rows, "speech_fraction") >= 0.95)
    assert np.all(_col(rows, "f0_std_st") < 0.1)
    assert np.all(np.abs(_col(rows, "f0_slope_st_per_s")) < 0.2)


@pytest.mark.parametrize(("f_start", "f_end"), [(110.0, 220.0), (220.0, 110.0)])
def test_chirp_slope_and_track(f_start: float, f_end: float) -> None:
    """A log sweep over an octave in 2 s moves 6 semitones per second; F0 at t follows the sweep at t."""
    rows = per_frame_prosody(chirp(2.0, f_start=f_start, f_end=f_end), SR, MID)
    expected_slope = 12.0 * np.log2(f_end / f_start) / 2.0
    np.testing.assert_allclose(_col(rows, "f0_slope_st_per_s"), expected_slope, atol=0.5)
    assert np.all(np.sign(_col(rows, "f0_slope_st_per_s")) == np.sign(expected_slope))
    # log sweep: F0(t) = f_start * (f_end / f_start) ** (t / 2); the window median is F0 at its centre
    expected_f0 = f_start * (f_end / f_start) ** (MID / 2.0)
    np.testing.assert_allclose(_col(rows, "f0_median_hz"), expected_f0, rtol=0.015)
    # +-3 semitones over a 1 s window: a uniform spread of 6 st has std 6 / sqrt(12) = 1.73 st
    np.testing.assert_allclose(_col(rows, "f0_std_st"), 6.0 / np.sqrt(12.0), atol=0.15)


def test_silence() -> None:
    rows = per_frame_prosody(np.zeros(2 * SR, dtype=np.float32), SR, MID)
    np.testing.assert_array_equal(_col(rows, "voiced_fraction"), 0.0)
    np.testing.assert_array_equal(_col(rows, "speech_fraction"), 0.0)
    np.testing.assert_array_equal(_col(rows, "f0_median_hz"), 0.0)
    np.testing.assert_array_equal(_col(rows, "energy_mean_db"), SILENCE_DB)
    np.testing.assert_array_equal(_col(rows, "energy_std_db"), 0.0)


def test_white_noise_is_not_voice() -> None:
    """Loud stationary noise: energy is measured, but nothing is voiced and it is not taken for speech."""
    noise = (0.1 * np.random.default_rng(0).standard_normal(2 * SR)).astype(np.float32)
    rows = per_frame_prosody(noise, SR, MID)
    assert np.all(_col(rows, "voiced_fraction") <= 0.05)
    assert np.all(_col(rows, "speech_fraction") <= 0.1)
    np.testing.assert_allclose(_col(rows, "energy_mean_db"), -20.0, atol=0.5)  # RMS 0.1 = -20 dBFS


def test_energy_is_calibrated_in_dbfs() -> None:
    """A sine of amplitude A reads 20*log10(A/sqrt(2)) dBFS; 20 dB quieter reads 20 dB lower."""
    levels = {}
    for amp in (0.5, 0.05):
        sine = chirp(2.0, f_start=150.0, f_end=150.0, n_harmonics=1, peak=amp)
        levels[amp] = _col(per_frame_prosody(sine, SR, MID), "energy_mean_db")
        np.testing.assert_allclose(levels[amp], 20 * np.log10(amp / np.sqrt(2)), atol=0.3)
    np.testing.assert_allclose(levels[0.5] - levels[0.05], 20.0, atol=0.1)


def test_louder_voice_has_higher_energy() -> None:
    """The same recording 20 dB quieter reads 20 dB lower (a -70 dBFS floor keeps pauses above -100 dBFS)."""
    floor = 10 ** (-70 / 20) * np.random.default_rng(3).standard_normal(2 * SR)
    speech = (synth_speech(2.0, seed=3, peak=0.5) + floor).astype(np.float32)
    quiet = (speech * 0.1).astype(np.float32)  # -20 dB
    loud = _col(per_frame_prosody(speech, SR, MID), "energy_mean_db")
    soft = _col(per_frame_prosody(quiet, SR, MID), "energy_mean_db")
    np.testing.assert_allclose(loud - soft, 20.0, atol=0.2)
    # the pitch does not depend on the level
    np.testing.assert_allclose(
        _col(per_frame_prosody(speech, SR, MID), "f0_median_hz"),
        _col(per_frame_prosody(quiet, SR, MID), "f0_median_hz"),
        rtol=0.01,
    )


def test_timestamps_beyond_the_clip() -> None:
    """Windows partly outside use the frames inside; windows entirely outside read as silence."""
    tone = chirp(2.0, f_start=150.0, f_end=150.0)
    ts = np.array([-2.0, -0.4, 0.0, 1.0, 2.0, 2.4, 5.0, 1e6])
    rows = per_frame_prosody(tone, SR, ts)
    assert rows.shape == (ts.size, 7) and np.all(np.isfinite(rows))
    outside = [0, 6, 7]
    for j in outside:
        assert _col(rows, "energy_mean_db")[j] == SILENCE_DB
        assert _col(rows, "voiced_fraction")[j] == 0.0 and _col(rows, "f0_median_hz")[j] == 0.0
    partly = [1, 2, 3, 4, 5]
    np.testing.assert_allclose(_col(rows, "f0_median_hz")[partly], 150.0, rtol=0.015)
    assert np.all(_col(rows, "voiced_fraction")[partly] >= 0.9)


def test_one_row_per_timestamp_in_order() -> None:
    speech = synth_speech(3.0, seed=4)
    ts = np.arange(0, 75) / 25.0  # every frame of a 3 s video at 25 fps
    rows = per_frame_prosody(speech, SR, ts)
    assert rows.shape == (75, 7) and rows.dtype == np.float32 and np.all(np.isfinite(rows))
    np.testing.assert_array_equal(per_frame_prosody(speech, SR, ts[::-1]), rows[::-1])
    assert per_frame_prosody(speech, SR, 1.0).shape == (1, 7)  # a single timestamp
    assert per_frame_prosody(speech, SR, np.array([])).shape == (0, 7)


def test_voicing_follows_time() -> None:
    """1 s silence then 1 s tone: the voiced fraction of a 1 s window rises linearly across the onset."""
    x = np.concatenate([np.zeros(SR, dtype=np.float32), chirp(1.0, f_start=150.0, f_end=150.0)])
    ts = np.array([0.4, 0.8, 1.0, 1.2, 1.6])
    voiced = _col(per_frame_prosody(x, SR, ts), "voiced_fraction")
    # window [t - 0.5, t + 0.5] holds max(0, t + 0.5 - 1) s of tone; a 50 ms shift would move it by 0.05
    np.testing.assert_allclose(voiced, [0.0, 0.3, 0.5, 0.7, 1.0], atol=0.04)


def test_voice_activity_rejects_background_noise() -> None:
    """Speech, a 0.5 s pause, speech, over a -45 dBFS noise floor: the pause is not speech, syllables are."""
    rng = np.random.default_rng(5)
    speech = np.concatenate(
        [synth_speech(1.0, seed=1), np.zeros(SR // 2, np.float32), synth_speech(1.0, seed=2)]
    )
    noisy = (speech + 10 ** (-45 / 20) * rng.standard_normal(speech.size)).astype(np.float32)
    track = prosody_track(noisy, SR)
    gap = (track.times_s > 1.05) & (track.times_s < 1.45)
    talk = (track.times_s < 0.95) | (track.times_s > 1.55)
    assert track.speech[gap].mean() <= 0.05 and not track.voiced[gap].any()
    assert track.speech[talk].mean() >= 0.5  # measured 0.75; syllables have pauses between them
    assert np.all(track.f0_hz[~track.voiced] == 0.0)


def test_track_grid() -> None:
    x = synth_speech(1.234, seed=6)
    track = prosody_track(x, SR)
    n = x.size // 160 + 1
    for arr in (track.times_s, track.f0_hz, track.voiced, track.periodicity, track.rms_db, track.flatness):
        assert arr.shape == (n,)
    np.testing.assert_allclose(track.times_s, np.arange(n) * 0.01)
    assert track.hop_s == 0.01
    assert np.all(track.rms_db >= SILENCE_DB) and np.all((track.flatness >= 0) & (track.flatness <= 1))
    voiced_f0 = track.f0_hz[track.voiced]
    assert voiced_f0.size > 0 and np.all((voiced_f0 > 60.0) & (voiced_f0 < 400.0))
    # window_prosody on the track equals per_frame_prosody on the samples
    ts = np.array([0.3, 0.9])
    np.testing.assert_array_equal(window_prosody(track, ts), per_frame_prosody(x, SR, ts))


def test_clip_input_and_missing_rate() -> None:
    x = synth_speech(1.5, seed=7)
    clip = audio_from_array(x, SR)
    ts = np.array([0.5, 1.0])
    np.testing.assert_array_equal(per_frame_prosody(clip, None, ts), per_frame_prosody(x, SR, ts))
    with pytest.raises(ValueError, match="sr"):
        per_frame_prosody(x, None, ts)


def test_higher_voice_higher_pitch() -> None:
    low = _col(per_frame_prosody(synth_speech(2.0, f0=110.0, seed=8), SR, MID), "f0_median_hz")
    high = _col(per_frame_prosody(synth_speech(2.0, f0=220.0, seed=8), SR, MID), "f0_median_hz")
    ratio = np.median(high) / np.median(low)
    assert 1.8 < ratio < 2.2


@pytest.mark.shared_data
def test_real_voices_pitch_follows_the_voice_setting(voices_dir: Path) -> None:
    """Over 60 clips, the measured F0 ranks like the espeak-ng pitch setting each voice was made with."""
    manifest = voices_dir / "manifest.csv"
    if not manifest.is_file():
        pytest.skip("lfw-voices/manifest.csv not found")
    with manifest.open(newline="") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: r["clip"])[:60]
    measured, setting, speech_fraction = [], [], []
    for row in rows:
        clip = load_audio(voices_dir / row["clip"])
        track = prosody_track(clip.samples, clip.sr)
        assert track.voiced.any(), row["clip"]
        measured.append(float(np.median(track.f0_hz[track.voiced])))
        setting.append(float(row["pitch"]))
        speech_fraction.append(float(track.speech.mean()))
    rho = spearmanr(setting, measured).statistic
    assert rho >= 0.6, f"Spearman correlation {rho:.3f}"  # measured 0.874
    assert np.median(speech_fraction) >= 0.5  # short sentences: mostly speech (measured ~0.8)
