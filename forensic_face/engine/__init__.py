"""Inference: the engine that runs the networks (inference.py), the one probe path from a frame to an
aligned face, its reconstruction and its embedding (probe.py), and gallery search over any gallery store
(search.py)."""
