"""``forensic-face bench``: per-stage latency of the engine on this machine.

Figures are medians over ``repeats`` timed runs after one warm-up run ("warm": caches built,
numba compiled, model files loaded). Inputs are generated or shipped with the dependencies, so the
bench runs without ../shared/data:

* one 640x480 JPEG frame holding scikit-image's 'astronaut' photograph (face about 88 px wide):
  decode, then the probe path's face step: detect (dlib HOG + 5-point landmarks), align at the
  models' input size with the grey crop and its quality; then the reconstruction and embedding of
  that face;
* the same frame reduced so the face is about 22 px wide, which makes the detector upscale;
* 10 s of synthetic speech with noise as a 44.1 kHz stereo WAV: load (decode, downmix, resample to
  16 kHz), denoise, pitch/energy per frame, LBRP per frame, at ``fps`` frames per second.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from forensic_face import __version__


def _time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median wall time in ms over ``repeats`` runs after one warm-up, and the last result."""
    result = fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t) * 1000.0)
    return float(np.median(times)), result


#: The Gaussian blur (px) of the bench frame's blurred probe: a face whose share of a companion is its full one.
BLURRED_SIGMA = 4.0


def bench_canvas() -> np.ndarray:
    """The bench's 640x480 RGB frame: scikit-image's 'astronaut' on a grey background (face about 88 px)."""
    from skimage import data

    canvas = np.full((480, 640, 3), 90, np.uint8)
    canvas[:, 64:576] = cv2.resize(data.astronaut(), (512, 480), interpolation=cv2.INTER_AREA)
    return canvas


def bench_frame(repeats: int) -> dict[str, float]:
    """Per-stage latency (ms) for one 640x480 frame: decode, then the probe path's face step (detect;
    align at the models' input size, grey, quality)."""
    from forensic_face.engine.probe import face_at, locate, probe_size
    from forensic_face.vision.detect import FaceDetector
    from forensic_face.vision.frames import decode_image_bytes

    canvas = bench_canvas()
    jpeg = cv2.imencode(".jpg", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    t0 = time.perf_counter()
    detector = FaceDetector()
    load_ms = (time.perf_counter() - t0) * 1000.0
    size = probe_size()  # the installed models' input size, read without loading them
    decode_ms, frame = _time(lambda: decode_image_bytes(jpeg, suffix=".jpg"), repeats)
    detect_ms, face = _time(lambda: locate(frame.image, detector), repeats)
    align_ms, _ = _time(lambda: face_at(frame.image, face, size), repeats)
    small = cv2.resize(canvas, (160, 120), interpolation=cv2.INTER_AREA)
    small_ms, small_face = _time(lambda: locate(small, detector), max(3, repeats // 3))
    return {
        "detector_load_ms": load_ms,
        "decode_ms": decode_ms,
        "detect_ms": detect_ms,
        "align_ms": align_ms,
        "align_px": size,
        "detect_align_ms": detect_ms + align_ms,
        "face_px": face.width,
        "small_face_px": small_face.width,
        "small_face_detect_ms": small_ms,
        "small_face_method": small_face.method,
    }


def bench_audio(repeats: int, fps: float) -> dict[str, float]:
    """Per-stage latency (ms) for 10 s of audio with features at ``fps`` timestamps per second."""
    import soundfile as sf

    from forensic_face.audio.features import AudioFeatureExtractor
    from forensic_face.audio.synth import synth_speech

    seconds = 10.0
    speech = synth_speech(seconds, sr=44100, f0=125.0, seed=1)
    noisy = speech + np.random.default_rng(1).normal(0, 0.01, speech.shape)
    stereo = np.stack([noisy, 0.8 * noisy], axis=1).clip(-1, 1)
    t0 = time.perf_counter()
    extractor = AudioFeatureExtractor()
    init_ms = (time.perf_counter() - t0) * 1000.0
    timestamps = np.arange(0.0, seconds, 1.0 / fps)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        sf.write(str(path), stereo, 44100, subtype="PCM_16")
        load_ms, clip = _time(lambda: extractor.load(path), repeats)
    denoise_ms, clean = _time(lambda: extractor.clean(clip), repeats)
    prosody_ms, _ = _time(lambda: extractor.prosody(clean, clip.sr, timestamps), repeats)
    lbrp_ms, vec = _time(lambda: extractor.lbrp(clean, clip.sr, timestamps), repeats)
    return {
        "extractor_init_ms": init_ms,
        "load_ms": load_ms,
        "denoise_ms": denoise_ms,
        "prosody_ms": prosody_ms,
        "lbrp_ms": lbrp_ms,
        "features_ms": denoise_ms + prosody_ms + lbrp_ms,
        "total_ms": load_ms + denoise_ms + prosody_ms + lbrp_ms,
        "timestamps": int(timestamps.size),
        "lbrp_dim": int(vec.shape[1]),
    }


def bench_models(repeats: int) -> dict[str, float] | None:
    """Reconstruct + embed latency for the bench frame's face (the probe path's last steps, and each
    alone), and per face in a batch of 64, or None when no trained models are installed."""
    from forensic_face.engine.inference import FaceEngine
    from forensic_face.engine.probe import ProbePath
    from forensic_face.vision.detect import FaceDetector

    if not FaceEngine.available():
        return None
    t0 = time.perf_counter()
    engine = FaceEngine()
    load_ms = (time.perf_counter() - t0) * 1000.0
    path = ProbePath(engine, FaceDetector())
    probe_face = path.face(bench_canvas())
    face = probe_face.grey[None]  # (1, S, S)
    audio = np.random.default_rng(0).random((1, engine.audio_dim)).astype(np.float32)
    recon_ms, recon = _time(lambda: engine.reconstruct(face, audio), repeats)
    embed_ms, _ = _time(lambda: path.embed_probes([probe_face], recon), repeats)
    both_ms, _ = _time(lambda: path.complete(probe_face, audio, without_audio=False), repeats)
    faces = [probe_face] * 64
    batch = np.repeat(face, 64, axis=0)
    batch_audio = np.repeat(audio, 64, axis=0)
    batch_ms, _ = _time(lambda: path.embed_probes(faces, engine.reconstruct(batch, batch_audio)),
                        max(3, repeats // 3))
    joined = {}
    if engine.companion is not None:  # a sharp probe is the recogniser's alone: time a blurred one too
        soft = path.face(cv2.GaussianBlur(bench_canvas(), (0, 0), BLURRED_SIGMA))
        soft_ms, _ = _time(lambda: path.complete(soft, audio, without_audio=False), repeats)
        joined = {"companion_share_sharp": float(engine.companion.probe_weights(probe_face.quality.sharpness)[0]),
                  "companion_share_blurred": float(engine.companion.probe_weights(soft.quality.sharpness)[0]),
                  "reconstruct_embed_blurred_ms": soft_ms}
        if engine.sharp is not None:  # SFace as published's share of the recogniser side, each probe
            joined |= {"sharp_share_sharp": float(engine.sharp.probe_shares(probe_face.quality.sharpness)[0]),
                       "sharp_share_blurred": float(engine.sharp.probe_shares(soft.quality.sharpness)[0])}
    return joined | {"model_version": engine.info.version, "device": engine.info.device,
            "precision": engine.info.params["precision"], "load_ms": load_ms,
            "input_px": engine.size, "recogniser_px": engine.rec_size, "recogniser_embeds": engine.embeds,
            "mirror_averaged": engine.mirror,
            "companion": None if engine.companion is None else engine.info.params["companion"]["recogniser"],
            "reconstruct_ms": recon_ms, "embed_ms": embed_ms,
            "reconstruct_embed_ms": both_ms, "batch64_per_face_ms": batch_ms / 64}


def _sharp_share(md: dict, which: str) -> str:
    """The bench line's words for SFace as published's share of a probe (a bundle with a sharp part)."""
    share = md.get(f"sharp_share_{which}")
    if share is None:
        return ""
    return f"; SFace as published {share:g} of the recogniser side" + (": not run" if share == 0 else "")


def bench_search(sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000), repeats: int = 7) -> dict:
    """Gallery search time (engine.search.search_gallery: per-person scores, softmax, top 10, the open-set
    decision) against the number of stored embeddings, with random unit vectors and ~4 images per person,
    on an index held in memory (the search, not the store's first read of it)."""
    from forensic_face.engine.search import EmbeddingIndex, Snapshot, search_gallery
    from forensic_face.models.calibration import MatchCalibration

    cal = MatchCalibration(weights=(-8.0, 10.0, 0.0, 0.0), temperature=0.05, n_pairs=0, n_searches=0)
    rng = np.random.default_rng(0)
    out = {}
    for n in sizes:
        vecs = rng.standard_normal((n, 128), dtype=np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        people = max(1, n // 4)
        idx = EmbeddingIndex(vecs, rng.integers(0, people, n), [f"p{i}" for i in range(people)],
                             np.arange(n), [""] * n)
        store = _HeldIndex(Snapshot(idx, {"size": n}, []))
        q = vecs[n // 2]

        def search(store: _HeldIndex = store, q: np.ndarray = q) -> None:
            search_gallery(store, q, cal, "bench", 100.0, top_k=10, probe_sharpness=100.0)

        ms, _ = _time(search, repeats)
        out[str(n)] = {"ms": ms, "people": int(idx.starts.size), "memory_mb": vecs.nbytes / 1e6}
    return out


class _HeldIndex:
    """A gallery store holding one index in memory: what the search reads (engine.search.Searchable)."""

    location = "<in memory>"

    def __init__(self, snapshot) -> None:
        self._snapshot = snapshot

    def rank(self, model_version: str, query: np.ndarray, people: int):
        return self._snapshot.index.ranking(query, self._snapshot.identity, self._snapshot.held)


def bench_enrol(n_faces: int = 60) -> dict | None:
    """Enrolment throughput (decode, detect, align, embed, store) on generated 250x250 face images."""
    from skimage import data

    from forensic_face.engine.inference import FaceEngine
    from forensic_face.services.enrolment import enroll_folder
    from forensic_face.store.gallery import open_gallery
    from forensic_face.vision.detect import FaceDetector

    if not FaceEngine.available():
        return None
    engine, detector = FaceEngine(), FaceDetector()
    face = cv2.resize(data.astronaut()[:400, 56:456], (250, 250), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "people"
        for i in range(n_faces):
            d = root / f"person_{i // 3:03d}"
            d.mkdir(parents=True, exist_ok=True)
            img = np.clip(face.astype(np.int16) + rng.integers(-15, 15, face.shape), 0, 255).astype(np.uint8)
            cv2.imwrite(str(d / f"{i}.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        with open_gallery(Path(tmp) / "g.db", mode="create") as g:
            rep = enroll_folder(g, root, engine, detector)
    return {"faces": rep.enrolled, "seconds": rep.seconds, "faces_per_s": rep.enrolled / rep.seconds}


def machine() -> dict[str, str | int]:
    import torch

    return {
        "forensic_face": __version__,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count() or 0,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }


def run_bench(repeats: int = 15, fps: float = 25.0) -> dict:
    """All bench figures as a JSON-ready dict."""
    return {"machine": machine(), "frame": bench_frame(repeats), "audio": bench_audio(repeats, fps),
            "models": bench_models(repeats), "search": bench_search(), "enrol": bench_enrol()}


TARGETS = {("frame", "detect_align_ms"): 30.0, ("audio", "features_ms"): 150.0}


def format_report(report: dict) -> str:
    m, f, a = report["machine"], report["frame"], report["audio"]
    lines = [
        f"forensic-face {m['forensic_face']} bench on {m['cores']} cores, python {m['python']}, "
        f"CUDA {'yes' if m['cuda'] else 'no'} (medians, warm)",
        "",
        f"frame 640x480, face {f['face_px']:.0f} px",
        f"  decode JPEG            {f['decode_ms']:8.2f} ms",
        f"  detect + landmarks     {f['detect_ms']:8.2f} ms",
        f"  align, grey, quality   {f['align_ms']:8.2f} ms   ({f['align_px']} px crop)",
        f"  detect + align         {f['detect_align_ms']:8.2f} ms   target <= 30 ms",
        f"  small face ({f['small_face_px']:.0f} px), 160x120 frame: {f['small_face_detect_ms']:.1f} ms "
        f"via {f['small_face_method']}",
        f"  (one-time detector load {f['detector_load_ms']:.0f} ms)",
        "",
        f"audio 10 s, 44.1 kHz stereo WAV, {a['timestamps']} frame timestamps, LBRP dim {a['lbrp_dim']}",
        f"  load + resample        {a['load_ms']:8.2f} ms",
        f"  denoise                {a['denoise_ms']:8.2f} ms",
        f"  pitch/energy per frame {a['prosody_ms']:8.2f} ms",
        f"  LBRP per frame         {a['lbrp_ms']:8.2f} ms",
        f"  features (no load)     {a['features_ms']:8.2f} ms   target <= 150 ms",
        f"  all stages             {a['total_ms']:8.2f} ms",
        f"  (one-time extractor init {a['extractor_init_ms']:.0f} ms)",
        "",
    ]
    md = report.get("models")
    if md is None:
        lines.append("models: none trained yet in resources/models/ (run `forensic-face train`)")
    else:
        lines += [
            f"models {md['model_version']} on {md['device']} ({md.get('precision', 'float32')} recognisers), "
            f"{md['input_px']} px faces reconstructed, "
            f"{md.get('recogniser_px', md['input_px'])} px faces embedded "
            f"({'as found' if md.get('recogniser_embeds') == 'input' else 'reconstructed'}"
            + (f"; joined to the {md['companion']} companion's embedding of the reconstruction)"
               if md.get("companion") else ")"),
            f"  reconstruct (with audio) {md['reconstruct_ms']:6.2f} ms",
            f"  embed {'(mirror-averaged)' if md.get('mirror_averaged', True) else '(once)           '}"
            f" {md['embed_ms']:6.2f} ms",
            f"  reconstruct + embed      {md['reconstruct_embed_ms']:6.2f} ms   target <= 30 ms"
            + (f" (companion share {md['companion_share_sharp']:g}"
               + (": not run" if md["companion_share_sharp"] == 0 else "")
               + _sharp_share(md, "sharp") + ")" if md.get("companion") else ""),
            *([f"  ... of a blurred probe   {md['reconstruct_embed_blurred_ms']:6.2f} ms   (sigma "
               f"{BLURRED_SIGMA:g} px; companion share {md['companion_share_blurred']:g}, its network run"
               + _sharp_share(md, "blurred") + ")"]
              if md.get("companion") else []),
            f"  batch of 64, per face    {md['batch64_per_face_ms']:6.2f} ms",
            f"  (one-time model load {md['load_ms']:.0f} ms)",
        ]
    lines += ["", "gallery search (per-person scores, softmax, top 10), random 128-D embeddings:"]
    for n, r in report.get("search", {}).items():
        target = {"100000": "   target <= 20 ms", "1000000": "   target <= 200 ms"}.get(n, "")
        lines.append(f"  {int(n):>9,} embeddings ({r['people']:,} people, {r['memory_mb']:.0f} MB) "
                     f"{r['ms']:8.2f} ms{target}")
    en = report.get("enrol")
    if en:
        lines.append(f"enrolment: {en['faces']} faces in {en['seconds']:.2f} s = {en['faces_per_s']:.1f} faces/s"
                     "   target >= 30 faces/s")
    return "\n".join(lines)
