"""A recogniser that takes its own crop (SFace's five-point 112-px face) beside the autoencoder's: the evaluation
carries a reconstruction, made in the autoencoder's crop, into the recogniser's crop by the two alignments of the
same detection."""

from __future__ import annotations

import numpy as np

from forensic_face.training.evaluate import crop_to_crop
from forensic_face.vision.align import AlignSpec, align_face
from forensic_face.vision.frames import to_grey


def test_a_face_in_one_crop_is_carried_into_the_other(detector, frame_640: np.ndarray) -> None:
    """The autoencoder-style crop (eyes, 224 px, finer than the target) warped by crop_to_crop lands on the
    recogniser's crop made directly from the frame (112 px, five-point template); the crop as it is does not."""
    import cv2

    frame = to_grey(frame_640)
    det = detector.detect_one(frame)
    ae = align_face(frame, det, AlignSpec(size=224))
    rec = align_face(frame, det, AlignSpec(size=112, mode="arcface"))
    carried = cv2.warpAffine(ae.image, crop_to_crop(ae.matrix, rec.matrix), (112, 112), flags=cv2.INTER_CUBIC,
                             borderMode=cv2.BORDER_REPLICATE)
    inner = (slice(16, 96), slice(16, 96))  # the face; the edges of the two crops cover different parts of the frame
    error = np.abs(carried[inner].astype(float) - rec.image[inner]).mean()
    resized = cv2.resize(ae.image, (112, 112), interpolation=cv2.INTER_AREA)
    assert error < 4.0, error
    assert np.abs(resized[inner].astype(float) - rec.image[inner]).mean() > 4 * error
