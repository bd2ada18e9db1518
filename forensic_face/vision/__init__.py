"""Frames, face detection, alignment, image quality and the CCTV degradation model. No Qt, no torch."""
