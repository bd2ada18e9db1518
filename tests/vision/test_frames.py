import hashlib

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from forensic_face.core.errors import ImageDecodeError, VideoDecodeError
from forensic_face.vision.frames import iter_video_frames, load_image, video_info


def _asym(h=40, w=60) -> np.ndarray:
    """An RGB image whose every orientation is distinguishable (a gradient and a marked corner)."""
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    img[..., 1] = np.linspace(0, 255, h, dtype=np.uint8)[:, None]
    img[:8, :8, 2] = 255
    return img


@pytest.mark.parametrize(
    "name,array,expected",
    [
        ("grey8.png", np.full((20, 30), 77, np.uint8), (77, 77, 77)),
        ("grey16.png", np.full((20, 30), 32896, np.uint16), (128, 128, 128)),
        ("rgb16.tif", np.dstack([np.full((20, 30), v, np.uint16) for v in (65535, 0, 257 * 10)]), (10, 0, 255)),
        ("bgra.png", np.dstack([np.full((20, 30), v, np.uint8) for v in (1, 2, 3, 4)]), (3, 2, 1)),
        ("bgr.bmp", np.dstack([np.full((20, 30), v, np.uint8) for v in (10, 20, 30)]), (30, 20, 10)),
    ],
)
def test_formats_and_depths_become_rgb8(tmp_path, name, array, expected):
    # arrays are written with OpenCV, so 3/4-channel inputs are in BGR(A) order
    path = tmp_path / name
    assert cv2.imwrite(str(path), array)
    frame = load_image(path)
    assert frame.image.dtype == np.uint8 and frame.image.shape == (20, 30, 3)
    assert tuple(int(v) for v in frame.image[5, 5]) == expected
    assert frame.meta["bit_depth"] == (16 if array.dtype == np.uint16 else 8)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, orientation):
    path = tmp_path / f"o{orientation}.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(_asym()).save(path, quality=95, exif=exif)
    frame = load_image(path)
    with Image.open(path) as im:
        want = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert frame.image.shape == want.shape
    assert np.abs(frame.image.astype(int) - want.astype(int)).max() <= 2
    assert frame.meta["exif_orientation"] == orientation


def test_corrupt_inputs_get_specific_errors(tmp_path, face_rgb):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageDecodeError, match="empty"):
        load_image(empty)
    junk = tmp_path / "junk.png"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(ImageDecodeError, match="not a JPEG, PNG, BMP or TIFF"):
        load_image(junk)
    ok, buf = cv2.imencode(".jpg", face_rgb)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(buf.tobytes()[: len(buf) // 2])
    with pytest.raises(ImageDecodeError, match="corrupt or truncated"):
        load_image(truncated)
    with pytest.raises(ImageDecodeError, match="no such file"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageDecodeError, match="folder"):
        load_image(tmp_path)


def test_extension_mismatch_is_recorded_and_file_untouched(tmp_path, face_rgb):
    path = tmp_path / "really_a_png.jpg"
    assert cv2.imwrite(str(path.with_suffix(".png")), face_rgb)
    path.with_suffix(".png").rename(path)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    frame = load_image(path)
    assert frame.meta["format"] == "png"
    assert any("content is PNG" in w for w in frame.meta["warnings"])
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def _write_video(path, frames, fps=10.0):
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()


def test_video_frames_have_indices_and_timestamps(tmp_path):
    frames = [np.full((48, 64, 3), 10 * i, np.uint8) for i in range(20)]
    path = tmp_path / "clip.avi"
    _write_video(path, frames, fps=10.0)
    info = video_info(path)
    assert info.frame_count == 20 and abs(info.fps - 10.0) < 1e-6 and (info.width, info.height) == (64, 48)
    got = list(iter_video_frames(path))
    assert [f.index for f in got] == list(range(20))
    assert np.allclose([f.timestamp_s for f in got], np.arange(20) / 10.0, atol=1e-3)
    assert abs(int(got[7].image.mean()) - 70) <= 3
    assert [f.index for f in iter_video_frames(path, step=5)] == [0, 5, 10, 15]


def test_unreadable_video_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    with pytest.raises(VideoDecodeError):
        list(iter_video_frames(bad))
    with pytest.raises(VideoDecodeError, match="no such file"):
        video_info(tmp_path / "nope.mp4")


def test_a_box_turns_with_its_frame() -> None:
    """turn_box puts a box where rotate_image puts its pixels, for every quarter turn."""
    from forensic_face.vision.frames import rotate_image, turn_box

    frame = np.zeros((48, 64), np.uint8)
    frame[10:20, 30:50] = 255  # a box (30, 10, 50, 20)
    for degrees in (0, 90, 180, 270):
        turned = rotate_image(frame, degrees)
        ys, xs = np.nonzero(turned)
        assert turn_box((30, 10, 50, 20), degrees, 64, 48) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    with pytest.raises(ValueError, match="0, 90, 180 or 270"):
        turn_box((0, 0, 1, 1), 45, 64, 48)
