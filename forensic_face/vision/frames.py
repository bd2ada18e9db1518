"""Load stills and video frames into one representation: 8-bit RGB with a timestamp.

Stills: JPEG, PNG, BMP, TIFF; 8 or 16 bit; grey, RGB or RGBA; EXIF orientation applied.
Video: anything OpenCV's FFmpeg backend reads; each frame keeps its index and timestamp.
Evidence files are only ever opened for reading.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from warnings import catch_warnings, simplefilter

import cv2
import numpy as np

from forensic_face.core.errors import ImageDecodeError, VideoDecodeError
from forensic_face.core.progress import Progress
from forensic_face.vision.imageheader import ImageHeader, read_image_header

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
#: Refuse video whose frames are larger than this many pixels (8K UHD, 7680 x 4320: 100 MB per
#: decoded RGB frame), checked on the container's frame size before any frame is decoded.
MAX_VIDEO_PIXELS = 7680 * 4320
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".webm"}

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


@dataclass(frozen=True)
class VideoInfo:
    """What a video container says about itself."""

    path: str
    fps: float
    frame_count: int
    width: int
    height: int

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps if self.fps > 0 else 0.0


def _open_video(path: str | Path) -> cv2.VideoCapture:
    p = Path(path)
    if not p.is_file():
        raise VideoDecodeError(f"{p}: no such file")
    cap = cv2.VideoCapture(str(p))
    if not cap.isOpened():
        raise VideoDecodeError(f"{p}: cannot be opened as video (unknown container or codec)")
    return cap


def video_info(path: str | Path) -> VideoInfo:
    """Frame rate, frame count and size of a video file."""
    cap = _open_video(path)
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS)) or 0.0
        info = VideoInfo(
            path=str(path),
            fps=fps if fps > 0 and np.isfinite(fps) else 25.0,
            frame_count=int(cap.get(cv2.CAP_PROP_FRAME_COUNT)),
            width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
    finally:
        cap.release()
    return info


def check_video_frame_size(width: int, height: int, source: str | Path) -> None:
    """Refuse video frames over :data:`MAX_VIDEO_PIXELS` with a :class:`VideoDecodeError` that says what to do."""
    if width * height > MAX_VIDEO_PIXELS:
        raise VideoDecodeError(
            f"{source}: frames of {width}x{height} pixels ({width * height / 1e6:.0f} MP) are over the "
            f"{MAX_VIDEO_PIXELS / 1e6:.0f} MP (8K UHD) limit; add a downscaled copy instead "
            "(e.g. ffmpeg -i IN -vf scale=-2:2160 OUT.mp4)"
        )


def iter_video_frames(
    path: str | Path, *, step: int = 1, max_frames: int | None = None, progress: Progress | None = None
) -> Iterator[Frame]:
    """Yield every ``step``-th frame of a video as a :class:`Frame` with its index and timestamp.

    Timestamps come from the container when it gives them, else from index / fps. The frame size
    the container declares is checked (:func:`check_video_frame_size`) before any frame is decoded,
    and the first decoded frame again (a container may not declare it).
    """
    info = video_info(path)
    check_video_frame_size(info.width, info.height, path)
    cap = _open_video(path)
    total = info.frame_count if info.frame_count > 0 else 0
    yielded = 0
    index = 0
    try:
        while True:
            if progress is not None:
                progress.update(min(index, total), total or index + 1, "reading frames")
            ok = cap.grab()
            if not ok:
                break
            if index % step == 0:
                ok, bgr = cap.retrieve()
                if not ok or bgr is None:
                    break
                if yielded == 0:
                    check_video_frame_size(bgr.shape[1], bgr.shape[0], path)
                pos_ms = cap.get(cv2.CAP_PROP_POS_MSEC)
                ts = index / info.fps
                if pos_ms and pos_ms > 0 and abs(pos_ms / 1000.0 - ts) < 5.0:
                    ts = pos_ms / 1000.0
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                yield Frame(image=rgb, source=str(path), index=index, timestamp_s=ts, meta={"format": "video"})
                yielded += 1
                if max_frames is not None and yielded >= max_frames:
                    break
            index += 1
    finally:
        cap.release()
    if index == 0:
        raise VideoDecodeError(f"{path}: the video contains no decodable frames")


def read_video_frame(path: str | Path, index: int) -> Frame:
    """Decode one frame by index, reading forward from the start (exact on inter-coded video)."""
    for frame in iter_video_frames(path):
        if frame.index == index:
            return frame
    raise VideoDecodeError(f"{path}: frame {index} is past the end of the video")


def is_video_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES
