"""Long recordings: the header is read first, limits are checked before decoding, and analysis reads a window.

The long WAVs are sparse files: a hand-written header announcing hours of 16-bit PCM, the file
extended to that length without writing it (zeros cost no disk on the usual file systems), and only
a few seconds of signal written where the test needs them. Building one takes milliseconds.
"""

from __future__ import annotations

import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from forensic_face.audio import info as limits
from forensic_face.audio.features import AudioFeatureExtractor
from forensic_face.audio.info import AudioInfo, audio_info, plan_read
from forensic_face.audio.io import load_audio
from forensic_face.audio.synth import synth_speech
from forensic_face.core.errors import AudioDecodeError, AudioError

HOUR = 3600.0


def sparse_wav(path: Path, seconds: float, sr: int, channels: int, parts: dict[float, np.ndarray]) -> Path:
    """A 16-bit PCM WAV of ``seconds`` of silence with mono signal ``parts[t]`` written from time t (s) on."""
    block = 2 * channels
    size = int(seconds * sr) * block
    fmt = struct.pack("<IHHIIHH", 16, 1, channels, sr, sr * block, block, 16)
    header = b"RIFF" + struct.pack("<I", 36 + size) + b"WAVEfmt " + fmt + b"data" + struct.pack("<I", size)
    with path.open("wb") as fh:
        fh.write(header)
        fh.truncate(len(header) + size)
        for start, x in parts.items():
            pcm = np.round(np.clip(x, -1, 1) * 32767).astype("<i2")
            fh.seek(len(header) + int(start * sr) * block)
            fh.write(np.repeat(pcm[:, None], channels, axis=1).tobytes())
    return path


def _speech(seconds: float, sr: int, f0: float, seed: int = 0) -> np.ndarray:
    return synth_speech(seconds, sr, f0=f0, seed=seed)


@pytest.fixture(scope="module")
def extractor() -> AudioFeatureExtractor:
    return AudioFeatureExtractor()


@pytest.fixture
def hour_44k_stereo(tmp_path: Path) -> Path:
    """1 h at 44.1 kHz stereo (635 MB announced): 10 s of 110 Hz speech before 1800 s, 10 s of 220 Hz after."""
    return sparse_wav(tmp_path / "hour.wav", HOUR, 44100, 2,
                      {1790.0: _speech(10.0, 44100, 110.0), 1800.0: _speech(10.0, 44100, 220.0, seed=1)})


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if libsndfile is asked for samples."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("samples were decoded before the length was checked")

    monkeypatch.setattr(sf.SoundFile, "read", refuse)


# ----------------------------------------------------------------------------- refusals before decoding


def test_hour_long_wav_is_refused_whole_before_decoding(hour_44k_stereo: Path, no_decoding) -> None:
    with pytest.raises(AudioDecodeError) as err:
        load_audio(hour_44k_stereo)
    message = str(err.value)
    assert str(hour_44k_stereo) in message and "1 h 00 min" in message and "10 min" in message
    assert "window" in message and "shorter copy" in message


def test_header_is_read_without_decoding(hour_44k_stereo: Path, no_decoding) -> None:
    info = audio_info(hour_44k_stereo)
    assert (info.sr, info.channels, info.frames) == (44100, 2, int(HOUR * 44100))
    assert info.duration_s == HOUR and info.bits == 16 and info.decoder == "soundfile"


def test_absurd_header_is_refused(hour_44k_stereo: Path, monkeypatch, no_decoding) -> None:
    monkeypatch.setattr(limits, "MAX_FILE_S", 1800.0, raising=False)
    with pytest.raises(AudioDecodeError, match="probably corrupt"):
        load_audio(hour_44k_stereo, around_s=1800.0)


def test_decoded_size_is_capped(tmp_path: Path, monkeypatch, no_decoding) -> None:
    path = tmp_path / "wide.wav"
    sf.write(path, np.zeros((480000, 2), np.float32), 48000, subtype="PCM_16")  # 10 s: 3.7 MiB as float32
    monkeypatch.setattr(limits, "MAX_DECODE_BYTES", 1 << 20, raising=False)
    with pytest.raises(AudioDecodeError, match=r"would decode 4 MiB of samples, more than the 1 MiB limit"):
        load_audio(path)


# ----------------------------------------------------------------------------- windows


def _info(seconds: float, sr: int = 16000) -> AudioInfo:
    return AudioInfo(Path("x.wav"), sr, 1, int(seconds * sr), seconds, "WAV", "PCM_16", "soundfile")


@pytest.mark.parametrize(
    ("around", "start_s", "frames_s"),
    [(1800.5, 1770, 60), (5.0, 0, 60), (3598.0, 3540, 60), (-7.0, 0, 60), (9999.0, 3540, 60)],
)
def test_window_placement(around: float, start_s: int, frames_s: int) -> None:
    plan = plan_read(_info(HOUR), around_s=around)
    assert (plan.start, plan.frames) == (start_s * 16000, frames_s * 16000)
    assert plan.to_end == (start_s + frames_s == HOUR)


def test_short_file_is_read_whole_whatever_the_time() -> None:
    for around in (0.0, 20.0, 59.0):
        plan = plan_read(_info(59.5), around_s=around)
        assert (plan.start, plan.frames, plan.to_end, plan.notes) == (0, 59.5 * 16000, True, ())


def test_window_of_an_hour_uses_bounded_memory(hour_44k_stereo: Path, extractor: AudioFeatureExtractor) -> None:
    tracemalloc.start()
    try:
        clip = extractor.load(hour_44k_stereo, around_s=1800.0)
        feats = extractor(clip, np.array([1795.0, 1805.0]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # decoding the whole hour as float32 alone is 1270 MB; a 60 s window is 21 MB
    assert peak < 200e6, f"peak traced memory {peak / 1e6:.0f} MB"
    assert clip.offset_s == 1770.0 and clip.duration_s == pytest.approx(60.0)
    assert clip.file_duration_s == HOUR and clip.is_window and clip.end_s == pytest.approx(1830.0)
    assert any("60 s window (1770-1830 s)" in w for w in clip.warnings)
    # timestamps are in the file's time: 110 Hz speech before 1800 s, 220 Hz after
    assert feats.timestamps_s.tolist() == [1795.0, 1805.0]
    assert feats.prosody[0, 0] == pytest.approx(110.0, rel=0.1)
    assert feats.prosody[1, 0] == pytest.approx(220.0, rel=0.1)
    assert feats.params["offset_s"] == 1770.0 and feats.params["file_duration_s"] == HOUR


def test_ten_hour_recording(tmp_path: Path, extractor: AudioFeatureExtractor) -> None:
    path = sparse_wav(tmp_path / "day.wav", 10 * HOUR, 16000, 1, {9 * HOUR - 10: _speech(20.0, 16000, 150.0)})
    info = extractor.info(path)
    assert info.duration_s == 10 * HOUR
    clip = extractor.load(path, around_s=9 * HOUR)
    assert clip.offset_s == 9 * HOUR - 30 and clip.samples.size == 60 * 16000
    feats = extractor(clip, np.array([9 * HOUR]))
    assert feats.prosody[0, 0] == pytest.approx(150.0, rel=0.1)


def test_times_outside_the_window_are_refused(hour_44k_stereo: Path, extractor: AudioFeatureExtractor) -> None:
    clip = extractor.load(hour_44k_stereo, around_s=1800.0)
    with pytest.raises(AudioError, match=r"time 10.000 s is outside .* \(1770.000-1830.000 s\)"):
        extractor(clip, np.array([10.0]))


def test_silence_is_judged_on_the_window(tmp_path: Path) -> None:
    path = sparse_wav(tmp_path / "quiet.wav", HOUR, 16000, 1, {100.0: _speech(5.0, 16000, 150.0)})
    assert load_audio(path, around_s=100.0).offset_s == 70.0
    with pytest.raises(AudioError, match=r"\(1770-1830 s\): audio is silent"):
        load_audio(path, around_s=1800.0)


# ----------------------------------------------------------------------------- same features as before


@pytest.mark.parametrize(("sr", "channels", "seconds"), [(16000, 1, 6.0), (44100, 2, 8.3)])
def test_short_files_give_identical_features_through_the_window_path(
    tmp_path: Path, extractor: AudioFeatureExtractor, sr: int, channels: int, seconds: float
) -> None:
    x = synth_speech(seconds, sr, seed=4)
    path = tmp_path / "short.wav"
    sf.write(path, np.stack([x, 0.5 * x], axis=1) if channels == 2 else x, sr, subtype="PCM_16")
    whole = extractor.load(path)
    for t in (0.0, 1.0, whole.duration_s / 2, seconds):
        windowed = extractor.load(path, around_s=t)
        assert not windowed.is_window and windowed.offset_s == 0.0
        assert np.array_equal(windowed.samples, whole.samples)
        assert np.array_equal(extractor(windowed, np.array([t])).vector, extractor(whole, np.array([t])).vector)


def test_pipeline_call_sequence(hour_44k_stereo: Path, extractor: AudioFeatureExtractor) -> None:
    """What pipeline.py does: header for the default time and the clamp, then a window around that time."""
    header = extractor.info(hour_44k_stereo)
    t_audio = float(min(max(header.duration_s / 2, 0.0), header.duration_s))
    clip = extractor.load(hour_44k_stereo, around_s=t_audio)
    feats = extractor(clip, np.array([t_audio]))
    assert t_audio == 1800.0 and feats.vector.shape[0] == 1 and np.all(np.isfinite(feats.vector))


# ----------------------------------------------------------------------------- fallback decoder


@pytest.fixture
def without_libsndfile(monkeypatch):
    """Make libsndfile refuse every file, so that FFmpeg (through PyAV) decodes it (WAV via Python's wave)."""

    class Refusing(sf.SoundFile):  # still a type: librosa checks isinstance(path, sf.SoundFile)
        def __new__(cls, *_args, **_kwargs):
            raise sf.SoundFileRuntimeError("Error opening file: Format not recognised.")

    monkeypatch.setattr(sf, "SoundFile", Refusing)


def test_fallback_reads_a_window(tmp_path: Path, without_libsndfile) -> None:
    x = np.concatenate([synth_speech(30.0, seed=s) for s in range(4)])  # 2 min at 16 kHz
    path = tmp_path / "two_min.wav"
    with open(path, "wb") as fh:  # written without soundfile, which the fixture disabled
        import wave

        with wave.open(fh, "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
            w.writeframes(np.round(x * 32767).astype("<i2").tobytes())
    info = audio_info(path)
    assert info.decoder == "pyav" and info.duration_s == pytest.approx(120.0)
    clip = load_audio(path, around_s=90.0)
    assert clip.offset_s == 60.0 and clip.duration_s == pytest.approx(60.0) and clip.file_duration_s == 120.0
    expected = np.round(x[60 * 16000 :] * 32767) / 32768
    np.testing.assert_allclose(clip.samples, expected, atol=1e-6)


def test_fallback_whole_read_is_bounded(tmp_path: Path, monkeypatch, without_libsndfile) -> None:
    import wave

    path = tmp_path / "long.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
        w.writeframes(np.round(synth_speech(20.0, 8000) * 16000).astype("<i2").tobytes())
    monkeypatch.setattr(limits, "MAX_WHOLE_S", 10.0)
    with pytest.raises(AudioDecodeError, match="20.0 s long, more than the 0.166667 min"):
        load_audio(path)
    assert load_audio(path, around_s=15.0, span_s=5.0).offset_s == 12.0


# ----------------------------------------------------------------------------- the audio panel


def test_audio_panel_shows_a_window_of_a_long_recording(tmp_path: Path, extractor: AudioFeatureExtractor) -> None:
    from forensic_face.reports.figures import audio_panel_data, draw_audio, new_figure

    path = sparse_wav(tmp_path / "hour16k.wav", HOUR, 16000, 1, {1790.0: _speech(20.0, 16000, 150.0)})
    view, t, lbrp = audio_panel_data(path, None)
    assert t == 1800.0
    assert view.offset_s == 1770.0 and view.duration_s == pytest.approx(60.0) and view.file_duration_s == HOUR
    assert view.wave_t[0] == 1770.0 and view.spec_t[0] == 1770.0 and view.f0_t[0] == 1770.0
    assert any("window" in w and "1 h 00 min" in w for w in view.warnings)
    expected = extractor(extractor.load(path, around_s=1800.0), np.array([1800.0])).lbrp[0]
    np.testing.assert_array_equal(lbrp, expected)  # the LBRP the analysis computes at that time
    fig = new_figure(4, 3)
    ax_wave, ax_spec = fig.add_subplot(211), fig.add_subplot(212)
    draw_audio(ax_wave, ax_spec, view, t)
    assert ax_spec.get_xlim() == pytest.approx((1770.0, 1830.0))


def test_audio_panel_of_a_short_clip_is_unchanged(tmp_path: Path, extractor: AudioFeatureExtractor) -> None:
    from forensic_face.reports.figures import audio_panel_data

    path = tmp_path / "short.wav"
    sf.write(path, synth_speech(6.0, seed=2), 16000, subtype="PCM_16")
    view, t, lbrp = audio_panel_data(path, None)
    clip = extractor.load(path)
    assert t == clip.duration_s / 2 and view.offset_s == 0.0 and view.duration_s == clip.duration_s
    np.testing.assert_array_equal(lbrp, extractor(clip, np.array([t])).lbrp[0])
