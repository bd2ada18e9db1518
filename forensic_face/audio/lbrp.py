"""Local Radon Binary Pattern (LBRP) of the log-mel spectrogram, one vector per video frame.

For each timestamp a ``window_s`` (1 s) patch of the log-mel spectrogram centred on it is taken
as a square image (``patch`` mel bands x ``patch`` time columns: the STFT hop is chosen so that
the window spans exactly ``patch`` columns). Its Radon transform over 0..179 degrees (1 degree
step) is a sinogram whose rows are directions: energy moving up or down in frequency (rising or
falling pitch and formants) and onsets show as ridges at particular angles. Uniform local binary
patterns (8 neighbours, radius 1) over the sinogram, histogrammed on a grid of angle x offset
blocks, give the descriptor.

Everything is batched: the log-mel is computed once per clip, the Radon transform of all patches
is one matrix product with a cached projection matrix, and the LBP codes and block histograms are
whole-array numpy operations over (frames, angles, offsets).

Choices (and why):

- **Radon matrix**: pixel-driven; each pixel inside the inscribed circle adds its value to the
  two detector bins around its projection, with linear weights. Same geometry as
  ``skimage.transform.radon(circle=True)`` (rotation centre at pixel (N // 2, N // 2), N
  detector bins), checked against it in the tests.
- **Patch mean removed** (over the circle) so that the sinogram shows structure, not level.
- **LBP neighbours**: the 8 pixels of the 3 x 3 neighbourhood (Ojala's original LBP_{8,1});
  skimage interpolates the diagonals onto a circle instead, which changes little for histograms
  and costs more. Bit k is set when neighbour k >= centre; neighbours in circular order.
- **Edges**: the angle axis is periodic with a mirror (the projection at theta + 180 degrees is
  the one at theta reversed along the offset axis), so rows 0 and 179 get exact neighbours;
  along the offset axis codes are computed for the interior bins 1..N-2 only (no padding).
- **Mapping**: ``nri_uniform`` (default; 58 uniform patterns + 1 bin for the rest = 59 bins).
  Not rotation invariant on purpose: which way a local edge in the sinogram faces is part of
  the direction of pitch movement. ``riu2`` (10 bins) is available for a smaller vector.
- **Normalisation**: each block histogram is divided by its pixel count (L1), the concatenation
  is L2-normalised, so cosine similarity is a dot product.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import scipy.fft as sfft

_EPS = 1e-10


@dataclass(frozen=True)
class LBRPConfig:
    """Parameters of the LBRP descriptor; ``dim`` is the length of the resulting vector."""

    window_s: float = 1.0  # patch length in time, centred on the timestamp, s
    patch: int = 32  # patch side in pixels: mel bands = time columns = detector bins
    n_fft: int = 1024  # STFT size for the mel spectrogram (64 ms at 16 kHz: resolves harmonics)
    fmin: float = 80.0  # lowest mel band edge, Hz (speech band)
    fmax: float = 4000.0  # highest mel band edge, Hz
    top_db: float = 80.0  # log-mel floor, dB below the clip's maximum; also the padding value
    n_angles: int = 180  # projection angles 0, 1, ..., n_angles - 1 degrees
    angle_blocks: int = 6  # histogram grid rows along the angle axis (30 degrees each by default)
    offset_blocks: int = 2  # histogram grid columns along the detector-offset axis
    mapping: Literal["nri_uniform", "riu2"] = "nri_uniform"  # 59-bin or 10-bin uniform LBP

    def __post_init__(self) -> None:
        if self.n_angles != 180:
            # the LBP's angle axis wraps from 179 to 0 degrees with a mirror (see _angle_wrapped)
            raise ValueError(f"LBRP needs the full 0..179 degree sinogram (n_angles=180), got {self.n_angles}")
        if self.patch < 4 or self.mapping not in ("nri_uniform", "riu2"):
            raise ValueError(f"invalid LBRP configuration: patch={self.patch}, mapping={self.mapping!r}")

    @property
    def n_bins(self) -> int:
        """Histogram bins per block."""
        return 59 if self.mapping == "nri_uniform" else 10

    @property
    def dim(self) -> int:
        """Length of one LBRP vector."""
        return self.angle_blocks * self.offset_blocks * self.n_bins

    def hop(self, sr: int) -> int:
        """STFT hop in samples so that ``window_s`` spans ``patch`` columns."""
        return max(1, int(round(self.window_s * sr / self.patch)))


# ----------------------------------------------------------------------------- log-mel


@lru_cache(maxsize=8)
def _mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    import librosa  # only for the filter bank; cached, so imported once

    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax).astype(np.float32)


def log_mel(samples: np.ndarray, sr: int, config: LBRPConfig = LBRPConfig()) -> np.ndarray:
    """Log-mel spectrogram in dB, shape (patch, frames), column j centred at j * hop / sr seconds.

    Power spectrum (Hann window, zero padded at the edges) through a Slaney mel filter bank,
    10*log10, floored at ``top_db`` below the maximum. float32.
    """
    x = np.asarray(samples, dtype=np.float32)
    hop, n_fft = config.hop(sr), config.n_fft
    n_frames = x.size // hop + 1
    padded = np.zeros(n_fft // 2 + n_frames * hop + n_fft, dtype=np.float32)
    padded[n_fft // 2 : n_fft // 2 + x.size] = x
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[: n_frames * hop : hop]
    spec = sfft.rfft(frames * np.hanning(n_fft + 1)[:-1].astype(np.float32), axis=1)
    power = spec.real**2 + spec.imag**2  # (frames, bins)
    mel = _mel_basis(sr, n_fft, config.patch, config.fmin, min(config.fmax, sr / 2)) @ power.T
    db = 10.0 * np.log10(np.maximum(mel, _EPS))
    return np.maximum(db, db.max() - config.top_db).astype(np.float32)


# ----------------------------------------------------------------------------- Radon


@lru_cache(maxsize=4)
def circle_mask(size: int) -> np.ndarray:
    """Bool (size, size): pixels inside the inscribed circle, as skimage's ``radon(circle=True)``."""
    rows, cols = np.ogrid[:size, :size]
    centre = size // 2
    return (rows - centre) ** 2 + (cols - centre) ** 2 <= (size // 2) ** 2


@lru_cache(maxsize=4)
def radon_matrix(size: int, n_angles: int = 180) -> np.ndarray:
    """Projection matrix (n_angles * size, pixels inside the circle), float32, read-only.

    ``(R @ image[circle_mask(size)]).reshape(n_angles, size)`` is the sinogram (angle, offset)
    of a square image, i.e. ``skimage.transform.radon(image, np.arange(n_angles)).T`` up to
    interpolation differences. Angle a is a degrees; offset bin b is at s = b - size // 2 along
    the detector, where a pixel at column offset u and row offset v projects to
    s = u cos(a) - v sin(a).
    """
    mask = circle_mask(size)
    rows, cols = np.nonzero(mask)
    centre = size // 2
    theta = np.deg2rad(np.arange(n_angles))[:, None]
    pos = (cols - centre)[None, :] * np.cos(theta) - (rows - centre)[None, :] * np.sin(theta) + centre
    lower = np.floor(pos).astype(np.int64)
    frac = pos - lower  # (angles, pixels)
    n_pix = rows.size
    matrix = np.zeros((n_angles * size, n_pix), dtype=np.float64)
    pixel = np.broadcast_to(np.arange(n_pix), pos.shape)
    angle_row = np.broadcast_to(np.arange(n_angles)[:, None] * size, pos.shape)
    for bins, weight in ((lower, 1.0 - frac), (lower + 1, frac)):
        ok = (bins >= 0) & (bins < size)
        np.add.at(matrix, ((angle_row + bins)[ok], pixel[ok]), weight[ok])
    out = matrix.astype(np.float32)
    out.setflags(write=False)
    return out


def patches(
    db: np.ndarray, sr: int, timestamps_s: np.ndarray, config: LBRPConfig = LBRPConfig()
) -> np.ndarray:
    """Square log-mel patches centred on each timestamp, shape (n, patch, patch) float32 (row = mel band).

    Patch column ``patch // 2`` is the spectrogram column nearest the timestamp. Columns before
    the start or after the end of the clip are filled with the floor value (silence).
    """
    size = config.patch
    hop = config.hop(sr)
    ts = np.atleast_1d(np.asarray(timestamps_s, dtype=np.float64))
    centre = np.rint(ts * sr / hop).astype(np.int64)
    # Beyond one patch outside the clip every column is padding: clamp, so far-off timestamps
    # cost no memory and give the same (silent) patch.
    centre = np.clip(centre, -size, db.shape[1] + size)
    pad = size + 1
    lo = int(min(0, centre.min() - size // 2)) if ts.size else 0
    hi = int(max(db.shape[1], centre.max() + size)) if ts.size else db.shape[1]
    left, right = pad - lo, pad + hi - db.shape[1]
    padded = np.pad(db, ((0, 0), (left, right)), constant_values=db.min() if db.size else 0.0)
    windows = np.lib.stride_tricks.sliding_window_view(padded, size, axis=1)  # (mels, cols, size)
    return np.ascontiguousarray(windows[:, centre - size // 2 + left].transpose(1, 0, 2))


def sinograms(images: np.ndarray, n_angles: int = 180) -> np.ndarray:
    """Radon transform of square images (n, N, N) after removing each one's mean over the circle.

    Returns float32 (n, n_angles, N): axis 1 angle in degrees, axis 2 detector offset bin.
    """
    n, size = images.shape[0], images.shape[1]
    mask = circle_mask(size)
    inside = images[:, mask]  # (n, pixels)
    # Mean in float64: a constant patch (silence, padding) then becomes exactly zero. A float32 mean
    # leaves a rounding residue whose sinogram, and so its LBP codes, changed with the batch size.
    inside = (inside - inside.mean(axis=1, keepdims=True, dtype=np.float64)).astype(np.float32)
    return (inside @ radon_matrix(size, n_angles).T).reshape(n, n_angles, size)


# ----------------------------------------------------------------------------- LBP

#: (row, column) offsets of the 8 neighbours in circular order, starting at the right (as skimage).
_NEIGHBOURS = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1))


def _transitions(code: int) -> int:
    bits = [(code >> k) & 1 for k in range(8)]
    return sum(bits[k] != bits[(k + 1) % 8] for k in range(8))


@lru_cache(maxsize=2)
def uniform_lut(mapping: str) -> np.ndarray:
    """Lookup table code (0..255) -> histogram bin, uint8.

    ``nri_uniform``: the 58 patterns with at most 2 circular 0/1 transitions get bins 0..57 in
    code order, all others bin 58. ``riu2``: uniform patterns map to their number of ones (0..8),
    the rest to 9.
    """
    lut = np.empty(256, dtype=np.uint8)
    uniform = [c for c in range(256) if _transitions(c) <= 2]
    for code in range(256):
        if mapping == "nri_uniform":
            lut[code] = uniform.index(code) if code in uniform else 58
        elif mapping == "riu2":
            lut[code] = bin(code).count("1") if code in uniform else 9
        else:
            raise ValueError(f"unknown LBP mapping {mapping!r}; use 'nri_uniform' or 'riu2'")
    return lut


def _angle_wrapped(sino: np.ndarray) -> np.ndarray:
    """Sinograms (n, A, D) with one extra angle row on each side, flattened: (n, (A + 2) * D + 2).

    Row -1 is row A - 1 and row A is row 0, each mirrored along the offset axis (the projection
    at theta + 180 deg is the one at theta reversed about bin D // 2). One zero at each end lets
    the corner neighbours of the first and last bins index inside the buffer.
    """
    n, n_angles, size = sino.shape
    if size % 2:  # odd D: bin b <- bin D - 1 - b, a plain reversal
        mirrored = sino[..., ::-1]
    else:  # even D: the centre is bin D // 2, so bin b <- bin D - b (bin D is outside: 0)
        mirrored = np.zeros_like(sino)
        mirrored[..., 1:] = sino[..., ::-1][..., : size - 1]
    flat = np.zeros((n, (n_angles + 2) * size + 2), dtype=sino.dtype)
    body = flat[:, 1:-1].reshape(n, n_angles + 2, size)
    body[:, 0] = mirrored[:, -1]
    body[:, 1:-1] = sino
    body[:, -1] = mirrored[:, 0]
    return flat


def lbp_codes(sino: np.ndarray) -> np.ndarray:
    """8-neighbour LBP codes of sinograms (n, A, D) -> uint8 (n, A, D - 2) (a view).

    The angle axis wraps with a mirror (see :func:`_angle_wrapped`); offset bins 0 and D - 1 only
    serve as neighbours. Comparisons run on the flattened (angle, offset) plane, so each is one
    long contiguous ufunc loop; the codes of the two border columns, which mix rows, are dropped.
    """
    n, n_angles, size = sino.shape
    flat = _angle_wrapped(sino)
    start, length = 1 + size, n_angles * size
    centre = flat[:, start : start + length]
    codes = np.zeros((n, length), dtype=np.uint8)
    ge = np.empty((n, length), dtype=bool)
    shifted = np.empty((n, length), dtype=np.uint8)
    for bit, (dr, dc) in enumerate(_NEIGHBOURS):
        off = start + dr * size + dc
        np.greater_equal(flat[:, off : off + length], centre, out=ge)
        np.left_shift(ge.view(np.uint8), np.uint8(bit), out=shifted)
        np.bitwise_or(codes, shifted, out=codes)
    return codes.reshape(n, n_angles, size)[:, :, 1:-1]


@lru_cache(maxsize=8)
def _block_index(n_rows: int, n_cols: int, row_blocks: int, col_blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """Block id per (row, col) position (int64, (n_rows, n_cols)) and pixel count per block."""
    rows = np.minimum(np.arange(n_rows) * row_blocks // n_rows, row_blocks - 1)
    cols = np.minimum(np.arange(n_cols) * col_blocks // n_cols, col_blocks - 1)
    block = rows[:, None] * col_blocks + cols[None, :]
    return block, np.bincount(block.ravel(), minlength=row_blocks * col_blocks)


def block_histograms(codes: np.ndarray, config: LBRPConfig = LBRPConfig()) -> np.ndarray:
    """Per-block L1-normalised histograms of LBP codes (n, A, D') concatenated: float32 (n, dim)."""
    n = codes.shape[0]
    n_blocks, n_bins = config.angle_blocks * config.offset_blocks, config.n_bins
    block, counts = _block_index(codes.shape[1], codes.shape[2], config.angle_blocks, config.offset_blocks)
    # int32 slots (n * dim stays far below 2**31): half the memory traffic of int64.
    slot = uniform_lut(config.mapping).astype(np.int32)[codes]
    slot += (block * n_bins).astype(np.int32)[None]
    slot += (np.arange(n, dtype=np.int32) * (n_blocks * n_bins))[:, None, None]
    hist = np.bincount(slot.ravel(), minlength=n * n_blocks * n_bins).reshape(n, n_blocks, n_bins)
    return (hist / counts[None, :, None]).reshape(n, -1).astype(np.float32)


# ----------------------------------------------------------------------------- public


def lbrp_from_patches(images: np.ndarray, config: LBRPConfig = LBRPConfig()) -> np.ndarray:
    """LBRP vectors of square patches (n, patch, patch) -> float32 (n, config.dim), unit L2 norm."""
    if images.shape[0] == 0:
        return np.zeros((0, config.dim), dtype=np.float32)
    hist = block_histograms(lbp_codes(sinograms(images, config.n_angles)), config)
    return hist / np.maximum(np.linalg.norm(hist, axis=1, keepdims=True), _EPS)


def lbrp_features(
    samples: np.ndarray, sr: int, timestamps_s: np.ndarray, config: LBRPConfig = LBRPConfig()
) -> np.ndarray:
    """LBRP vector for a ``config.window_s`` window centred on each timestamp.

    samples: float (n,) at ``sr`` Hz (16 kHz expected). timestamps_s: (n_frames,) seconds; any
    value is allowed, windows reaching past either end are padded with silence. Returns float32
    (n_frames, config.dim), each row with unit L2 norm.
    """
    db = log_mel(samples, sr, config)
    return lbrp_from_patches(patches(db, sr, timestamps_s, config), config)
