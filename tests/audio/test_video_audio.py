"""A video's own sound track, decoded through PyAV like any audio file: on the clock of the video's frames.
Every clip is encoded here with PyAV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from forensic_face.audio.features import AudioFeatureExtractor
from forensic_face.audio.info import audio_info, has_audio_track
from forensic_face.audio.io import load_audio
from forensic_face.core.errors import AudioDecodeError, NoAudioTrackError
from forensic_face.vision.frames import iter_video_frames, video_info

RATE = 16000
FRAMES = 50  # 2 s at 25 frames/s
ONSET_S = 0.5  # the tone starts this long after the first frame
TONE_HZ = 440.0
#: name -> (container format, video codec, audio codec)
CLIPS = {
    "clip.mp4": ("mp4", "libx264", "aac"),
    "clip.mkv": ("matroska", "libx264", "aac"),
    "clip.avi": ("avi", "mpeg4", "pcm_s16le"),
    "clip.mpg": ("vob", "mpeg2video", "mp2"),
    "clip.ts": ("mpegts", "libx264", "aac"),
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory, write_clip, moving_square) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("av_clips")
    t = np.arange(FRAMES * RATE // 25) / RATE
    tone = np.where(t >= ONSET_S, 0.3 * np.sin(2 * np.pi * TONE_HZ * t), 0.0).astype(np.float32)
    return {name: write_clip(folder / name, fmt, vcodec, moving_square(FRAMES), audio=tone, acodec=acodec, rate=RATE)
            for name, (fmt, vcodec, acodec) in CLIPS.items()}


@pytest.mark.parametrize("name", CLIPS)
def test_a_clips_own_audio_is_decoded_on_the_clock_of_its_frames(clips, name):
    path = clips[name]
    assert has_audio_track(path) and video_info(path).has_audio
    clip = load_audio(path)
    assert clip.original_sr == RATE and clip.sr == 16000 and clip.original_channels == 1
    first_frame_s = next(iter(iter_video_frames(path))).timestamp_s
    # it ends with the video, give or take a frame of video or of the audio codec (AAC pads its last 1024 samples)
    assert abs(clip.duration_s - (first_frame_s + FRAMES / 25)) <= max(1 / 25, 1024 / RATE)
    spectrum = np.abs(np.fft.rfft(clip.samples[-RATE:]))  # the last second: the tone
    assert abs(np.fft.rfftfreq(RATE, 1 / RATE)[np.argmax(spectrum)] - TONE_HZ) <= 1.0
    loud = np.flatnonzero(np.abs(clip.samples) > 0.15)
    onset_s = loud[0] / clip.sr  # the tone begins ONSET_S after the first frame: the same instant in both
    assert abs(onset_s - (first_frame_s + ONSET_S)) <= 0.01, (onset_s, first_frame_s)


def test_a_window_of_a_clips_audio_matches_the_whole(clips):
    path = clips["clip.mkv"]
    whole = load_audio(path)
    window = load_audio(path, around_s=1.6, span_s=1.0)
    assert window.offset_s == 1.0 and window.duration_s == pytest.approx(1.0)
    start = int(window.offset_s * whole.sr)
    np.testing.assert_allclose(window.samples, whole.samples[start : start + window.samples.size], atol=1e-6)


def test_features_follow_the_frames_of_a_clip(clips):
    """The audio vector per frame of a clip, from the clip's own sound (the analysis' path)."""
    path = clips["clip.mp4"]
    extractor = AudioFeatureExtractor()
    times = np.array([f.timestamp_s for f in iter_video_frames(path, step=10)])
    feats = extractor(extractor.load(path), times)
    assert feats.vector.shape[0] == times.size and np.all(np.isfinite(feats.vector))
    voiced = feats.prosody[:, 3] > 0.5  # voiced fraction: the tone counts as voiced
    assert not voiced[0] and voiced[-1]  # frame 0 precedes the tone; frame 40 is inside it


def test_a_clip_without_sound_says_so(tmp_path, write_clip, moving_square):
    path = write_clip(tmp_path / "silent film.mp4", "mp4", "libx264", moving_square(10))
    assert not has_audio_track(path) and not video_info(path).has_audio
    for read in (audio_info, load_audio):
        with pytest.raises(NoAudioTrackError, match=r"silent film\.mp4 has no audio track; add the recording as a "
                                                    "separate audio file"):
            read(path)


def test_a_file_no_decoder_opens_is_a_clear_error(tmp_path):
    path = tmp_path / "recording.m4a"
    path.write_bytes(np.random.default_rng(0).bytes(4000))
    for read in (audio_info, has_audio_track):
        with pytest.raises(AudioDecodeError, match=r"cannot decode .*recording\.m4a .*FFmpeg: .*convert it to WAV"):
            read(path)
