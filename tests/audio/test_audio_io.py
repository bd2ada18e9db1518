"""Loading audio files: formats, rates, channels, and the specific errors for unusable input."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from forensic_face.audio.io import AudioClip, audio_from_array, load_audio
from forensic_face.core.errors import AudioClippedError, AudioDecodeError, AudioSilentError, SampleRateError


def _tone(seconds: float, sr: int, freq: float = 440.0, amp: float = 0.4) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _dominant_hz(clip: AudioClip) -> float:
    spec = np.abs(np.fft.rfft(clip.samples * np.hanning(clip.samples.size)))
    return float(np.fft.rfftfreq(clip.samples.size, 1 / clip.sr)[np.argmax(spec)])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


FORMATS = [
    # (format, subtype, extension, rate, channels)
    ("WAV", "PCM_16", "wav", 44100, 2),
    ("FLAC", "PCM_S8", "flac", 22050, 1),
    ("FLAC", "PCM_24", "flac", 48000, 2),
    ("OGG", "VORBIS", "ogg", 44100, 2),
    ("OGG", "OPUS", "opus", 48000, 1),
    ("MP3", "MPEG_LAYER_III", "mp3", 44100, 2),
]


@pytest.mark.parametrize(("fmt", "subtype", "ext", "sr", "channels"), FORMATS)
def test_formats_load_to_16k_mono(tmp_path: Path, fmt: str, subtype: str, ext: str, sr: int, channels: int) -> None:
    seconds = 2.0
    tone = _tone(seconds, sr)
    data = np.stack([tone] * channels, axis=1) if channels > 1 else tone
    path = tmp_path / f"tone.{ext}"
    try:
        sf.write(path, data, sr, format=fmt, subtype=subtype)
    except (sf.LibsndfileError, TypeError, ValueError) as exc:
        pytest.skip(f"this libsndfile cannot write {fmt}/{subtype}: {exc}")
    digest = _sha256(path)

    clip = load_audio(path)

    assert clip.sr == 16000
    assert clip.samples.dtype == np.float32 and clip.samples.ndim == 1
    assert clip.duration_s == pytest.approx(seconds, rel=0.01)
    assert clip.samples.size == pytest.approx(seconds * 16000, rel=0.01)
    assert clip.original_sr == sr and clip.original_channels == channels
    assert np.abs(clip.samples).max() <= 1.0
    assert _dominant_hz(clip) == pytest.approx(440.0, abs=3.0)  # resampled, not just relabelled
    # RMS, not peak: lossy codecs overshoot at the abrupt end of the tone
    assert clip.quality.rms_dbfs == pytest.approx(20 * np.log10(0.4 / np.sqrt(2)), abs=0.5)
    assert clip.source == path
    assert _sha256(path) == digest, "loading must not modify the evidence file"


def test_stereo_is_downmixed_by_mean(tmp_path: Path) -> None:
    left = _tone(1.0, 16000, amp=0.6)
    path = tmp_path / "lr.wav"
    sf.write(path, np.stack([left, np.zeros_like(left)], axis=1), 16000, subtype="FLOAT")
    clip = load_audio(path)
    np.testing.assert_allclose(clip.samples, left / 2, atol=1e-6)


def test_samples_are_read_only_and_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, _tone(1.0, 44100), 44100, subtype="PCM_16")
    before, mtime = _sha256(path), path.stat().st_mtime_ns
    clip = load_audio(path)
    with pytest.raises(ValueError):
        clip.samples[0] = 1.0
    assert _sha256(path) == before and path.stat().st_mtime_ns == mtime


def test_max_seconds_reads_only_the_start(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    sf.write(path, _tone(5.0, 16000), 16000)
    clip = load_audio(path, max_seconds=1.5)
    assert clip.duration_s == pytest.approx(1.5, abs=1e-3)
    assert any("first 1.5 s" in w for w in clip.warnings)


def test_8k_is_accepted_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "phone.wav"
    sf.write(path, _tone(1.0, 8000, freq=300.0), 8000)
    clip = load_audio(path)
    assert clip.sr == 16000 and clip.original_sr == 8000
    assert any("8000 Hz" in w for w in clip.warnings)


# ----------------------------------------------------------------------------- errors


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.wav"
    with pytest.raises(AudioDecodeError, match="not found") as err:
        load_audio(path)
    assert str(path) in str(err.value)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioDecodeError, match="empty") as err:
        load_audio(path)
    assert str(path) in str(err.value)


def test_zero_length_wav(tmp_path: Path) -> None:
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), 16000)
    assert path.stat().st_size > 0  # a valid header with no frames
    with pytest.raises(AudioDecodeError, match="no samples") as err:
        load_audio(path)
    assert str(path) in str(err.value)


def test_random_bytes_named_wav(tmp_path: Path) -> None:
    path = tmp_path / "garbage.wav"
    path.write_bytes(np.random.default_rng(0).bytes(4000))
    digest = _sha256(path)
    with pytest.raises(AudioDecodeError) as err:
        load_audio(path)
    message = str(err.value)
    assert str(path) in message and "wav" in message.lower() and "not a recognised audio container" in message
    assert _sha256(path) == digest


def test_truncated_flac_names_the_container(tmp_path: Path) -> None:
    path = tmp_path / "cut.flac"
    sf.write(path, _tone(1.0, 16000), 16000, format="FLAC")
    path.write_bytes(path.read_bytes()[:20])  # header only, cut mid-metadata
    with pytest.raises(AudioDecodeError, match="FLAC"):
        load_audio(path)


def test_rate_below_8k(tmp_path: Path) -> None:
    path = tmp_path / "low.wav"
    sf.write(path, _tone(1.0, 4000, freq=300.0), 4000)
    with pytest.raises(SampleRateError, match="4000 Hz") as err:
        load_audio(path)
    assert str(path) in str(err.value) and "80-4000 Hz" in str(err.value)


def test_silent_file(tmp_path: Path) -> None:
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(16000, dtype=np.float32), 16000)
    with pytest.raises(AudioSilentError, match="silent") as err:
        load_audio(path)
    assert str(path) in str(err.value)


def test_nearly_silent_file(tmp_path: Path) -> None:
    path = tmp_path / "hiss.wav"
    sf.write(path, _tone(1.0, 16000, amp=10 ** (-66 / 20)), 16000, subtype="FLOAT")  # peak -66 dBFS
    with pytest.raises(AudioSilentError, match="-66"):
        load_audio(path)


def test_heavily_clipped_file(tmp_path: Path) -> None:
    path = tmp_path / "clipped.wav"
    sf.write(path, np.clip(_tone(1.0, 16000, amp=3.0), -1, 1), 16000, subtype="PCM_16")
    with pytest.raises(AudioClippedError, match="% of samples") as err:
        load_audio(path)
    assert str(path) in str(err.value)


def test_slightly_clipped_file_only_warns(tmp_path: Path) -> None:
    x = _tone(1.0, 16000, amp=0.5)
    x[np.arange(0, 16000, 2000)] = 1.0  # 8 samples of 16000 = 0.05 %
    path = tmp_path / "few.wav"
    sf.write(path, x, 16000, subtype="PCM_16")
    clip = load_audio(path)
    assert 0 < clip.quality.clipped_fraction < 0.01
    assert any("clipped" in w for w in clip.warnings)


def test_8bit_full_scale_counts_as_clipped(tmp_path: Path) -> None:
    path = tmp_path / "loud8.flac"
    sf.write(path, np.clip(_tone(1.0, 16000, amp=2.0), -1, 1), 16000, format="FLAC", subtype="PCM_S8")
    with pytest.raises(AudioClippedError):
        load_audio(path)  # +full scale of 8-bit is 127/128, still "at full scale"


# ----------------------------------------------------------------------------- in-memory


def test_audio_from_array_int16_and_channels_first() -> None:
    tone = _tone(1.0, 48000, amp=0.5)
    as_int = np.round(np.stack([tone, tone]) * 32767).astype(np.int16)  # (2, n): channels-first
    clip = audio_from_array(as_int, 48000)
    assert clip.original_channels == 2 and clip.sr == 16000
    assert clip.duration_s == pytest.approx(1.0, rel=0.01)
    assert clip.quality.peak_dbfs == pytest.approx(20 * np.log10(0.5), abs=0.1)
    assert clip.source is None


def test_audio_from_array_rejects_bad_input() -> None:
    with pytest.raises(AudioDecodeError, match="NaN"):
        audio_from_array(np.full(1000, np.nan, dtype=np.float32), 16000)
    with pytest.raises(AudioDecodeError, match="no samples"):
        audio_from_array(np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(SampleRateError):
        audio_from_array(_tone(1.0, 6000), 6000)
