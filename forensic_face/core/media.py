"""Media containers read through PyAV (FFmpeg's libraries, bundled with the ``av`` wheel): what the video and
the audio readers share.

Times. Every time this package reports for a container is in seconds from the container's start (the earliest
start of its streams, :func:`origin`): a frame at t s and the audio sample at t s are the same instant, whatever
the container's own clock reads (an MPEG stream from a recorder may start at hours) and whichever stream starts
first.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
from av.container import InputContainer
from av.packet import Packet
from av.stream import Stream

from forensic_face.core.errors import InputError

#: FFmpeg's AVFMT_NOTIMESTAMPS flag: the container format stores no timestamps (raw H.264 and HEVC streams).
_NO_TIMESTAMPS = 0x80
#: FFmpeg's AVFMT_TS_DISCONT flag: timestamps may jump (MPEG program and transport streams).
_TS_DISCONT = 0x200
#: Slack when comparing times computed from different time bases, s.
TIME_EPS_S = 1e-6


def reason(exc: av.FFmpegError) -> str:
    """FFmpeg's words for an error, without the file name PyAV appends."""
    return (exc.strerror or str(exc)).rstrip(".")


def open_media(path: Path, fail: Callable[[str], InputError]) -> InputContainer:
    """Open ``path`` read-only with PyAV (headers only; nothing is decoded).

    A file FFmpeg cannot open raises ``fail(FFmpeg's reason)``, an error that names the file and says what to do.
    """
    try:
        return av.open(str(path), mode="r", metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise fail(reason(exc)) from None


def origin(container: InputContainer) -> Fraction:
    """The container's start, s (exact): the zero of every time reported for its streams; 0 when it has none."""
    start = container.start_time
    return Fraction(start, 1_000_000) if start is not None else Fraction(0)


def has_timestamps(container: InputContainer) -> bool:
    """False for container formats that store no time at all (raw H.264/HEVC): frame times are then nominal."""
    return not container.format.flags & _NO_TIMESTAMPS


def stream_time(ts: int | None, stream: Stream, zero: Fraction) -> float | None:
    """A timestamp of ``stream`` (in its time base) in seconds from the container's start ``zero``."""
    return None if ts is None or stream.time_base is None else float(ts * stream.time_base - zero)


def packet_time(packet: Packet, zero: Fraction) -> float | None:
    """A packet's presentation time (its decoding time where it has none), s from the container's start."""
    return stream_time(packet.pts if packet.pts is not None else packet.dts, packet.stream, zero)


def demux_from(container: InputContainer, stream: Stream, time_s: float, zero: Fraction, *,
               all_streams: bool = False) -> Iterator[Packet]:
    """The packets from a keyframe of ``stream`` at or before ``time_s`` (s from the container's start) to the end:
    ``stream``'s only, or every stream's with ``all_streams``.

    So that a range late in a long recording is not decoded from the recording's start:

    - an MPEG program or transport stream is read from its start, but the packets before that keyframe are only
      read, not yielded: these formats have no index, their seeks land by bisection on timestamps, and FFmpeg
      fills in the times of packets that carry none from the packets before them, which after a seek are not
      the same (the times would differ from those of a reading from the start);
    - any other container that can seek jumps there; a seek whose first keyframe lies after ``time_s`` is
      retried from further back;
    - a container that cannot seek (a raw stream) is read from its start, and every packet yielded.
    """
    wanted = () if all_streams else (stream,)
    if time_s <= 0 or stream.time_base is None:
        return container.demux(*wanted)
    if container.format.flags & _TS_DISCONT:
        return _from_keyframe(container.demux(*wanted), stream, time_s, zero)
    for back in (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0):
        target = max(time_s - back, 0.0)
        try:
            container.seek(int((target + zero) / stream.time_base), stream=stream, backward=True)
        except av.FFmpegError:  # the format cannot seek (a raw stream): read it from the start
            return container.demux(*wanted)
        packets = container.demux(*wanted)
        key = next((p for p in packets  # packets before it cannot be decoded from here, or are other streams'
                    if p.stream.index == stream.index and p.is_keyframe and packet_time(p, zero) is not None), None)
        if key is not None and packet_time(key, zero) <= time_s + TIME_EPS_S:
            return itertools.chain([key], packets)
        if target == 0.0:
            break
    container.seek(container.start_time or 0, backward=True)
    return container.demux(*wanted)


def _from_keyframe(packets: Iterator[Packet], stream: Stream, time_s: float, zero: Fraction) -> Iterator[Packet]:
    """``packets`` from the last keyframe of ``stream`` at or before ``time_s``; those before it are dropped.

    The packets from a keyframe on are held until one of ``stream`` lies past ``time_s`` (in decoding order no
    later keyframe can then lie before it): at most a group of pictures.
    """
    held: list[Packet] = []
    for packet in packets:
        mine = packet.stream.index == stream.index and packet.size
        t = packet_time(packet, zero) if mine else None
        if t is not None and packet.is_keyframe and t <= time_s + TIME_EPS_S:
            held = []
        if held or (t is not None and packet.is_keyframe):
            held.append(packet)
        if t is not None and t > time_s + TIME_EPS_S:
            break
    else:  # the end came first: the last group of pictures
        yield from held
        return
    yield from held
    yield from packets
