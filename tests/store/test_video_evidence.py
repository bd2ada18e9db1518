"""The video containers CCTV exports come in are accepted as evidence; bytes that only carry a video extension
are not. Every clip is encoded here with PyAV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from forensic_face.core.errors import EvidenceError
from forensic_face.store.case import Case
from forensic_face.vision.containers import VIDEO_SUFFIXES

#: file name -> (container format, video codec, audio codec, the format the case records)
CLIPS = {
    "cam.mp4": ("mp4", "libx264", "aac", "MP4/MOV"),
    "cam.mov": ("mov", "libx264", None, "MP4/MOV"),
    "cam.mkv": ("matroska", "libx264", "aac", "Matroska/WebM"),
    "cam.webm": ("webm", "libvpx", None, "Matroska/WebM"),
    "cam.avi": ("avi", "mpeg4", "pcm_s16le", "AVI"),
    "cam.mpg": ("vob", "mpeg2video", "mp2", "MPEG program stream"),  # MPEG-2 program stream
    "cam.mpeg": ("mpeg", "mpeg1video", "mp2", "MPEG program stream"),  # MPEG-1 system stream
    "cam.vob": ("vob", "mpeg2video", None, "MPEG program stream"),
    "cam.ts": ("mpegts", "libx264", "aac", "MPEG transport stream"),
    "cam.h264": ("h264", "libx264", None, "raw H.264"),
    "cam.wmv": ("asf", "wmv2", None, "ASF/WMV"),
}


@pytest.fixture()
def case(tmp_path: Path) -> Case:
    return Case.create(tmp_path / "case", "2026-118", "A. Analyst", "Car park")


def test_every_cctv_container_is_accepted_as_video(case, tmp_path, write_clip, moving_square):
    tone = (0.3 * np.sin(2 * np.pi * 440.0 * np.arange(16000) / 16000)).astype(np.float32)
    sources = [write_clip(tmp_path / name, fmt, vcodec, moving_square(25), audio=tone if acodec else None,
                          acodec=acodec) for name, (fmt, vcodec, acodec, _) in CLIPS.items()]
    items = case.add_evidence(sources)
    assert {item.original_name: (item.kind, item.format) for item in items} == \
        {name: ("video", recorded) for name, (*_, recorded) in CLIPS.items()}


@pytest.mark.parametrize("ext", sorted(VIDEO_SUFFIXES))
def test_random_bytes_with_a_video_extension_are_refused(case, tmp_path, ext):
    path = tmp_path / f"noise{ext}"
    path.write_bytes(np.random.default_rng(sorted(VIDEO_SUFFIXES).index(ext)).bytes(50_000))
    with pytest.raises(EvidenceError, match="not a recognised image, audio or video file"):
        case.add_evidence([path])
    assert case.evidence == []


def test_a_clip_under_a_still_image_extension_is_refused(case, tmp_path, write_clip, moving_square):
    clip = write_clip(tmp_path / "cam.jpg", "vob", "mpeg2video", moving_square(5))
    with pytest.raises(EvidenceError, match=r"content is MPEG program stream \(video\) but the extension is \.jpg"):
        case.add_evidence([clip])
