"""Size limits on stills and video, checked on the header before anything is decoded.

The oversized PNGs are real, valid files (black, so they compress to about 1 MB per 1000 MP): their
deflate stream is one compressed block of zero rows repeated, so building them costs milliseconds.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from forensic_face.core.errors import ImageDecodeError, VideoDecodeError
from forensic_face.vision import frames, video
from forensic_face.vision.frames import decode_image_bytes, iter_video_frames, load_image, read_video_frame, to_rgb8
from forensic_face.vision.imageheader import read_image_header


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_header(width: int, height: int, depth: int = 8, colour: int = 0, idat: bytes = b"") -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def black_png(width: int, height: int, rows_per_block: int = 64) -> bytes:
    """A valid 8-bit grey PNG of ``width`` x ``height`` black pixels, built without holding its pixels."""
    row = width + 1  # filter byte + pixels, all zero
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = comp.compress(bytes(row * rows_per_block)) + comp.flush(zlib.Z_FULL_FLUSH)  # resets the window
    full, rest = divmod(height, rows_per_block)
    tail = comp.compress(bytes(row * rest)) + comp.flush(zlib.Z_FINISH)
    adler = (((row * height) % 65521) << 16) | 1  # Adler-32 of that many zero bytes
    return _png_header(width, height, idat=b"\x78\xda" + piece * full + tail + struct.pack(">I", adler))


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if OpenCV is asked to decode (the header check must come first)."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("cv2.imdecode was called: the image was decoded before its size was checked")

    monkeypatch.setattr(frames.cv2, "imdecode", refuse)


def test_black_png_builder_makes_valid_files():
    img = cv2.imdecode(np.frombuffer(black_png(301, 130, rows_per_block=7), np.uint8), cv2.IMREAD_UNCHANGED)
    assert img.shape == (130, 301) and img.max() == 0


def test_900_megapixel_png_is_refused_from_its_header(tmp_path, no_decoding):
    path = tmp_path / "bomb.png"
    path.write_bytes(black_png(30000, 30000))  # 900 MP, under 1 MB on disk
    with pytest.raises(ImageDecodeError) as err:
        load_image(path)
    message = str(err.value)
    assert "30000x30000" in message and "900 MP" in message and "80 MP" in message
    assert "crop" in message and "downscale" in message and str(path) in message


def test_60000_pixel_square_png_is_an_image_decode_error(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(black_png(60000, 60000))  # 3600 MP: past OpenCV's own limit, which asserts
    with pytest.raises(ImageDecodeError, match="60000x60000"):
        load_image(path)


def test_opencv_assertions_become_image_decode_errors(monkeypatch):
    """With our limits lifted, OpenCV's own size assertion must still arrive as an ImageDecodeError."""
    monkeypatch.setattr(frames, "MAX_PIXELS", 10**12)
    monkeypatch.setattr(frames, "MAX_DECODED_BYTES", 10**13, raising=False)
    with pytest.raises(ImageDecodeError, match="cannot decode") as err:
        decode_image_bytes(black_png(60000, 60000), source="huge.png")
    assert "huge.png" in str(err.value) and not isinstance(err.value, cv2.error)


def _jpeg_claiming(width: int, height: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    data = bytearray(buf.tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _bmp_claiming(width: int, height: int) -> bytes:
    ok, buf = cv2.imencode(".bmp", np.zeros((8, 8, 3), np.uint8))
    data = bytearray(buf.tobytes())
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def _tiff_claiming(width: int, height: int, bits: int = 8, samples: int = 1, order: str = "<") -> bytes:
    tags = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, bits), (277, 3, 1, samples)]
    ifd = struct.pack(order + "H", len(tags)) + b"".join(
        struct.pack(order + "HHI", tag, typ, n) + struct.pack(order + ("HH" if typ == 3 else "I"), *(
            (value, 0) if typ == 3 else (value,))) for tag, typ, n, value in tags) + struct.pack(order + "I", 0)
    return (b"II*\x00" if order == "<" else b"MM\x00*") + struct.pack(order + "I", 8) + ifd


@pytest.mark.parametrize(
    "name,data",
    [
        ("big.jpg", _jpeg_claiming(20000, 20000)),
        ("big.bmp", _bmp_claiming(20000, -20000)),  # negative height: a top-down bitmap
        ("big.tif", _tiff_claiming(20000, 20000)),
        ("big_motorola.tif", _tiff_claiming(20000, 20000, order=">")),
    ],
)
def test_every_format_is_refused_from_its_header(tmp_path, no_decoding, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ImageDecodeError, match=r"20000x20000 pixels \(400 MP\), over the 80 MP limit"):
        load_image(path)


@pytest.mark.filterwarnings("error")  # Pillow's DecompressionBombWarning (over 89 MP) must not be reached
def test_pillow_bomb_limits_are_not_what_refuses(tmp_path, no_decoding):
    path = tmp_path / "100mp.jpg"
    path.write_bytes(_jpeg_claiming(10000, 10000))
    with pytest.raises(ImageDecodeError, match=r"10000x10000 pixels \(100 MP\)"):
        load_image(path)


@pytest.mark.parametrize(
    "name,data,decoded_mib",
    [
        ("rgba16.png", _png_header(8500, 8500, depth=16, colour=6), 551),  # 72 MP x 4 x 2 bytes
        ("float_rgb.tif", _tiff_claiming(8000, 8000, bits=32, samples=3), 732),  # 64 MP x 3 x 4 bytes
        ("many_samples.tif", _tiff_claiming(4000, 4000, samples=64), 977),  # 16 MP x 64 samples
    ],
)
def test_decoded_size_is_limited_below_the_pixel_limit(tmp_path, no_decoding, name, data, decoded_mib):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ImageDecodeError, match=f"would decode to {decoded_mib} MiB, over the 512 MiB limit"):
        load_image(path)


def test_oversized_file_is_refused_before_it_is_read(tmp_path, monkeypatch, face_rgb):
    path = tmp_path / "face.png"
    assert cv2.imwrite(str(path), face_rgb)
    monkeypatch.setattr(frames, "MAX_IMAGE_FILE_BYTES", 1000, raising=False)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("the file was read"))
    with pytest.raises(ImageDecodeError, match="MiB"):
        load_image(path)


def _sample_images(tmp_path: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for name, array in [
        ("grey8.png", rng.integers(0, 255, (21, 34), np.uint8)),
        ("grey16.png", rng.integers(0, 65535, (21, 34), np.uint16)),
        ("bgra.png", rng.integers(0, 255, (21, 34, 4), np.uint8)),
        ("bgr.jpg", rng.integers(0, 255, (21, 34, 3), np.uint8)),
        ("grey.jpg", rng.integers(0, 255, (21, 34), np.uint8)),
        ("bgr.bmp", rng.integers(0, 255, (21, 34, 3), np.uint8)),
        ("bgr16.tif", rng.integers(0, 65535, (21, 34, 3), np.uint16)),
        ("grey32f.tif", rng.random((21, 34), np.float32)),
    ]:
        paths.append(tmp_path / name)
        assert cv2.imwrite(str(paths[-1]), array)
    for name, mode in [("palette.png", "P"), ("rgba.tif", "RGBA")]:
        paths.append(tmp_path / name)
        Image.fromarray(rng.integers(0, 255, (21, 34, 3), np.uint8)).convert(mode).save(paths[-1])
    paths.append(tmp_path / "grey16_motorola.tif")  # Pillow writes I;16B TIFFs big-endian ("MM")
    grey16 = rng.integers(0, 65535, (21, 34), np.uint16).astype(">u2")
    Image.frombytes("I;16B", (34, 21), grey16.tobytes()).save(paths[-1])
    assert paths[-1].read_bytes()[:2] == b"MM"
    return paths


def test_headers_agree_with_the_decoded_arrays(tmp_path):
    for path in _sample_images(tmp_path):
        data = path.read_bytes()
        header = read_image_header(data, frames.sniff_image_format(data))
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
        channels = 1 if img.ndim == 2 else img.shape[2]
        assert header is not None, path.name
        assert (header.width, header.height) == (34, 21), path.name
        assert header.bytes_per_sample == img.dtype.itemsize, path.name
        assert header.decoded_bytes >= img.nbytes and header.channels >= channels, path.name


def test_damaged_headers_are_unknown_not_errors():
    assert read_image_header(b"\x89PNG\r\n\x1a\n", "png") is None
    assert read_image_header(b"\xff\xd8\xff\xe0\x00", "jpeg") is None
    assert read_image_header(b"II*\x00\xff\xff\xff\x7f", "tiff") is None


def test_16_bit_conversion_is_unchanged():
    values = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    rgb, info = to_rgb8(values)
    expected = ((values.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    assert info["bit_depth"] == 16 and np.array_equal(rgb[..., 0], expected)


def _write_video(path: Path, n: int = 5, size: tuple[int, int] = (64, 48)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, size)
    for i in range(n):
        writer.write(np.full((size[1], size[0], 3), 20 * i, np.uint8))
    writer.release()


def test_video_frame_size_is_checked_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "clip.avi"
    _write_video(path)
    assert len(list(iter_video_frames(path))) == 5
    monkeypatch.setattr(video, "MAX_VIDEO_PIXELS", 64 * 48 - 1)
    with pytest.raises(VideoDecodeError, match=r"64x48 pixels .* over the .* limit") as err:
        next(iter_video_frames(path))
    assert "downscaled copy" in str(err.value)
    with pytest.raises(VideoDecodeError, match="64x48"):
        read_video_frame(path, 2)


def test_frame_scan_keeps_fewer_frames_when_they_are_large():
    from forensic_face.vision.select import _keep_limit

    def frame(w: int, h: int) -> frames.Frame:
        return frames.Frame(image=np.zeros((h, w, 3), np.uint8), source="x")

    assert _keep_limit(frame(1920, 1080), k=3, candidates=12) == 48  # as before up to 1080p
    assert _keep_limit(frame(7680, 4320), k=3, candidates=12) == 5  # 8K: 5 x 100 MB
    assert _keep_limit(frame(7680, 4320), k=8, candidates=12) == 8  # never fewer than k
