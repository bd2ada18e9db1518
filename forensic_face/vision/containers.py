"""The video containers this package reads, recognised by their first bytes, and their file extensions.

Recognition is strict: a container is named only when its signature and the structure right after it agree
(several MPEG-TS sync bytes 188 bytes apart, an SPS with a known profile after a raw H.264 start code, the
EBML document type of Matroska, ...), so that random bytes with a video extension are refused. No decoder is
imported here: the case store calls this before any file is opened by FFmpeg.
"""

from __future__ import annotations

#: How many bytes of a file :func:`sniff_video` needs (four MPEG-TS packets and some spare).
SNIFF_BYTES = 1024

#: File extensions of each container format :func:`sniff_video` names.
VIDEO_FORMATS: dict[str, frozenset[str]] = {
    "MPEG program stream": frozenset({".mpg", ".mpeg", ".vob", ".m2p"}),
    "MPEG video stream": frozenset({".mpg", ".mpeg", ".m1v", ".m2v"}),
    "MPEG transport stream": frozenset({".ts", ".m2t"}),
    "MPEG transport stream (M2TS)": frozenset({".m2ts", ".mts"}),
    "AVI": frozenset({".avi"}),
    "MP4/MOV": frozenset({".mp4", ".m4v", ".mov", ".qt", ".3gp", ".3g2"}),
    "Matroska/WebM": frozenset({".mkv", ".webm"}),
    "raw H.264": frozenset({".h264", ".264"}),
    "raw HEVC": frozenset({".h265", ".265", ".hevc"}),
    "ASF/WMV": frozenset({".wmv", ".asf"}),
    "FLV": frozenset({".flv"}),
}
VIDEO_SUFFIXES: frozenset[str] = frozenset().union(*VIDEO_FORMATS.values())

_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
#: ISO base media (MP4) and QuickTime boxes a file may begin with.
_ISO_BOXES = {b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}
_H264_PROFILES = {66, 77, 88, 100, 110, 122, 244, 44, 83, 86, 118, 128, 134, 135, 138, 139}
_H264_LEVELS = {9, 10, 11, 12, 13, 20, 21, 22, 30, 31, 32, 40, 41, 42, 50, 51, 52, 60, 61, 62}


def sniff_video(head: bytes) -> str | None:
    """The video container format that a file's first bytes (:data:`SNIFF_BYTES` of them) show, or None."""
    checks = (
        ("MPEG program stream", _is_mpeg_ps), ("MPEG video stream", _is_mpeg_es),
        ("MPEG transport stream", lambda h: _ts_sync(h, 0, 188)),
        ("MPEG transport stream (M2TS)", lambda h: _ts_sync(h, 4, 192)),
        ("AVI", lambda h: h[:4] == b"RIFF" and h[8:12] == b"AVI "), ("MP4/MOV", _is_iso_media),
        ("Matroska/WebM", lambda h: h[:4] == b"\x1a\x45\xdf\xa3" and (b"matroska" in h[:64] or b"webm" in h[:64])),
        ("raw H.264", _is_h264), ("raw HEVC", _is_hevc), ("ASF/WMV", lambda h: h[:16] == _ASF_GUID),
        ("FLV", lambda h: h[:4] == b"FLV\x01" and h[4] in (1, 4, 5) and h[5:9] == b"\x00\x00\x00\x09"),
    )
    return next((name for name, check in checks if len(head) >= 16 and check(head)), None)


def _is_mpeg_ps(h: bytes) -> bool:
    """An MPEG pack header: MPEG-2 ('01' and a marker bit) or MPEG-1 ('0010' and a marker bit)."""
    return h[:4] == b"\x00\x00\x01\xba" and ((h[4] & 0xC4) == 0x44 or (h[4] & 0xF1) == 0x21)


def _is_mpeg_es(h: bytes) -> bool:
    """An MPEG-1/2 video sequence header with a non-zero picture size."""
    width, height = h[4] << 4 | h[5] >> 4, (h[5] & 0x0F) << 8 | h[6]
    return h[:4] == b"\x00\x00\x01\xb3" and width > 0 and height > 0


def _ts_sync(h: bytes, first: int, size: int) -> bool:
    """MPEG-TS sync bytes (0x47) at four packet starts in a row."""
    return len(h) >= first + 3 * size + 1 and all(h[first + i * size] == 0x47 for i in range(4))


def _is_iso_media(h: bytes) -> bool:
    """An ISO base media / QuickTime box first: a known type with a size that can hold it (0: to the end)."""
    size = int.from_bytes(h[:4], "big")
    if h[4:8] == b"ftyp":
        return 16 <= size <= 1024 and h[8:12].isascii() and h[8:12].strip(b" ").isalnum()
    return h[4:8] in _ISO_BOXES and (size >= 8 or size in (0, 1))


def _nal_units(h: bytes) -> list[bytes]:
    """The first NAL units of an Annex B stream that starts with a start code (00 00 01 or 00 00 00 01)."""
    if not (h.startswith(b"\x00\x00\x01") or h.startswith(b"\x00\x00\x00\x01")):
        return []
    units, pos = [], h.index(b"\x00\x00\x01") + 3
    while pos < len(h) and len(units) < 4:
        end = h.find(b"\x00\x00\x01", pos)
        units.append(h[pos:end if end >= 0 else len(h)].rstrip(b"\x00"))
        if end < 0:
            break
        pos = end + 3
    return units


def _is_h264(h: bytes) -> bool:
    """Raw H.264: start codes, then an SPS (type 7, a known profile and level), with at most an access-unit
    delimiter or SEI before it."""
    for nal in _nal_units(h):
        if len(nal) < 4 or nal[0] & 0x80:
            return False
        kind = nal[0] & 0x1F
        if kind == 7:
            return nal[0] & 0x60 != 0 and nal[1] in _H264_PROFILES and nal[2] & 0x03 == 0 and nal[3] in _H264_LEVELS
        if kind not in (6, 9):
            return False
    return False


def _is_hevc(h: bytes) -> bool:
    """Raw HEVC: start codes, then a video parameter set (type 32, base layer), with at most an access-unit
    delimiter or SEI before it."""
    for nal in _nal_units(h):
        if len(nal) < 4 or nal[0] & 0x80 or nal[1] != 0x01:
            return False
        kind = nal[0] >> 1 & 0x3F
        if kind == 32:
            return True
        if kind not in (35, 39):
            return False
    return False
