"""The bundled demo: a CCTV-like probe and its audio, made from material the project may ship.

The probe is matplotlib's sample photograph of Grace Hopper (shipped inside matplotlib), placed
small in a 640x480 scene and degraded with the CCTV model; the audio is synthetic speech from
:mod:`forensic_face.audio.synth` with added noise. Nothing comes from ../shared/data.

With trained weights in ``resources/models/`` the demo also builds a case folder (the frame and
the audio as evidence, hashed and logged), a small gallery from photographs shipped inside the
dependencies (Grace Hopper from matplotlib, mirrored, turned and re-lit so that the gallery does not hold
the probe's own photograph, see :func:`gallery_photo`; Eileen Collins from scikit-image's 'astronaut'; the
'camera' man, which has no usable face and is listed as such), and runs the analysis: the
reconstruction beside the input, and the ranked candidates. Without weights it says plainly that
reconstruction and gallery search need the models.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np

from forensic_face import __version__
from forensic_face.paths import models_dir
from forensic_face.vision.degrade import Degradation, degrade

log = logging.getLogger(__name__)

#: CCTV look of the demo probe: the 640x480 frame reduced to 240 px wide (face about 20 px), blurred,
#: noisy, strongly compressed, then shown at the camera's resolution again.
DEMO_DEGRADATION = Degradation(downscale_to=240, blur_sigma=0.9, noise_sigma=7.0, jpeg_quality=30, gamma=1.3)
DEMO_SEED = 2026
PROBE_TIMESTAMP_S = 2.0
AUDIO_SECONDS = 6.0


def demo_scene() -> np.ndarray:
    """A 640x480 RGB 'corridor' frame with a person (matplotlib's Grace Hopper sample) at the side."""
    import matplotlib.cbook as cbook

    from forensic_face.vision.frames import load_image

    person = load_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).image  # (600, 512, 3)
    h, w = 480, 640
    yy, xx = np.mgrid[0:h, 0:w]
    wall = (70 + 60 * (xx / w) + 15 * np.sin(yy / 23.0)).astype(np.float32)
    scene = np.dstack([wall * 0.95, wall, wall * 1.05]).clip(0, 255).astype(np.uint8)
    cv2.rectangle(scene, (40, 300), (250, 480), (55, 50, 45), -1)  # a counter in the foreground
    small = cv2.resize(person, (154, 180), interpolation=cv2.INTER_AREA)  # face about 65 px wide
    y0, x0 = 120, 380
    scene[y0 : y0 + 180, x0 : x0 + 154] = small
    return scene


def run_demo(out: str | Path) -> dict:
    """Build the demo inputs in ``out``, analyse them, and return a summary (also written as JSON)."""
    from forensic_face.audio.io import load_audio
    from forensic_face.engine.inference import FaceEngine
    from forensic_face.engine.probe import find_face, probe_size
    from forensic_face.vision.detect import FaceDetector

    out = Path(out)
    scene, probe, probe_path, audio_path = _demo_inputs(out)
    detector = FaceDetector()
    engine = FaceEngine() if FaceEngine.available() else None  # loaded once, for the preview and the analysis
    size = probe_size(engine)  # the networks' input size (without models: a size to show the crops at)
    alignment = engine.alignment if engine is not None else "eyes"  # the networks' way
    probe_face = find_face(probe, detector, size, alignment=alignment)  # the probe path's face step
    face, aligned, quality = probe_face.detection, probe_face.aligned, probe_face.quality
    clean_face = find_face(scene, detector, size, alignment=alignment).aligned

    clip = load_audio(audio_path)
    feats = _audio_features(clip, PROBE_TIMESTAMP_S)

    analysis = _analyse(out, probe_path, audio_path, detector, engine) if engine is not None else None
    figure_path = out / "demo_overview.png"
    _render_overview(figure_path, probe, face, aligned, clean_face, clip, feats, analysis)
    weights = sorted(p.name for p in models_dir().glob("*.pt"))
    summary = {
        "version": __version__,
        "inputs": {"frame": str(probe_path), "audio": str(audio_path)},
        "degradation": DEMO_DEGRADATION.as_dict(),
        "face": face.as_dict(),
        "alignment": aligned.method,
        "quality": quality.as_dict(),
        "quality_hints": quality.hints(),
        "audio": {
            "seconds": round(clip.duration_s, 3),
            "warnings": list(clip.warnings),
            "feature_dim": int(feats["vector"].shape[-1]),
            "at_timestamp_s": PROBE_TIMESTAMP_S,
            "pitch_hz": feats["pitch_hz"],
        },
        "models": weights,
        "overview": str(figure_path),
    }
    if analysis is not None:  # the analysis's own face and quality (of the saved evidence), as its report has them
        record = analysis[0].record
        shown_px, method, alignment = record.quality.face_px, record.face.method, record.face.alignment
        hints = list(record.quality.hints)
    else:
        shown_px, method, alignment, hints = face.width, face.method, aligned.method, quality.hints()
    lines = [
        f"demo inputs: {probe_path} (640x480 CCTV-like frame), {audio_path} ({clip.duration_s:.1f} s)",
        f"face: {shown_px:.0f} px wide, found by {method}, aligned by {alignment}",
        f"quality: {'; '.join(hints) or 'no warnings'}",
        f"audio at t={PROBE_TIMESTAMP_S:.1f} s: pitch {feats['pitch_hz']:.0f} Hz, "
        f"{feats['vector'].shape[-1]}-dim LBRP + prosody vector",
        f"overview: {figure_path}",
    ]
    if analysis is None:
        lines.append(
            "models: none trained yet in resources/models/, so reconstruction and gallery search were not run"
        )
    else:
        lines += _analysis_summary(out, analysis, summary)
    summary["lines"] = lines
    (out / "demo_summary.json").write_text(json.dumps({k: v for k, v in summary.items() if k != "lines"}, indent=2))
    return summary


def _demo_inputs(out: Path) -> tuple[np.ndarray, np.ndarray, Path, Path]:
    """(scene, degraded probe frame, the probe's JPEG, the audio WAV): the demo's evidence, written to
    ``out/inputs``."""
    from forensic_face.audio.synth import synth_speech

    (out / "inputs").mkdir(parents=True, exist_ok=True)
    scene = demo_scene()
    probe = degrade(scene, DEMO_DEGRADATION, seed=DEMO_SEED)
    probe_path = out / "inputs" / "cctv_frame.jpg"
    cv2.imwrite(str(probe_path), cv2.cvtColor(probe, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])

    rng = np.random.default_rng(DEMO_SEED)
    speech = synth_speech(AUDIO_SECONDS, sr=16000, f0=118.0, seed=DEMO_SEED)
    noisy = speech + rng.normal(0, 0.02, speech.shape).astype(np.float32)
    audio_path = out / "inputs" / "cctv_audio.wav"
    _write_wav(audio_path, noisy, 16000)
    return scene, probe, probe_path, audio_path


def _analysis_summary(out: Path, analysis: tuple, summary: dict) -> list[str]:
    """The summary's lines on the case, the gallery, the analysis and the report (whose records go into
    ``summary``); writes the report."""
    from forensic_face.reports.pdf import write_report
    from forensic_face.reports.wording import search_verdict

    res, case, enrol = analysis
    summary["analysis"] = res.as_dict()
    summary["case"] = str(case.root)
    lines = [f"case: {case.root} (evidence hashed, {len(case.read_log())} audit entries; "
             f"results in {case.results_dir})"]
    lines.append(f"gallery: {enrol.enrolled} faces of {enrol.people} people enrolled"
                 + (f"; no usable face in {', '.join(Path(p).name for p in enrol.no_face)}" if enrol.no_face
                    else ""))
    change = res.audio_effect.get("mean_abs_difference", 0)
    lines.append(f"reconstruction ({res.engine['model_version']}, {res.engine['device']}): "
                 f"{res.images['reconstruction']}; audio changed it by {change} grey levels on average")
    search = res.record.search
    lines.append(f"search: {search_verdict(search)}")
    for i, c in enumerate(search.candidates, 1):
        lines.append(f"  {i}. {c.person}: identity probability {c.identity_probability:.3f}, "
                     f"cosine {c.similarity:.3f}, distance {c.euclidean:.3f}, "
                     f"one-to-one match probability {c.match_probability:.3f}")
    lines.append("a candidate is an investigative lead, not an identification")
    report = write_report(case, out / "demo_report.pdf")
    summary["report"] = report.as_dict()
    lines.append(f"report: {report.path} ({report.pages} pages, SHA-256 {report.sha256[:16]}…)")
    return lines


def _gallery_people(root: Path) -> None:
    """One folder per person, from photographs shipped inside the dependencies."""
    import matplotlib.cbook as cbook
    from skimage import data

    hopper = cv2.cvtColor(cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))),
                          cv2.COLOR_BGR2RGB)
    people = {
        "Grace_Hopper": gallery_photo(hopper),
        "Eileen_Collins": data.astronaut(),
        "Camera_Man": data.camera(),
    }
    for name, img in people.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        bgr = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(root / name / f"{name}_0001.png"), bgr)


def gallery_photo(photo: np.ndarray) -> np.ndarray:
    """The demo's gallery picture of the probe's person: the only photograph of her the project may ship,
    mirrored, turned by 6 degrees, re-lit (gamma 0.75, warmer) and cropped, so that the gallery does not hold
    the very image the probe was made from (a mirrored face is a different face to a recogniser: faces are
    not symmetric). A real gallery photo would be another picture altogether."""
    h, w = photo.shape[:2]
    turned = cv2.warpAffine(cv2.flip(photo, 1), cv2.getRotationMatrix2D((w / 2, h / 2), 6.0, 1.0), (w, h),
                            borderMode=cv2.BORDER_REFLECT)
    lit = 255.0 * (turned.astype(np.float32) / 255.0) ** 0.75 * np.array([1.04, 1.0, 0.93], np.float32)
    return lit.clip(0, 255).astype(np.uint8)[20:h - 10, 15:w - 25]


def _analyse(out: Path, probe_path: Path, audio_path: Path, detector, engine):
    """Case folder + gallery + analysis of the probe with its audio (both through the probe path:
    enrolment's face step and embedding, the analysis's whole path)."""
    import shutil

    from forensic_face.services.analysis import analyze_case
    from forensic_face.services.enrolment import enroll_folder
    from forensic_face.store.case import Case
    from forensic_face.store.gallery import open_gallery

    for old in (out / "case", out / "gallery_people"):
        if old.exists():
            for p in old.rglob("*"):
                if p.is_file():
                    p.chmod(0o644)
            shutil.rmtree(old)
    for old in out.glob("gallery.db*"):
        old.unlink()
    case = Case.create(out / "case", "DEMO-001", "Demo Analyst", "Bundled demo: CCTV still and audio")
    case.add_evidence([probe_path, audio_path])
    _gallery_people(out / "gallery_people")
    with open_gallery(out / "gallery.db", mode="create") as gallery:
        enrol = enroll_folder(gallery, out / "gallery_people", engine, detector)
        res = analyze_case(case, engine, detector, gallery, top_k=3, audio_time_s=PROBE_TIMESTAMP_S)
    return res, case, enrol


def _write_wav(path: Path, samples: np.ndarray, sr: int) -> None:
    import soundfile as sf

    sf.write(str(path), np.clip(samples, -1, 1), sr, subtype="PCM_16")


def _audio_features(clip, t: float) -> dict:
    from forensic_face.audio.features import audio_features
    from forensic_face.audio.prosody import PROSODY_COLUMNS

    feats = audio_features(clip, np.array([t]))
    col = PROSODY_COLUMNS.index("f0_median_hz")
    return {"vector": feats.vector[0], "lbrp": feats.lbrp[0], "pitch_hz": float(feats.prosody[0, col]), "all": feats}


def _render_overview(path: Path, probe, face, aligned, clean_face, clip, feats, analysis=None) -> None:
    from forensic_face.reports import figures

    fig = figures.new_figure(14, 6.5, dpi=100)
    gs = fig.add_gridspec(2, 5, height_ratios=[1.2, 1])
    figures.draw_frame(fig.add_subplot(gs[0, :2]), probe, face.box, face.landmarks,
                       f"CCTV frame (degraded), face {face.width:.0f} px, {face.method}")
    panels = [(aligned.image, "aligned probe (input)")]
    if analysis is not None:
        panels.append((analysis[0].reconstruction, "reconstruction\n(generated, not evidence)"))
    panels.append((clean_face.image, "undegraded source\n(not available in a case)"))
    for i, (img, title) in enumerate(panels):
        figures.draw_frame(fig.add_subplot(gs[0, 2 + i]), img, title=title)
    figures.draw_audio(None, fig.add_subplot(gs[1, :3]), figures.audio_view(clip.samples, clip.sr),
                       PROBE_TIMESTAMP_S, 1.0)
    fig.axes[-1].set_title(f"audio spectrogram with pitch; {feats['pitch_hz']:.0f} Hz at the frame", fontsize=9)
    ax = fig.add_subplot(gs[1, 3])
    figures.draw_lbrp(ax, feats["lbrp"])
    ax.set_title("LBRP vector at the frame", fontsize=9)
    ax = fig.add_subplot(gs[1, 4])
    ax.axis("off")
    if analysis is not None:
        search = analysis[0].search
        text = [search["verdict"], ""] + [
            f"{i}. {c['person']}\n   identity p {c['identity_probability']:.2f}, cos {c['similarity']:.2f},\n"
            f"   match p {c['match_probability']:.2f}" for i, c in enumerate(search["candidates"], 1)]
        ax.text(0, 1, "\n".join(text), va="top", fontsize=8, family="monospace")
        ax.set_title("gallery search")
    fig.suptitle("forensic_face demo" + (": detection, reconstruction, gallery search" if analysis else
                                          ": perception engine (models not trained yet)"))
    fig.tight_layout()
    path.write_bytes(figures.figure_png(fig))
