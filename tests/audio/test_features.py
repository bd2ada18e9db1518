"""The audio vector per video frame: LBRP + scaled prosody, names, recorded parameters, time alignment."""

from __future__ import annotations

import json
from pathlib import Path

import librosa
import numpy as np
import pytest
import scipy
import soundfile as sf

from forensic_face.audio.features import (
    PROSODY_CLIP,
    AudioFeatureConfig,
    AudioFeatureExtractor,
    audio_features,
    scale_prosody,
)
from forensic_face.audio.io import AudioClip, audio_from_array, load_audio
from forensic_face.audio.lbrp import LBRPConfig, lbrp_features
from forensic_face.audio.prosody import PROSODY_COLUMNS, SILENCE_DB, per_frame_prosody
from forensic_face.audio.synth import chirp, synth_speech

SR = 16000
DIM = LBRPConfig().dim
COL = {name: j for j, name in enumerate(PROSODY_COLUMNS)}


def _clip(x: np.ndarray) -> AudioClip:
    return audio_from_array(x, SR, name="test signal")


def _silence_then_tone() -> np.ndarray:
    """1 s of silence, then 1.5 s of a steady 150 Hz harmonic tone."""
    return np.concatenate([np.zeros(SR, np.float32), chirp(1.5, f_start=150.0, f_end=150.0)])


def test_vector_layout_and_names() -> None:
    ts = np.arange(0, 50) / 25.0
    feats = audio_features(_clip(synth_speech(2.0, seed=1)), ts)
    n = ts.size
    assert feats.vector.shape == (n, DIM + 7) and feats.vector.dtype == np.float32
    assert feats.lbrp.shape == (n, DIM) and feats.prosody.shape == (n, 7)
    np.testing.assert_array_equal(feats.timestamps_s, ts)
    assert np.all(np.isfinite(feats.vector))
    assert len(feats.names) == feats.vector.shape[1] and len(set(feats.names)) == len(feats.names)
    assert feats.names[0] == "lbrp_0000" and feats.names[DIM - 1] == f"lbrp_{DIM - 1:04d}"
    assert feats.names[DIM:] == tuple(f"prosody_{c}" for c in PROSODY_COLUMNS)
    # vector = LBRP block then the scaled prosody block
    np.testing.assert_array_equal(feats.vector[:, :DIM], feats.lbrp)
    weight = AudioFeatureConfig().prosody_weight
    np.testing.assert_array_equal(feats.vector[:, DIM:], scale_prosody(feats.prosody, weight))
    assert np.abs(feats.vector[:, DIM:]).max() <= weight * PROSODY_CLIP + 1e-6
    np.testing.assert_allclose(np.linalg.norm(feats.lbrp, axis=1), 1.0, atol=1e-5)


def test_scale_prosody() -> None:
    """Typical speech maps near 0; an octave of F0 is 1; silence (-100 dBFS) is clipped, unvoiced F0 is 0."""
    typical = np.array([[140.0, 1.5, 0.0, 0.5, -30.0, 6.0, 0.5]])
    np.testing.assert_allclose(scale_prosody(typical, 1.0), 0.0, atol=1e-6)
    octave_up = typical.copy()
    octave_up[0, 0] = 280.0
    assert scale_prosody(octave_up, 1.0)[0, 0] == pytest.approx(1.0)
    silent = np.array([[0.0, 0.0, 0.0, 0.0, SILENCE_DB, 0.0, 0.0]])
    scaled = scale_prosody(silent, 0.5)
    assert scaled[0, 0] == 0.0
    assert scaled[0, COL["energy_mean_db"]] == pytest.approx(-0.5 * PROSODY_CLIP)


def test_params_recorded(tmp_path: Path) -> None:
    path = tmp_path / "evidence.wav"
    sf.write(path, synth_speech(1.5, seed=2), SR, subtype="PCM_16")
    clip = load_audio(path)
    feats = audio_features(clip, np.array([0.5, 1.0]))
    params = feats.params
    assert params["denoise"] == "chain" and params["config"]["denoise_method"] == "chain"
    assert params["sr"] == 16000 and params["original_sr"] == SR and params["original_channels"] == 1
    assert params["source"] == str(path)
    assert params["duration_s"] == pytest.approx(1.5)
    assert params["lbrp_dim"] == DIM
    assert params["versions"] == {
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "librosa": librosa.__version__,
    }
    assert params["config"]["lbrp"]["patch"] == LBRPConfig().patch
    assert params["config"]["prosody"]["fmin"] == 60.0
    json.dumps(params)  # goes into the audit log as JSON


def test_without_denoise() -> None:
    """denoise=False records 'none' and works on the untouched samples."""
    rng = np.random.default_rng(3)
    noisy = (synth_speech(2.0, seed=3) + 0.03 * rng.standard_normal(2 * SR)).astype(np.float32)
    clip = _clip(noisy)
    ts = np.array([0.5, 1.0, 1.5])
    raw = audio_features(clip, ts, denoise=False)
    assert raw.params["denoise"] == "none"
    assert raw.vector.shape == (3, DIM + 7)
    np.testing.assert_array_equal(raw.prosody, per_frame_prosody(clip.samples, SR, ts))
    np.testing.assert_array_equal(raw.lbrp, lbrp_features(clip.samples, SR, ts))
    cleaned = audio_features(clip, ts)
    assert cleaned.params["denoise"] == "chain"
    assert not np.allclose(cleaned.vector, raw.vector, atol=1e-3)
    wiener = audio_features(clip, ts, config=AudioFeatureConfig(denoise_method="wiener"))
    assert wiener.params["denoise"] == "wiener"


def test_denoising_brings_noisy_features_closer_to_clean() -> None:
    """Speech at 5 dB SNR in white noise: with the chain its vectors are nearer those of the clean speech."""
    clean = synth_speech(3.0, seed=7)
    noise = np.random.default_rng(1).standard_normal(clean.size)
    noise *= np.sqrt(np.mean(clean.astype(np.float64) ** 2)) / 10 ** (5 / 20)
    noisy = (clean + noise).astype(np.float32)
    ts = np.arange(0.5, 2.51, 0.25)
    reference = audio_features(_clip(clean), ts, denoise=False).vector
    distance = {
        flag: float(
            np.linalg.norm(audio_features(_clip(noisy), ts, denoise=flag).vector - reference, axis=1).mean()
        )
        for flag in (False, True)
    }
    assert distance[True] < 0.9 * distance[False], distance  # measured 0.72 vs 0.87


def test_time_alignment_silence_then_tone() -> None:
    """A frame's features describe the audio around its own timestamp."""
    feats = audio_features(_clip(_silence_then_tone()), np.array([0.4, 1.0, 1.6, 2.0]))
    voiced = feats.prosody[:, COL["voiced_fraction"]]
    f0 = feats.prosody[:, COL["f0_median_hz"]]
    energy = feats.prosody[:, COL["energy_mean_db"]]
    # t = 0.4: window 0.0-0.9 s is silent
    assert voiced[0] == 0.0 and f0[0] == 0.0 and energy[0] == SILENCE_DB
    # t = 1.0: half silence, half tone
    assert voiced[1] == pytest.approx(0.5, abs=0.05)
    # t = 1.6 and 2.0: inside the tone
    assert np.all(voiced[2:] >= 0.95)
    np.testing.assert_allclose(f0[2:], 150.0, rtol=0.015)
    assert np.all(energy[2:] > -20.0)
    # the LBRP of the silent frame is the one of a window wholly outside the clip; the tone's is not
    outside = audio_features(_clip(_silence_then_tone()), np.array([-5.0])).lbrp[0]
    np.testing.assert_allclose(feats.lbrp[0], outside, atol=1e-6)
    assert float(feats.lbrp[2] @ outside) < 0.9


def test_windows_without_voice_are_named_not_silently_used() -> None:
    """A frame whose audio window holds no voice is flagged and its time named; frames with voice are not."""
    times = np.array([0.1, 0.2, 0.3, 0.4, 1.0, 1.6, 2.0, 9.0])
    feats = audio_features(_clip(_silence_then_tone()), times)
    assert feats.voiced.tolist() == [False, False, False, False, True, True, True, False]
    assert len(feats.warnings) == 2
    assert feats.warnings[0].startswith("no voice in the 1 s audio window at 0.10-0.40 s:")
    assert feats.warnings[1].startswith("no audio at 9.00 s (outside the recording)")
    speech = audio_features(_clip(synth_speech(2.0, seed=1)), np.array([0.5, 1.0, 1.5]))
    assert speech.voiced.all() and speech.warnings == ()


def test_shifting_the_audio_shifts_the_features() -> None:
    """0.5 s of silence prepended: features at t + 0.5 s equal those at t; a 0.1 s mismatch does not."""
    speech = synth_speech(2.0, seed=5)
    delayed = np.concatenate([np.zeros(SR // 2, np.float32), speech])
    ts = np.arange(0.6, 1.45, 0.2)
    base = audio_features(_clip(speech), ts, denoise=False).vector
    shifted = audio_features(_clip(delayed), ts + 0.5, denoise=False).vector
    np.testing.assert_allclose(shifted, base, atol=1e-4)
    off_by_100ms = audio_features(_clip(delayed), ts + 0.4, denoise=False).vector
    assert np.abs(off_by_100ms - base).max() > 0.05


def test_timestamps_beyond_the_clip_and_empty() -> None:
    clip = _clip(synth_speech(1.0, seed=6))
    feats = audio_features(clip, np.array([-3.0, 0.5, 4.0]))
    assert feats.vector.shape == (3, DIM + 7) and np.all(np.isfinite(feats.vector))
    assert feats.prosody[0, COL["energy_mean_db"]] == SILENCE_DB == feats.prosody[2, COL["energy_mean_db"]]
    empty = audio_features(clip, np.array([]))
    assert empty.vector.shape == (0, DIM + 7) and len(empty.names) == DIM + 7


def test_extractor_matches_function() -> None:
    clip = _clip(synth_speech(1.5, seed=8))
    ts = np.array([0.4, 0.9])
    config = AudioFeatureConfig(denoise_method="bandpass")
    extractor = AudioFeatureExtractor(config)
    np.testing.assert_array_equal(extractor(clip, ts).vector, audio_features(clip, ts, config=config).vector)
    samples = extractor.clean(clip)
    assert samples.shape == clip.samples.shape and samples.dtype == np.float32
    np.testing.assert_array_equal(extractor.prosody(samples, SR, ts), extractor(clip, ts).prosody)
    np.testing.assert_array_equal(extractor.lbrp(samples, SR, ts), extractor(clip, ts).lbrp)
    raw = AudioFeatureExtractor(denoise=False)
    assert raw.clean(clip) is clip.samples
    assert raw(clip, ts).params["denoise"] == "none"
