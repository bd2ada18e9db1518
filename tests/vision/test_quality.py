import cv2
import numpy as np

from forensic_face.vision.degrade import degrade
from forensic_face.vision.quality import assess, noise_sigma, sharpness


def test_noise_estimate_tracks_added_noise(face_rgb):
    grey = cv2.cvtColor(face_rgb, cv2.COLOR_RGB2GRAY)
    base = noise_sigma(grey)
    rng = np.random.default_rng(0)
    for sigma in (5.0, 10.0, 20.0):
        noisy = np.clip(grey + rng.normal(0, sigma, grey.shape), 0, 255).astype(np.uint8)
        est = noise_sigma(noisy)
        assert abs(np.sqrt(max(est**2 - base**2, 0)) - sigma) < 0.25 * sigma


def test_blur_lowers_sharpness_and_hints_explain(face_rgb):
    grey = cv2.cvtColor(face_rgb, cv2.COLOR_RGB2GRAY)[100:260, 160:320]
    blurred = cv2.GaussianBlur(grey, (0, 0), 3)
    assert sharpness(blurred) < 0.2 * sharpness(grey)
    report = assess(degrade(grey, "severe", seed=0), face_px=18)
    text = " ".join(report.hints())
    assert "18 px" in text
    good = assess(grey, face_px=120)
    assert not any("px" in h for h in good.hints())


def _frame_with_face(face_rgb, face_px: int, detail_px: int | None = None, noise: float = 0.0) -> np.ndarray:
    """A 640x480 frame with the face ``face_px`` wide; with ``detail_px`` the face was that wide when the camera
    saved it and the frame was enlarged afterwards (as CCTV exports are)."""
    face = cv2.resize(face_rgb[60:300, 130:370], (face_px * 240 // 190, face_px * 240 // 190),
                      interpolation=cv2.INTER_AREA)
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[100:100 + face.shape[0], 200:200 + face.shape[1]] = face
    if detail_px is not None:
        small = cv2.resize(frame, None, fx=detail_px / face_px, fy=detail_px / face_px, interpolation=cv2.INTER_AREA)
        frame = cv2.resize(small, (640, 480), interpolation=cv2.INTER_CUBIC)
    rng = np.random.default_rng(0)
    return np.clip(frame + rng.normal(0, noise, frame.shape), 0, 255).astype(np.uint8)


def test_the_face_s_real_resolution_is_measured_not_its_width_after_enlarging(face_rgb, detector) -> None:
    """The demo's complaint: a face 56 px wide in the frame, enlarged from about 20 px, was reported as a sharp
    56 px face. Its detail width is measured on its region of the frame, unresampled."""
    from forensic_face.engine.probe import find_face

    sharp = find_face(_frame_with_face(face_rgb, 60), detector, 64).quality
    assert sharp.detail_px > 0.7 * sharp.face_px and not any("detail" in h for h in sharp.hints())
    for noise in (0.0, 5.0):
        enlarged = find_face(_frame_with_face(face_rgb, 60, detail_px=20, noise=noise), detector, 64).quality
        assert 14 <= enlarged.detail_px <= 30, (noise, enlarged.detail_px)
        (hint,) = [h for h in enlarged.hints() if "detail of about" in h]
        assert f"{enlarged.face_px:.0f} px wide in the frame" in hint and "largely lost" in hint


def test_roll_and_turn_from_landmarks_and_a_sideways_face_drawn_by_hand(face_rgb, detector) -> None:
    from forensic_face.engine.probe import find_face
    from forensic_face.vision.quality import pose_from_landmarks

    eyes_nose = np.array([[60, 50], [52, 50], [30, 50], [38, 50], [45, 70]], np.float32)  # upright, frontal
    assert pose_from_landmarks(eyes_nose) == (0.0, 0.0)
    theta = np.radians(30)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]], np.float32)
    roll, turn = pose_from_landmarks(eyes_nose @ rot.T)
    assert abs(roll - 30) < 1e-3 and abs(turn) < 1e-6
    upside_down, _ = pose_from_landmarks(eyes_nose * [1, -1])
    assert abs(abs(upside_down) - 180) < 1e-3
    _, turned = pose_from_landmarks(eyes_nose + np.array([[0, 0]] * 4 + [[15, 0]], np.float32))
    assert turned > 0.3
    # a face turned 90 degrees, boxed by hand: the analyst is told to rotate the frame
    frame = _frame_with_face(face_rgb, 90)
    x0, y0, x1, y1 = detector.detect_one(frame).box
    x0, y0, x1, y1 = x0 - 20, y0 - 20, x1 + 20, y1 + 25  # drawn by hand: looser than the detector's
    sideways = np.ascontiguousarray(np.rot90(frame, -1))  # the camera hung sideways: rotated clockwise
    h = frame.shape[0]
    q = find_face(sideways, detector, 64, box=(h - y1, x0, h - y0, x1)).quality  # the same box, turned
    assert q.roll_deg == 90 and any("turn the frame 90° counter-clockwise" in h for h in q.hints())
    assert not any("turn the frame" in h for h in find_face(frame, detector, 64, box=(x0, y0, x1, y1)).quality.hints())
