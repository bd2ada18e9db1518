"""Size, channels and sample depth of a still image, read from its header without decoding pixels.

Parsed by hand for the four formats :mod:`forensic_face.vision.frames` reads (PNG IHDR, JPEG SOFn,
BMP DIB header, the first TIFF IFD), so that no decoder (OpenCV, or Pillow with its own
decompression-bomb limits) runs before our limits are checked. Channel counts are those OpenCV
returns with ``IMREAD_UNCHANGED`` (a palette PNG may come back as BGRA, so it counts 4), making
:attr:`ImageHeader.decoded_bytes` an upper estimate of the decoded array.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# PNG colour type -> channels OpenCV decodes it to (grey, -, RGB, palette, grey+alpha, -, RGBA)
_PNG_CHANNELS = {0: 1, 2: 3, 3: 4, 4: 4, 6: 4}
# JPEG start-of-frame markers (baseline, extended, progressive, lossless, arithmetic variants)
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_NO_LENGTH = {0x01, *range(0xD0, 0xDA)}  # TEM, RSTn, SOI, EOI: markers without a length field
# TIFF field types -> (struct code, size) for the integer types the size tags use
_TIFF_TYPES = {1: ("B", 1), 3: ("H", 2), 4: ("I", 4), 16: ("Q", 8)}


@dataclass(frozen=True)
class ImageHeader:
    """What a still's header says about the array decoding it would produce."""

    format: str  # "png", "jpeg", "bmp" or "tiff"
    width: int  # pixels
    height: int  # pixels
    channels: int  # samples per pixel of the decoded array
    bytes_per_sample: int  # 1 for 8-bit, 2 for 16-bit, 4 for 32-bit float ...

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def decoded_bytes(self) -> int:
        """Size of the decoded array, bytes (an upper estimate)."""
        return self.pixels * self.channels * self.bytes_per_sample


def read_image_header(data: bytes, fmt: str) -> ImageHeader | None:
    """The header of encoded image ``data`` in format ``fmt``; None when it cannot be parsed.

    None means "unknown", not "fine": the caller decodes and lets the decoder report the damage.
    """
    parser = {"png": _png, "jpeg": _jpeg, "bmp": _bmp, "tiff": _tiff}.get(fmt)
    if parser is None:
        return None
    try:
        return parser(data)
    except (struct.error, IndexError, ValueError):
        return None


def _png(data: bytes) -> ImageHeader | None:
    if data[12:16] != b"IHDR":
        return None
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    return ImageHeader("png", width, height, _PNG_CHANNELS.get(colour, 4), 2 if depth == 16 else 1)


def _jpeg(data: bytes) -> ImageHeader | None:
    i = 2  # after SOI
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_NO_LENGTH:
            i += 2
            continue
        if marker in _JPEG_SOF:
            precision, height, width, components = struct.unpack(">BHHB", data[i + 4 : i + 10])
            return ImageHeader("jpeg", width, height, components, 2 if precision > 8 else 1)
        if marker == 0xDA:  # start of scan before any frame header
            return None
        i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    return None


def _bmp(data: bytes) -> ImageHeader | None:
    dib = struct.unpack("<I", data[14:18])[0]
    if dib == 12:  # OS/2 BITMAPCOREHEADER
        width, height, _, bpp = struct.unpack("<HHHH", data[18:26])
    else:
        width, height, _, bpp = struct.unpack("<iiHH", data[18:30])
    return ImageHeader("bmp", abs(width), abs(height), 4 if bpp == 32 else 3, 1)


def _tiff(data: bytes) -> ImageHeader | None:
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[ifd : ifd + 2])
    tags: dict[int, int] = {}
    for k in range(count):
        entry = ifd + 2 + 12 * k
        tag, typ, n = struct.unpack(order + "HHI", data[entry : entry + 8])
        if tag in (256, 257, 258, 277) and typ in _TIFF_TYPES:
            code, size = _TIFF_TYPES[typ]
            at = entry + 8 if n * size <= 4 else struct.unpack(order + "I", data[entry + 8 : entry + 12])[0]
            tags[tag] = struct.unpack(order + code, data[at : at + size])[0]  # first value (e.g. of BitsPerSample)
    if 256 not in tags or 257 not in tags:
        return None
    bits = tags.get(258, 1)
    return ImageHeader("tiff", tags[256], tags[257], max(tags.get(277, 1), 1), max(1, -(-bits // 8)))
