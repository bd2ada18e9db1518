"""Load stills and video frames into one representation: 8-bit RGB with a timestamp.

Stills: JPEG, PNG, BMP, TIFF; 8 or 16 bit; grey, RGB or RGBA; EXIF orientation applied.
Video: the containers of :mod:`forensic_face.vision.containers` (MP4/MOV, AVI, Matroska, MPEG-PS and -TS, raw
H.264, ...) through PyAV (:mod:`forensic_face.vision.video`); each frame keeps its index and its own timestamp.
Evidence files are only ever opened for reading.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from warnings import catch_warnings, simplefilter

import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from forensic_face.core.errors import ImageDecodeError, VideoDecodeError
from forensic_face.core.media import TIME_EPS_S
from forensic_face.core.progress import Progress
from forensic_face.vision.containers import VIDEO_SUFFIXES
from forensic_face.vision.imageheader import ImageHeader, read_image_header
from forensic_face.vision.video import (
    CONTAINER_TIMES,
    MAX_VIDEO_PIXELS,
    TimedFrame,
    VideoInfo,
    check_video_frame_size,
    timed_frames,
    video_info,
)

__all__ = ["IMAGE_GLOBS", "IMAGE_SUFFIXES", "MAX_VIDEO_PIXELS", "ROTATIONS", "VIDEO_SUFFIXES", "Frame", "VideoInfo",
           "check_image_header", "check_video_frame_size", "decode_image_bytes", "encode_png", "is_video_path",
           "iter_video_frames", "load_image", "read_video_frame", "read_video_frame_at", "rotate_image",
           "sniff_image_format", "to_grey", "to_rgb8", "turn_box", "video_info"]

#: File patterns of the still-image formats this package reads (folder scans: enrolment, training).
IMAGE_GLOBS = ("*.jpg", "*.jpeg", "*.png", "*.bmp", "*.tif", "*.tiff")

log = logging.getLogger(__name__)

#: Refuse stills larger than this many pixels (decompression bombs, mis-typed raw dumps); checked on
#: the header, before decoding.
MAX_PIXELS = 80_000_000
#: Refuse stills whose decoded array would be larger than this, bytes: 80 MP of 8-bit RGBA is 320 MB,
#: so this only bites on 16-bit, float or many-channel images near the pixel limit.
MAX_DECODED_BYTES = 512 << 20
#: Refuse still-image files larger than this before reading them, bytes (twice the largest array
#: we decode: no still we accept needs a bigger file).
MAX_IMAGE_FILE_BYTES = 2 * MAX_DECODED_BYTES
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}

_MAGIC = [
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
]
_SUFFIX_FORMAT = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png", ".bmp": "bmp", ".tif": "tiff", ".tiff": "tiff"}


@dataclass(frozen=True)
class Frame:
    """One picture to analyse.

    ``image`` is (H, W, 3) uint8 RGB whatever the source was; ``meta`` records what the source was
    (format, bit depth, channels, EXIF orientation, warnings) for the audit log.
    """

    image: np.ndarray
    source: str
    index: int = 0
    timestamp_s: float | None = None
    meta: dict = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.image.shape[1], self.image.shape[0]


def sniff_image_format(data: bytes) -> str | None:
    """The image format named by the file's first bytes, or None if it is not one we read."""
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    return None


def _exif_orientation(data: bytes, fmt: str) -> int:
    """EXIF orientation tag (1..8; 1 = upright) of a JPEG or TIFF, 1 when absent or unreadable."""
    if fmt not in ("jpeg", "tiff"):
        return 1
    import io

    from PIL import Image

    try:
        with catch_warnings():  # the size was checked against our own, lower limit already
            simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                value = int(im.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block must not stop the pixels being read
        return 1
    return value if 1 <= value <= 8 else 1


def _apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip pixels so that an image with EXIF ``orientation`` displays upright."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1, :],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.rot90(a, k=-1),
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
        8: lambda a: np.rot90(a, k=1),
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(img)) if op else img


#: The quarter turns a frame may be given before an analysis, degrees clockwise.
ROTATIONS = (0, 90, 180, 270)


def rotate_image(image: np.ndarray, degrees: int) -> np.ndarray:
    """``image`` turned clockwise by ``degrees`` (one of ROTATIONS)."""
    if degrees not in ROTATIONS:
        raise ValueError(f"a frame turns by 0, 90, 180 or 270 degrees, not {degrees}")
    return np.ascontiguousarray(np.rot90(image, k=-degrees // 90)) if degrees else image


def turn_box(box: tuple[float, float, float, float], degrees: int, width: int,
             height: int) -> tuple[float, float, float, float]:
    """A box (x0, y0, x1, y1) on a ``width`` x ``height`` frame, where it lies once the frame is turned
    clockwise by ``degrees`` (:func:`rotate_image`)."""
    x0, y0, x1, y1 = box
    turned = {0: (x0, y0, x1, y1), 90: (height - y1, x0, height - y0, x1),
              180: (width - x1, height - y1, width - x0, height - y0), 270: (y0, width - x1, y1, width - x0)}
    if degrees not in turned:
        raise ValueError(f"a frame turns by 0, 90, 180 or 270 degrees, not {degrees}")
    return turned[degrees]


#: 16-bit -> 8-bit with rounding, as a table: _LUT16[v] == (v * 255 + 32767) // 65535.
_LUT16 = ((np.arange(65536, dtype=np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def to_rgb8(img: np.ndarray) -> tuple[np.ndarray, dict]:
    """Convert an OpenCV-decoded array (grey/BGR/BGRA, 8/16-bit or float) to (H, W, 3) uint8 RGB."""
    info: dict = {"dtype": str(img.dtype), "channels": 1 if img.ndim == 2 else int(img.shape[2])}
    if img.dtype == np.uint16:
        img = _LUT16[img]  # (v * 255 + 32767) // 65535 by table: 1 byte per sample, no uint32 temporary
        info["bit_depth"] = 16
    elif img.dtype in (np.float32, np.float64):
        img = np.clip(np.nan_to_num(img) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        info["bit_depth"] = 32
    elif img.dtype != np.uint8:
        raise ImageDecodeError(f"unsupported pixel type {img.dtype}")
    else:
        info["bit_depth"] = 8
    if img.ndim == 2:
        rgb = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 1:
        rgb = cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 3:
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif img.shape[2] == 4:
        rgb = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)  # alpha dropped: CCTV stills carry no useful alpha
        info["alpha_dropped"] = True
    else:
        raise ImageDecodeError(f"unsupported channel count {img.shape[2]}")
    return rgb, info


def decode_image_bytes(data: bytes, source: str = "<bytes>", suffix: str = "") -> Frame:
    """Decode an encoded still (the file's bytes) into a :class:`Frame`.

    Raises :class:`ImageDecodeError` naming ``source`` when the bytes are empty, not an image we
    read, corrupt, or too large.
    """
    if not data:
        raise ImageDecodeError(f"{source}: the file is empty")
    fmt = sniff_image_format(data)
    if fmt is None:
        raise ImageDecodeError(
            f"{source}: not a JPEG, PNG, BMP or TIFF image (first bytes {data[:8].hex()}); "
            "convert it to one of these formats"
        )
    warnings: list[str] = []
    expected = _SUFFIX_FORMAT.get(suffix.lower())
    if suffix and expected != fmt:
        warnings.append(f"file extension {suffix!r} but content is {fmt.upper()}")
    check_image_header(data, source)
    buf = np.frombuffer(data, dtype=np.uint8)
    flags = cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION
    try:
        img = cv2.imdecode(buf, flags)
    except cv2.error as exc:  # OpenCV's own limits and decoder failures arrive as assertions
        raise ImageDecodeError(
            f"{source}: OpenCV cannot decode this {fmt.upper()} image ({getattr(exc, 'err', '') or 'error'}); "
            "it is corrupt or too large: crop or downscale a copy, or convert it to an 8-bit PNG"
        ) from None
    if img is None or img.size == 0:
        raise ImageDecodeError(f"{source}: the {fmt.upper()} data is corrupt or truncated and cannot be decoded")
    if img.shape[0] * img.shape[1] > MAX_PIXELS:
        raise ImageDecodeError(
            f"{source}: {img.shape[1]}x{img.shape[0]} pixels is over the {MAX_PIXELS // 1_000_000} MP limit"
        )
    orientation = _exif_orientation(data, fmt)
    img = _apply_orientation(img, orientation)
    rgb, info = to_rgb8(img)
    meta = {"format": fmt, "exif_orientation": orientation, "warnings": warnings, **info}
    return Frame(image=rgb, source=source, meta=meta)


def check_image_header(data: bytes, source: str = "<bytes>") -> ImageHeader | None:
    """Refuse encoded still ``data`` whose header announces too many pixels or too large a decoded array.

    Reads only the header (no pixel is decoded). Returns the header, or None when the format or
    header is not recognised (the decoder then reports the damage). Call this before handing
    untrusted image bytes to ``cv2.imdecode``.

    Raises :class:`ImageDecodeError` over :data:`MAX_PIXELS` or :data:`MAX_DECODED_BYTES`.
    """
    fmt = sniff_image_format(data)
    header = read_image_header(data, fmt) if fmt else None
    if header is None:
        return None
    size = f"{header.width}x{header.height} pixels ({header.pixels / 1e6:.0f} MP)"
    if header.pixels > MAX_PIXELS:
        raise ImageDecodeError(
            f"{source}: the {header.format.upper()} header says {size}, over the {MAX_PIXELS / 1e6:.0f} MP limit "
            "for stills; crop the region of interest or downscale a copy (e.g. to 8000 pixels on the long side) "
            "and load that"
        )
    if header.decoded_bytes > MAX_DECODED_BYTES:
        raise ImageDecodeError(
            f"{source}: {size} with {header.channels} channels of {8 * header.bytes_per_sample}-bit samples would "
            f"decode to {header.decoded_bytes / 2**20:.0f} MiB, over the {MAX_DECODED_BYTES >> 20} MiB limit; "
            "convert a copy to 8-bit RGB, or crop it, and load that"
        )
    return header


def to_grey(image: np.ndarray) -> np.ndarray:
    """The grey (H, W) uint8 form of an RGB (H, W, 3) uint8 image (ITU-R BT.601 weights, rounded as OpenCV
    rounds); a grey image is returned as it is, C-contiguous. The one grey conversion of the package: the
    detector, the quality measures, the frame selection and the probe path (so the networks) all use it."""
    if image.ndim == 2:
        return np.ascontiguousarray(image)
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 grey (H, W) or RGB (H, W, 3) image (lossless, for results and thumbnails)."""
    img = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise ImageDecodeError("could not encode an image as PNG")
    return buf.tobytes()


def load_image(path: str | Path) -> Frame:
    """Read a still image file into a :class:`Frame` (the file is opened read-only)."""
    p = Path(path)
    try:
        size = p.stat().st_size if p.is_file() else 0
        if size > MAX_IMAGE_FILE_BYTES:
            raise ImageDecodeError(
                f"{p}: {size / 2**20:.0f} MiB is more than a still image of at most {MAX_PIXELS / 1e6:.0f} MP "
                f"needs (limit {MAX_IMAGE_FILE_BYTES >> 20} MiB); crop or downscale a copy and load that"
            )
        data = p.read_bytes()
    except FileNotFoundError:
        raise ImageDecodeError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise ImageDecodeError(f"{p}: is a folder, not an image file") from None
    except OSError as exc:
        raise ImageDecodeError(f"{p}: cannot be read ({exc.strerror})") from None
    return decode_image_bytes(data, source=str(p), suffix=p.suffix)


def iter_video_frames(
    path: str | Path, *, step: int = 1, max_frames: int | None = None, progress: Progress | None = None,
    start_s: float | None = None, end_s: float | None = None, threads: int = 0,
) -> Iterator[Frame]:
    """Yield every ``step``-th frame (by index) of a video, or of its time range ``start_s <= t < end_s`` (s from
    the container's start), as a :class:`Frame` with its index and time.

    Times are the frames' own timestamps and indices their places in the stream (:mod:`forensic_face.vision.video`);
    ``meta["timestamps"]`` says where a time comes from ("container", or nominal for a raw stream). A range is
    reached without decoding from the start (a raw H.264/HEVC stream, which cannot seek, excepted).
    One frame is held at a time. The frame size the container declares is checked
    (:func:`check_video_frame_size`) before any frame is decoded, and the first decoded frame again. ``progress``
    counts the frames of the range (cancelling raises from its ``update``); ``threads``: decoder threads, 0 for
    one per core.

    Raises :class:`VideoDamagedError` after the last frame that could be decoded when the file is damaged or
    truncated (the frames yielded before it may be used), :class:`VideoDecodeError` when it cannot be read at all.
    """
    info = video_info(path)
    check_video_frame_size(info.width, info.height, path)
    lo, hi = start_s or 0.0, end_s if end_s is not None else float("inf")
    total = info.frame_count if start_s is None and end_s is None else \
        max(int(round((min(hi, info.duration_s) - lo) * info.fps)), 1)
    read = yielded = 0
    rgb = VideoReformatter()  # one for the clip: a conversion context per frame would cost 3x the decoding
    with closing(timed_frames(path, lo, threads=threads)) as frames:
        for timed in frames:
            if timed.time_s < lo - TIME_EPS_S:
                continue
            if timed.time_s >= hi - TIME_EPS_S:
                break
            if progress is not None:
                progress.update(min(read, total), max(total, read + 1), "reading frames")
            read += 1
            if timed.index % step:
                continue
            image = rgb.reformat(timed.frame, format="rgb24").to_ndarray()
            if yielded == 0:
                check_video_frame_size(image.shape[1], image.shape[0], path)
            yield _video_frame(path, timed, image)
            yielded += 1
            if max_frames is not None and yielded >= max_frames:
                break


def _video_frame(path: str | Path, timed: TimedFrame, image: np.ndarray) -> Frame:
    return Frame(image=image, source=str(path), index=timed.index, timestamp_s=timed.time_s,
                 meta={"format": "video", "timestamps": timed.timestamps, "pts": timed.frame.pts})


def read_video_frame(path: str | Path, index: int) -> Frame:
    """Decode the frame with this index (its place in the stream, as :func:`iter_video_frames` numbers it).

    Decoding starts at a keyframe a second before the index's nominal time where the container has timestamps
    (and from the start when that proves to be past the frame, as on variable-rate video), else at the start.
    """
    info = video_info(path)
    near = max(index / info.fps - 1.0, 0.0) if info.timestamps == CONTAINER_TIMES else 0.0
    for start in dict.fromkeys((near, 0.0)):
        for frame in iter_video_frames(path, start_s=start):
            if frame.index == index:
                return frame
            if frame.index > index:
                break
        else:
            break  # the whole rest of the video was read: there is no such frame
    raise VideoDecodeError(f"{path}: frame {index} is past the end of the video ({info.frame_count} frames)")


#: A time asked for (:func:`read_video_frame_at`) finds the frame this much later, s: a time recorded to the
#: millisecond still finds its frame.
TIME_TOLERANCE_S = 0.001


def read_video_frame_at(path: str | Path, time_s: float) -> Frame:
    """The frame on show at ``time_s`` (s from the container's start): the last frame whose time is at most
    ``time_s`` (+ :data:`TIME_TOLERANCE_S`); the first frame for a time before it. Decoded from the keyframe
    before that time, not from the start. Raises :class:`VideoDecodeError` for a time past the end."""
    info = video_info(path)
    check_video_frame_size(info.width, info.height, path)
    limit = time_s + TIME_TOLERANCE_S
    shown = None
    with closing(timed_frames(path, max(limit, 0.0))) as frames:
        for timed in frames:
            if timed.time_s > limit and shown is not None:
                break
            shown = timed
            if timed.time_s > limit:
                break
    if shown is None or time_s > max(shown.time_s + 1.0 / info.fps, info.duration_s):
        raise VideoDecodeError(f"{path}: {time_s:.3f} s is past the end of the video ({info.duration_s:.3f} s)")
    image = shown.frame.to_ndarray(format="rgb24")
    check_video_frame_size(image.shape[1], image.shape[0], path)
    return _video_frame(path, shown, image)


def is_video_path(path: str | Path) -> bool:
    """True when the file's extension is one of a video container (:data:`VIDEO_SUFFIXES`)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES
