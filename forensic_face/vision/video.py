"""Video files read through PyAV (FFmpeg's libraries, bundled with the ``av`` wheel): what a container says about
its video stream, and the stream's frames, each with its number and its time.

Times. A frame's time is its own presentation timestamp (pts x the stream's time base) in seconds from the
container's start (:mod:`forensic_face.core.media`), never index / rate: a recorder's uneven frame intervals,
dropped frames and gaps show as they are. A raw H.264/HEVC stream stores no time at all; its frames get nominal
times (index / rate) and say so (:attr:`VideoInfo.timestamps`, :attr:`TimedFrame.timestamps`).

Numbers. A frame's index is its place in presentation order among all the frames of the stream: the number of
the stream's packets whose time is earlier. So a frame has the same index whether the stream is read from its
start or from a seek into it.

Damage. Packets that cannot be decoded are skipped (and those the container marks corrupt noted), and a stream
that ends well before the length its container declares is truncated; either way :class:`VideoDamagedError` is
raised after the last frame that could be decoded, so that the frames read before it may still be used.

Evidence files are only opened for reading.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av
from av.container import InputContainer
from av.stream import Stream
from av.video.frame import VideoFrame

from forensic_face.core.errors import VideoDamagedError, VideoDecodeError
from forensic_face.core.media import (
    TIME_EPS_S,
    demux_from,
    has_timestamps,
    open_media,
    origin,
    packet_time,
    reason,
    stream_time,
)

log = logging.getLogger(__name__)

#: Refuse video whose frames are larger than this many pixels (8K UHD, 7680 x 4320: 100 MB per decoded RGB
#: frame), checked on the container's frame size before any frame is decoded.
MAX_VIDEO_PIXELS = 7680 * 4320
#: Frame rate assumed for a stream that states none, frames/s (FFmpeg's own default for raw streams).
DEFAULT_FPS = 25.0
#: A stream whose packets end more than this before the length its container declares (s; or 2 % of that
#: length when more) is truncated. Streams of one file end within a frame or two of each other.
TRUNCATION_SLACK_S = 0.5
#: Timestamp notes of frames and of :class:`VideoInfo`.
CONTAINER_TIMES = "container"
INTERPOLATED_TIMES = "interpolated: the frame has no timestamp, its time follows the previous frame's"


@dataclass(frozen=True)
class VideoInfo:
    """What a video container says about its (first) video stream, from its headers."""

    path: str
    fps: float  # the stream's average frame rate, frames/s (DEFAULT_FPS when it states none)
    frame_count: int  # frames in the stream: counted where the container counts them, else estimated
    width: int  # pixels
    height: int  # pixels
    duration_s: float = 0.0  # length of the recording, s
    codec: str = ""  # FFmpeg's codec name, e.g. "h264", "mpeg2video"
    container: str = ""  # FFmpeg's name of the container format, e.g. "MPEG-PS (MPEG-2 Program Stream)"
    has_audio: bool = False  # the file carries an audio stream (the clip's own sound)
    frame_count_exact: bool = True  # False: frame_count is duration x fps (the container does not count frames)
    timestamps: str = CONTAINER_TIMES  # "container", or why the times are nominal (index / fps)


class TimedFrame(NamedTuple):
    """A decoded frame with its place in the stream."""

    index: int  # place in presentation order among the stream's frames
    time_s: float  # presentation time, s from the container's start
    frame: VideoFrame  # as decoded (convert with ``frame.to_ndarray(format="rgb24")``)
    timestamps: str  # where time_s comes from: CONTAINER_TIMES, INTERPOLATED_TIMES or the nominal note


def check_video_frame_size(width: int, height: int, source: str | Path) -> None:
    """Refuse video frames over :data:`MAX_VIDEO_PIXELS` with a :class:`VideoDecodeError` that says what to do."""
    if width * height > MAX_VIDEO_PIXELS:
        raise VideoDecodeError(
            f"{source}: frames of {width}x{height} pixels ({width * height / 1e6:.0f} MP) are over the "
            f"{MAX_VIDEO_PIXELS / 1e6:.0f} MP (8K UHD) limit; add a downscaled copy instead "
            "(e.g. ffmpeg -i IN -vf scale=-2:2160 OUT.mp4)"
        )


def video_info(path: str | Path) -> VideoInfo:
    """Frame rate, frame count, size, length, codec, container and audio presence of a video file.

    Read from the headers; only a raw H.264/HEVC stream, which states no length, is read through once (its
    packets, not decoded) to count its frames. Cached per file version (path, size, modification time).
    Raises :class:`VideoDecodeError` for a missing file, one FFmpeg cannot open, or one with no video stream.
    """
    p = Path(path)
    if not p.is_file():
        raise VideoDecodeError(f"{p}: no such file")
    st = p.stat()
    return _probe(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _probe(path: str, _size: int, _mtime_ns: int) -> VideoInfo:
    """:func:`video_info` of one version of a file (the size and time only key the cache)."""
    with _open(Path(path)) as container:
        stream = _video_stream(container, path)
        fps = _fps(stream)
        zero = origin(container)
        start = stream_time(stream.start_time, stream, zero) or 0.0
        duration = container.duration / 1e6 if container.duration else 0.0
        timed = has_timestamps(container)
        if stream.frames > 0:
            count, exact = stream.frames, True
        elif not timed:
            count, exact = sum(1 for packet in container.demux(stream) if packet.size), True
            duration = count / fps
        else:  # the video's span (it may start after the container) at its average rate
            count, exact = max(int(round((duration - start) * fps)), 0), False
        return VideoInfo(
            path=path, fps=fps, frame_count=count, width=stream.codec_context.width,
            height=stream.codec_context.height, duration_s=duration,
            codec=stream.codec_context.name, container=container.format.long_name,
            has_audio=bool(container.streams.audio), frame_count_exact=exact,
            timestamps=CONTAINER_TIMES if timed else nominal_note(fps))


def nominal_note(fps: float) -> str:
    """The timestamp note of a stream that stores no time."""
    return f"nominal {fps:g} fps, the stream has none"


def timed_frames(path: str | Path, from_s: float = 0.0, *, threads: int = 0) -> Iterator[TimedFrame]:
    """Every frame of the video stream from a keyframe at or before ``from_s`` (s) to the end, decoded in turn.

    The frames before ``from_s`` back to that keyframe are decoded and yielded too (callers filter). A container
    that can seek is not read from its start (:func:`forensic_face.core.media.demux_from`); a raw stream is.
    ``threads``: decoder threads, 0 for FFmpeg's choice (one per core). Raises :class:`VideoDamagedError` after
    the last frame when packets could not be decoded or the stream is truncated, and :class:`VideoDecodeError`
    when no frame at all can be decoded.
    """
    p = Path(path)
    with _open(p) as container:
        stream = _video_stream(container, p)
        stream.codec_context.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        zero, timed, fps = origin(container), has_timestamps(container), _fps(stream)
        damage = _Damage(p, stream, zero)
        packets = demux_from(container, stream, from_s if timed else 0.0, zero, all_streams=True)
        index, time_s, note = -1, None, CONTAINER_TIMES if timed else nominal_note(fps)
        for frame in _decoded(packets, stream, damage):
            if timed and index < 0:
                index = frames_before(p, stream.index, stream_time(frame.pts, stream, zero) or 0.0)
            else:
                index += 1
            pts_time = stream_time(frame.pts, stream, zero) if timed else index / fps
            time_s = pts_time if pts_time is not None else (time_s or 0.0) + 1.0 / fps
            damage.frames, damage.last_s = damage.frames + 1, time_s
            yield TimedFrame(index, time_s, frame, note if pts_time is not None else INTERPOLATED_TIMES)
        damage.finish(container.duration, 1.0 / fps)


def frames_before(path: Path, stream_index: int, time_s: float) -> int:
    """How many frames of the stream come before ``time_s`` (s from the container's start): its packets with an
    earlier time, counted without decoding from the start up to two keyframes past ``time_s``."""
    with _open(path) as container:
        stream, zero = container.streams[stream_index], origin(container)
        count, keys_after = 0, 0
        for packet in container.demux(stream):
            t = packet_time(packet, zero)
            if not packet.size or t is None:
                continue
            if t < time_s - TIME_EPS_S:
                count += 1
            elif packet.is_keyframe and t > time_s + TIME_EPS_S:
                keys_after += 1
                if keys_after == 2:  # a later packet can no longer present before time_s
                    break
        return count


def _decoded(packets: Iterator[av.Packet], stream: Stream, damage: _Damage) -> Iterator[VideoFrame]:
    """The frames decoded from ``stream``'s packets in presentation order; a packet that cannot be decoded is
    skipped, and a demuxer failure ends the stream, both noted in ``damage``."""
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.FFmpegError as exc:  # the container itself is broken here: flush what was decoded
            damage.broken(exc)
            yield from _flush(stream, damage)
            return
        damage.seen(packet)
        if packet.stream.index != stream.index:  # (a flush packet's stream_index is 0: PyAV 18)
            continue
        if packet.is_corrupt:  # e.g. an MPEG-TS continuity error: decoded, but its frame may show the damage
            damage.damaged(packet, "marked corrupt by the container")
        try:
            yield from packet.decode()
        except av.FFmpegError as exc:
            damage.damaged(packet, reason(exc))


def _flush(stream: Stream, damage: _Damage) -> Iterator[VideoFrame]:
    """The frames the decoder still holds."""
    try:
        yield from stream.codec_context.decode(None)
    except av.FFmpegError as exc:
        damage.broken(exc)


class _Damage:
    """What went wrong while a stream was read, and the error that says so at its end."""

    def __init__(self, path: Path, stream: Stream, zero: Fraction) -> None:
        self.path, self.stream, self.zero = path, stream, zero
        self.frames, self.last_s = 0, None  # frames yielded, time of the last
        self.end_s = 0.0  # latest packet end of any stream, s
        self.bad: list[str] = []  # damaged packets: "at T s: why"
        self.fault: str | None = None  # the demuxer's failure

    def seen(self, packet: av.Packet) -> None:
        t = packet_time(packet, self.zero)
        if t is not None:
            self.end_s = max(self.end_s, t + float((packet.duration or 0) * (packet.time_base or 0)))

    def damaged(self, packet: av.Packet, why: str) -> None:
        t = packet_time(packet, self.zero)
        self.bad.append(f"at {t:.2f} s: {why}" if t is not None else why)
        log.warning("%s: a damaged video packet (%s)", self.path, self.bad[-1])

    def broken(self, exc: av.FFmpegError) -> None:
        self.fault = self.fault or reason(exc)

    def finish(self, declared_us: int | None, frame_s: float) -> None:
        """Raise what was found, once every readable frame has been yielded."""
        read = "no frame could be decoded" if not self.frames else \
            f"the {self.frames} frames read (up to {self.last_s:.2f} s) can be used" + \
            (", those next to the damaged packets with care" if self.bad else "")
        problems = []
        if self.fault:
            problems.append(f"the file is damaged after {self.end_s:.2f} s ({self.fault}) and cannot be read on")
        if self.bad:
            problems.append(f"{len(self.bad)} packet(s) are damaged, so their frames are missing or show decoding "
                            f"errors (the first {self.bad[0]})")
        declared = declared_us / 1e6 if declared_us else 0.0
        end = max(self.end_s, (self.last_s or 0.0) + frame_s)
        if not self.fault and declared - end > max(TRUNCATION_SLACK_S, 0.02 * declared):
            problems.append(f"the streams stop at {end:.2f} s but the container declares {declared:.2f} s: the file "
                            "is truncated (a copy or export that did not finish) or damaged there; get a complete "
                            "copy for the rest")
        if problems:
            raise VideoDamagedError(f"{self.path}: {'; '.join(problems)}; {read}", self.frames, self.last_s)
        if not self.frames:
            raise VideoDecodeError(f"{self.path}: the video contains no decodable frames")


#: Why FFmpeg finds nothing in a video file, for the messages.
_UNREADABLE = "it is damaged, truncated (an MP4/MOV recording that was not finished has no index) or not a video"


def _open(path: Path) -> InputContainer:
    if not path.is_file():
        raise VideoDecodeError(f"{path}: no such file")
    return open_media(path, lambda why: VideoDecodeError(f"{path}: cannot be opened ({why}); {_UNREADABLE}"))


def _video_stream(container: InputContainer, path: str | Path) -> Stream:
    if container.streams.video:
        return container.streams.video[0]
    if container.streams.audio:
        raise VideoDecodeError(f"{path}: the file holds sound but no video stream; add it as audio evidence")
    raise VideoDecodeError(f"{path}: no stream can be found in it ({container.format.long_name}); {_UNREADABLE}")


def _fps(stream: Stream) -> float:
    """The stream's average frame rate, else its guessed or base rate, else :data:`DEFAULT_FPS`."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and 0 < rate < 1000:
            return float(rate)
    return DEFAULT_FPS
