"""Inference: the engine that runs the networks (inference.py) and the one probe path from a frame to an
aligned face, its reconstruction and its embedding (probe.py)."""
