"""Networks, calibration and the inference engine (no Qt)."""
