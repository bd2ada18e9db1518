import cv2
import numpy as np

from forensic_face.core.progress import Progress
from forensic_face.vision.select import select_best_frames


def _clip(path, frame_640, sharp_at=(12, 30), n=40, fps=10.0):
    """A clip where the face is heavily blurred except at the frames in ``sharp_at``."""
    small = cv2.resize(frame_640, (320, 240), interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (320, 240))
    for i in range(n):
        img = small if i in sharp_at else cv2.GaussianBlur(small, (0, 0), 4 + (i % 3))
        writer.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    writer.release()


def test_picks_the_sharp_frames_with_a_face(tmp_path, detector, frame_640):
    path = tmp_path / "cctv.avi"
    _clip(path, frame_640)
    calls = []
    sel = select_best_frames(path, detector, k=2, progress=Progress(lambda d, t, m: calls.append((d, t, m))))
    assert len(sel.sharpness) == 40 and np.allclose(sel.timestamps_s, np.arange(40) / 10.0, atol=1e-3)
    assert sorted(r.frame.index for r in sel.best) == [12, 30]
    assert all(r.face.width > 20 for r in sel.best)
    assert calls and calls[-1][0] == calls[-1][1]  # progress reached the end


def test_cancel_stops_the_scan(tmp_path, detector, frame_640):
    import pytest

    from forensic_face.core.errors import CancelledError

    path = tmp_path / "cctv.avi"
    _clip(path, frame_640)
    progress = Progress()
    progress.token.cancel()
    with pytest.raises(CancelledError):
        select_best_frames(path, detector, progress=progress)
