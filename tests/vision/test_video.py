"""Video read through PyAV: the containers CCTV exports come in, frame times from the container, time ranges by
seeking, and damaged files. Every clip is encoded here with PyAV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from forensic_face.core.errors import CancelledError, VideoDamagedError, VideoDecodeError
from forensic_face.core.progress import Progress
from forensic_face.vision.containers import SNIFF_BYTES, VIDEO_FORMATS, sniff_video
from forensic_face.vision.frames import iter_video_frames, read_video_frame, read_video_frame_at, video_info
from forensic_face.vision.video import timed_frames

N = 100  # frames per clip
FPS = 25
GOP = 10  # a keyframe every 0.4 s, so that a seek has somewhere to land
#: name -> (container format, video codec, audio codec, what sniff_video calls it, extension)
CLIPS = {
    "mp4": ("mp4", "libx264", "aac", "MP4/MOV", ".mp4"),
    "mkv": ("matroska", "libx264", "aac", "Matroska/WebM", ".mkv"),
    "avi": ("avi", "mpeg4", "pcm_s16le", "AVI", ".avi"),
    "mpg": ("vob", "mpeg2video", "mp2", "MPEG program stream", ".mpg"),  # MPEG-2 program stream
    "ts": ("mpegts", "libx264", "aac", "MPEG transport stream", ".ts"),
    "h264": ("h264", "libx264", None, "raw H.264", ".h264"),
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory, write_clip, moving_square) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    t = np.arange(int(16000 * N / FPS)) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    return {name: write_clip(folder / f"clip{ext}", fmt, vcodec, moving_square(N), gop=GOP,
                             audio=tone if acodec else None, acodec=acodec)
            for name, (fmt, vcodec, acodec, _, ext) in CLIPS.items()}


def _square_x(image: np.ndarray) -> int:
    """Left edge of the bright square (the columns of the middle row that are near white)."""
    return int(np.flatnonzero(image[32, :, 1] > 160)[0])


@pytest.mark.parametrize("name", CLIPS)
def test_each_container_is_read_with_its_frames_in_order(clips, name):
    path = clips[name]
    _, vcodec, acodec, sniffed, _ = CLIPS[name]
    assert sniff_video(path.read_bytes()[:SNIFF_BYTES]) == sniffed
    info = video_info(path)
    assert (info.width, info.height, info.fps, info.has_audio) == (96, 64, FPS, acodec is not None)
    assert info.frame_count == N if info.frame_count_exact else abs(info.frame_count - N) <= N // 10
    frames = list(iter_video_frames(path))
    assert [f.index for f in frames] == list(range(N))
    times = np.array([f.timestamp_s for f in frames])
    np.testing.assert_allclose(np.diff(times), 1 / FPS, atol=1e-6)
    assert 0.0 <= times[0] < 0.2  # from the container's start (its audio may start a little earlier)
    assert all(abs(_square_x(f.image) - 3 * i % 80) <= 2 for i, f in enumerate(frames))  # the frames, in order
    expected = f"nominal {FPS} fps, the stream has none" if name == "h264" else "container"
    assert info.timestamps == expected and {f.meta["timestamps"] for f in frames} == {expected}


@pytest.mark.parametrize("name", CLIPS)
def test_a_time_range_gives_exactly_its_frames_and_is_reached_by_a_seek(clips, name):
    path = clips[name]
    every = list(iter_video_frames(path))
    lo, hi = every[67].timestamp_s, every[79].timestamp_s  # 67 .. 78
    got = list(iter_video_frames(path, start_s=lo, end_s=hi))
    assert [(f.index, f.timestamp_s) for f in got] == [(f.index, f.timestamp_s) for f in every[67:79]]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(got, every[67:79], strict=True))
    assert [f.index for f in iter_video_frames(path, start_s=lo, end_s=hi, step=5)] == [70, 75]
    first = next(iter(timed_frames(path, lo)))  # where decoding starts: a keyframe before the range
    if name == "h264":
        assert first.index == 0  # a raw stream cannot seek: it is decoded from its start
    else:
        assert 0 < first.index <= 67 and first.frame.key_frame


def test_variable_frame_intervals_are_read_from_the_container(tmp_path, write_clip, moving_square):
    """A recorder that drops frames and changes rate: the times are the stored ones, not index / rate."""
    pts_ms = [0, 40, 80, 200, 240, 250, 300, 400, 440, 480, 520, 700, 740, 780, 820, 1500, 1540, 1580, 1620, 1660]
    for fmt, ext in (("matroska", ".mkv"), ("mp4", ".mp4")):
        path = write_clip(tmp_path / f"vfr{ext}", fmt, "libx264", moving_square(len(pts_ms)), pts_ms=pts_ms)
        frames = list(iter_video_frames(path))
        assert [round(f.timestamp_s * 1000, 6) for f in frames] == pts_ms, ext
        assert [f.index for f in frames] == list(range(len(pts_ms)))
        inside = list(iter_video_frames(path, start_s=0.25, end_s=0.75))
        assert [f.index for f in inside] == [5, 6, 7, 8, 9, 10, 11, 12]
        assert read_video_frame_at(path, 1.2).index == 14  # on show from 0.82 s until 1.5 s
        assert read_video_frame(path, 15).timestamp_s == pytest.approx(1.5)


def test_a_frame_is_found_by_its_time_and_by_its_index(clips):
    path = clips["mpg"]
    every = list(iter_video_frames(path))
    for i in (0, 7, 53, N - 1):
        at = read_video_frame_at(path, round(every[i].timestamp_s, 3))  # a time as recorded, to the millisecond
        by_index = read_video_frame(path, i)
        assert at.index == by_index.index == i
        assert np.array_equal(at.image, every[i].image) and np.array_equal(by_index.image, every[i].image)
    assert read_video_frame_at(path, 0.0).index == 0  # before the first frame's time: the first frame
    with pytest.raises(VideoDecodeError, match="past the end"):
        read_video_frame_at(path, 60.0)
    with pytest.raises(VideoDecodeError, match="frame 100 is past the end"):
        read_video_frame(path, N)


def test_a_truncated_clip_yields_its_sound_frames_then_says_so(tmp_path, write_clip, moving_square):
    whole = write_clip(tmp_path / "whole.mkv", "matroska", "libx264", moving_square(100), gop=10)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    got = []
    with pytest.raises(VideoDamagedError, match=r"truncated") as err:
        for frame in iter_video_frames(cut):
            got.append(frame)
    assert str(cut) in str(err.value) and "declares 4.00 s" in str(err.value)
    assert 10 < len(got) < 90 and err.value.frames_read == len(got)
    assert err.value.read_until_s == pytest.approx(got[-1].timestamp_s)
    assert [f.index for f in got] == list(range(len(got)))  # the frames before the cut are all there
    mp4 = write_clip(tmp_path / "whole.mp4", "mp4", "libx264", moving_square(20))
    cut_mp4 = tmp_path / "cut.mp4"
    cut_mp4.write_bytes(mp4.read_bytes()[: mp4.stat().st_size * 2 // 3])  # the index (moov) comes last
    with pytest.raises(VideoDecodeError, match=r"cut\.mp4: .*truncated"):
        video_info(cut_mp4)


def test_a_damaged_packet_is_skipped_and_reported(tmp_path, write_clip, moving_square):
    import av

    path = write_clip(tmp_path / "clip.mp4", "mp4", "libx264", moving_square(30), gop=5)
    with av.open(str(path)) as container:
        packet = [p for p in container.demux(video=0) if p.size][12]
        pos, size = packet.pos, packet.size
    data = bytearray(path.read_bytes())
    data[pos : pos + size] = b"\xff" * size
    path.write_bytes(bytes(data))
    got = []
    with pytest.raises(VideoDamagedError, match=r"1 packet\(s\) are damaged") as err:
        got.extend(iter_video_frames(path))
    assert err.value.frames_read == len(got) and len(got) >= 25  # the other frames were read


def test_the_selection_of_best_frames_keeps_the_frames_before_damage(tmp_path, write_clip, moving_square,
                                                                     detector):
    from forensic_face.vision.select import select_best_frames

    whole = write_clip(tmp_path / "whole.mkv", "matroska", "libx264", moving_square(60), gop=10)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    selection = select_best_frames(cut, detector)
    assert 10 < selection.indices.size < 60 and "truncated" in selection.warnings[0]


@pytest.mark.parametrize("ext", sorted(set().union(*VIDEO_FORMATS.values())))
def test_random_bytes_are_not_taken_for_video(tmp_path, ext):
    rng = np.random.default_rng(len(ext))
    for seed in range(200):  # many random heads, none of which is a container
        assert sniff_video(np.random.default_rng(seed).bytes(SNIFF_BYTES)) is None
    path = tmp_path / f"noise{ext}"
    path.write_bytes(rng.bytes(20_000))
    with pytest.raises(VideoDecodeError, match=f"noise{ext}"):
        list(iter_video_frames(path))


def test_reading_can_be_cancelled(clips):
    progress = Progress()
    seen = []
    with pytest.raises(CancelledError):
        for frame in iter_video_frames(clips["mp4"], progress=progress):
            seen.append(frame.index)
            if frame.index == 5:
                progress.token.cancel()
    assert seen == list(range(6))
