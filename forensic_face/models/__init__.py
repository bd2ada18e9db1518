"""Networks, their calibration and the bundle format they are stored in (no Qt; inference is forensic_face.engine)."""
