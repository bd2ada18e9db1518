"""Figures shared by the PDF report and the desktop application (matplotlib, no pyplot, no Qt).

Each ``draw_*`` function draws into axes the caller owns, so the GUI can put them on a Qt canvas
and the report can render them to PNG with :func:`figure_png`. The data behind the audio panel
(:func:`audio_view`) is computed once, off the GUI thread.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

#: Spectrogram frequency range shown (Hz): the voice band that pitch and LBRP look at.
SPEC_FMIN, SPEC_FMAX = 50.0, 4000.0


@dataclass(frozen=True)
class AudioView:
    """What the audio panel shows for one clip."""

    duration_s: float
    sr: int
    wave_t: np.ndarray  # envelope time axis, s
    wave_min: np.ndarray  # per-column min / max of the samples (a drawable waveform of any length)
    wave_max: np.ndarray
    spec_t: np.ndarray  # spectrogram frame centres, s
    spec_f: np.ndarray  # frequency of each row, Hz (SPEC_FMIN..SPEC_FMAX)
    spec_db: np.ndarray  # (rows, frames) power in dB relative to the clip's maximum
    f0_t: np.ndarray  # pitch track time axis (10 ms), s
    f0_hz: np.ndarray  # NaN where unvoiced
    warnings: tuple[str, ...] = ()
    offset_s: float = 0.0  # where the part shown starts in the recording, s (all time axes include it)
    file_duration_s: float | None = None  # length of the whole recording, s; None: same as duration_s

    @property
    def end_s(self) -> float:
        """Where the part shown ends in the recording, s."""
        return self.offset_s + self.duration_s


def audio_view(samples: np.ndarray, sr: int, warnings: tuple[str, ...] = (), columns: int = 2000, *,
               offset_s: float = 0.0, file_duration_s: float | None = None) -> AudioView:
    """Waveform envelope, spectrogram (25 ms Hann, 10 ms hop) and YIN pitch track of a mono clip.

    ``offset_s``: where ``samples`` start in the recording (a window of a long one), added to every
    time axis so that they are in the recording's time.
    """
    from forensic_face.audio.prosody import prosody_track

    x = np.asarray(samples, np.float32)
    n = x.size
    cols = max(1, min(columns, n))
    edges = np.linspace(0, n, cols + 1).astype(np.int64)
    wmin = np.minimum.reduceat(x, edges[:-1]) if n else np.zeros(1, np.float32)
    wmax = np.maximum.reduceat(x, edges[:-1]) if n else np.zeros(1, np.float32)
    win, hop = int(0.025 * sr), int(0.010 * sr)
    nfft = 1 << int(np.ceil(np.log2(max(win, 2))))
    pad = np.pad(x, (win // 2, win // 2))
    frames = max(1, 1 + (pad.size - win) // hop)
    idx = np.arange(win)[None, :] + hop * np.arange(frames)[:, None]
    seg = pad[np.minimum(idx, pad.size - 1)] * np.hanning(win).astype(np.float32)
    power = np.abs(np.fft.rfft(seg, nfft, axis=1)).T ** 2
    freqs = np.fft.rfftfreq(nfft, 1.0 / sr)
    keep = (freqs >= SPEC_FMIN) & (freqs <= min(SPEC_FMAX, sr / 2))
    db = 10 * np.log10(power[keep] + 1e-12)
    db -= db.max() if db.size else 0.0
    track = prosody_track(x, sr)
    f0 = np.where(track.voiced, track.f0_hz, np.nan)
    return AudioView(duration_s=n / sr, sr=sr, wave_t=offset_s + edges[:-1] / sr, wave_min=wmin, wave_max=wmax,
                     spec_t=offset_s + np.arange(frames) * hop / sr, spec_f=freqs[keep],
                     spec_db=db.astype(np.float32), f0_t=offset_s + track.times_s, f0_hz=f0,
                     warnings=tuple(warnings), offset_s=offset_s, file_duration_s=file_duration_s)


def audio_panel_data(path, t: float | None = None, *, with_view: bool = True, with_lbrp: bool = True,
                     span_s: float | None = None) -> tuple[AudioView | None, float, np.ndarray | None]:
    """One decode of an audio file for its panel: (AudioView or None, window time, LBRP there or None).

    ``t`` (s) None puts the window mid-recording; it is clamped to the recording. A recording longer
    than ``span_s`` (default: the analysis span, 60 s) is decoded only as a window of that length
    around ``t`` (the window the analysis reads, so the LBRP is the analysed one); the view then shows
    that window, in the recording's time, with a note among its warnings. Raises the loader's errors.
    """
    from forensic_face.audio.features import AudioFeatureExtractor
    from forensic_face.audio.info import ANALYSIS_SPAN_S, audio_info

    ext = AudioFeatureExtractor()
    around = audio_info(path).duration_s / 2 if t is None else t
    clip = ext.load(path, around_s=around, span_s=ANALYSIS_SPAN_S if span_s is None else span_s)
    total = clip.file_duration_s if clip.file_duration_s is not None else clip.duration_s
    t = float(min(max(total / 2 if t is None else t, 0.0), total))
    view = audio_view(clip.samples, clip.sr, clip.warnings, offset_s=clip.offset_s,
                      file_duration_s=total) if with_view else None
    return view, t, ext(clip, np.array([t])).lbrp[0] if with_lbrp else None


def draw_frame(ax, image: np.ndarray, box=None, landmarks=None, title: str = "", label: str = "") -> None:
    """The frame with the face box (and its label) and the five landmarks."""
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
    if box is not None:
        from matplotlib.patches import Rectangle

        x0, y0, x1, y1 = box
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="lime", linewidth=1.5))
        if label:
            ax.text(x0, y0 - 4, label, color="lime", fontsize=7, va="bottom")
    if landmarks is not None and len(landmarks):
        pts = np.asarray(landmarks, float)
        ax.plot(pts[:, 0], pts[:, 1], "o", color="red", markersize=2.5)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def draw_face(ax, image: np.ndarray, title: str = "", generated: bool = False) -> None:
    """A face crop at its pixels; ``generated`` marks it as a model's output (:func:`watermark`)."""
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    if generated:
        watermark(ax)


def watermark(ax, text: str = "generated", fontsize: float = 15) -> None:
    """``text`` across the axes, diagonal and translucent, on the image itself (a crop of it keeps it)."""
    from matplotlib import patheffects

    ax.text(0.5, 0.5, text, transform=ax.transAxes, rotation=35, ha="center", va="center", fontsize=fontsize,
            fontweight="bold", color="white", alpha=0.6, zorder=5,
            path_effects=[patheffects.withStroke(linewidth=1.6, foreground="black", alpha=0.45)])


def draw_difference(ax, cax, diff: np.ndarray, title: str = "") -> None:
    """An absolute difference map in grey levels with its colour bar in ``cax`` (horizontal, below it). The
    scale runs to the map's maximum (at least 8 grey levels), so small differences show and read true."""
    d = np.asarray(diff)
    d = d.max(axis=2) if d.ndim == 3 else d
    top = max(8, int(np.ceil(float(d.max())))) if d.size else 8
    im = ax.imshow(d, cmap="gray", vmin=0, vmax=top, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    bar = ax.figure.colorbar(im, cax=cax, orientation="horizontal")
    bar.ax.tick_params(labelsize=6, length=2, pad=1)
    bar.set_label("grey levels", fontsize=6, labelpad=1)


def zoom_region(image: np.ndarray, box, factor: float = 2.2) -> tuple[np.ndarray, tuple[float, float]]:
    """The area around the face box (``factor`` × its size), clipped to the frame, and its offset."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * factor / 2
    a, b = int(max(0, cx - half)), int(max(0, cy - half))
    c, d = int(min(w, cx + half)), int(min(h, cy + half))
    if c <= a or d <= b:
        return image, (0.0, 0.0)
    return image[b:d, a:c], (float(a), float(b))


def draw_audio(ax_wave, ax_spec, view: AudioView, t: float | None = None, window_s: float = 1.0) -> None:
    """Waveform above, spectrogram with the pitch track below, the analysis window marked on both."""
    if ax_wave is not None:
        ax_wave.fill_between(view.wave_t, view.wave_min, view.wave_max, color="#1f4e79", linewidth=0)
        ax_wave.set_xlim(view.offset_s, view.end_s)
        ax_wave.set_ylim(-1, 1)
        ax_wave.set_ylabel("amplitude", fontsize=7)
        ax_wave.tick_params(labelsize=7, labelbottom=False)
    ax_spec.pcolormesh(view.spec_t, view.spec_f, view.spec_db, shading="auto", cmap="magma", vmin=-80, vmax=0,
                       rasterized=True)
    ax_spec.set_yscale("log")
    ax_spec.set_ylim(SPEC_FMIN, view.spec_f[-1] if view.spec_f.size else SPEC_FMAX)
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    ax_spec.yaxis.set_major_locator(FixedLocator([100, 200, 500, 1000, 2000, 4000]))
    ax_spec.yaxis.set_minor_locator(NullLocator())
    ax_spec.yaxis.set_major_formatter(ScalarFormatter())
    ax_spec.plot(view.f0_t, view.f0_hz, color="cyan", linewidth=1.0, label="pitch (YIN)")
    ax_spec.set_xlim(view.offset_s, view.end_s)
    ax_spec.set_xlabel("time (s)", fontsize=7)
    ax_spec.set_ylabel("frequency (Hz)", fontsize=7)
    ax_spec.tick_params(labelsize=7)
    if t is not None:
        for ax in (a for a in (ax_wave, ax_spec) if a is not None):
            ax.axvspan(t - window_s / 2, t + window_s / 2, color="#00e5ff", alpha=0.18, linewidth=0)
            ax.axvline(t, color="#00e5ff", linewidth=1.0)
    ax_spec.legend(loc="upper right", fontsize=6, framealpha=0.6)


def draw_lbrp(ax, vector: np.ndarray, blocks: int = 12) -> None:
    """The LBRP histogram vector, split into its angle/frequency blocks."""
    v = np.asarray(vector, float)
    ax.bar(np.arange(v.size), v, width=1.0, color="#2e7d32")
    step = v.size // blocks if blocks else 0
    for k in range(1, blocks):
        ax.axvline(k * step - 0.5, color="#999999", linewidth=0.4)
    ax.set_xlim(-0.5, v.size - 0.5)
    ax.set_xlabel(f"LBRP feature ({blocks} blocks of uniform-LBP histograms)", fontsize=7)
    ax.tick_params(labelsize=7)


def new_figure(width_in: float, height_in: float, dpi: int = 150):
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), dpi=dpi)


def figure_png(fig, dpi: int | None = None) -> bytes:
    """Render a matplotlib Figure (Agg, any thread) to PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi or fig.dpi)
    return buf.getvalue()
