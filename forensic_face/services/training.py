"""Training and evaluation as the user runs them (`forensic-face train`, `forensic-face evaluate`): the LFW
folder found, the faces prepared, the networks trained, exported with their calibration, and measured."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path

from forensic_face.core.errors import CancelledError, ForensicFaceError
from forensic_face.core.progress import Progress


def lfw_folder(given: str | Path | None) -> Path:
    """The LFW folder: the one given, else ``lfw`` in the shared data folder (FORENSIC_FACE_DATA)."""
    from forensic_face.paths import shared_data_dir

    if given:
        return Path(given)
    shared = shared_data_dir()
    if shared is None or not (shared / "lfw").is_dir():
        raise ForensicFaceError("no --data folder given and ../shared/data/lfw not found (set FORENSIC_FACE_DATA)")
    return shared / "lfw"


def train_and_export(data: str | Path | None, out: str | Path, overrides: dict, *, workers: int, resume: bool,
                     export: str | Path | None, progress: Progress) -> dict:
    """Prepare the faces, train (``overrides``: TrainConfig fields; unknown keys are ignored), export the
    models with their calibration (to ``export``, default the shipped models folder); returns the summary
    the command prints. Stopped while preparing, the exception carries a note saying what is kept."""
    from forensic_face.paths import cache_dir, models_dir
    from forensic_face.training.evaluate import export_models
    from forensic_face.training.train import TrainConfig, prepare, train

    known = {f.name for f in fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in overrides.items() if k in known and v is not None})
    if cfg.init_from:
        from forensic_face.training.train import config_from_bundle

        try:
            cfg = config_from_bundle(cfg, cfg.init_from)
        except (FileNotFoundError, ValueError) as exc:
            raise ForensicFaceError(str(exc)) from exc
    data, out = lfw_folder(data), Path(out)
    try:
        prep = prepare(data, cfg, workers=workers, progress=progress)
    except (KeyboardInterrupt, CancelledError) as exc:  # the note says what is kept
        exc.add_note(f"stopped while preparing {data}; the faces and arrays prepared so far are kept in "
                     f"{cache_dir()} and the same command goes on from there")
        raise
    record = train(data, out, cfg, workers=workers, resume=resume, progress=progress, prep=prep)
    dest = Path(export) if export else models_dir()
    engine, _ = export_models(out / "checkpoint.pt", prep.index, prep.cache, prep.split.calib_pairs, dest,
                              workers, progress, made=prep.split.calib_made)
    return {"checkpoint": str(out / "checkpoint.pt"), "models": str(dest), "version": engine.info.version,
            "train_seconds": record["train_seconds"], "epochs": len(record["history"]),
            "epochs_this_session": record["epochs_this_session"],
            "last_epoch": record["history"][-1] if record["history"] else None}


def evaluate_models(data: str | Path | None, models: str | Path | None, device: str, out: str | Path, *,
                    workers: int, progress: Progress, precision: str = "auto") -> dict:
    """Evaluate the models on the LFW test pairs (the calibration recorded at export, refitted only
    without one; the recognisers in ``precision``), with dlib's recogniser and SFace as published (where the
    shared weights folder has it) measured beside them; the report is written to ``out`` as JSON and returned."""
    from forensic_face.engine.inference import FaceEngine
    from forensic_face.training.evaluate import calibrate, evaluate, published_sface
    from forensic_face.training.split import load_split_data

    index, split, cache = load_split_data(lfw_folder(data), progress, workers)
    engine = FaceEngine(models, device=device, precision=precision)
    # the calibration run at export recorded dlib's thresholds on the same held-out pairs; refit only without it
    info = engine.meta.get("record", {}).get("calibration_info")
    if info is None:
        _, info = calibrate(engine, index, cache, split.calib_pairs, workers, progress, split.calib_made)
    reference, why_not = published_sface()  # measured beside the product in the same run
    report = evaluate(engine, index, cache, split.test_pairs, info, Path(out), workers, progress, reference, why_not)
    report["split"] = split.describe()
    Path(out).write_text(json.dumps(report, indent=2))
    return report


def evaluate_clip_models(data: str | Path | None, models: str | Path | None, device: str, out: str | Path, *,
                         refit: bool, workers: int, progress: Progress, precision: str = "auto") -> dict:
    """Issue 23's evaluation of clips (:mod:`forensic_face.training.clip_eval`): the pooled templates'
    calibration fitted on the calibration people and stored in the bundle when it has none (or ``refit``),
    then verification, search and reconstruction of clips of 1-16 frames on the test pairs; written to ``out``."""
    from forensic_face.engine.inference import FaceEngine
    from forensic_face.models.bundle import save_clip_calibration
    from forensic_face.paths import models_dir
    from forensic_face.training.clip_eval import calibrate_clips, evaluate_clips
    from forensic_face.training.split import load_split_data

    folder = Path(models) if models else models_dir()
    index, split, cache = load_split_data(lfw_folder(data), progress, workers)
    engine = FaceEngine(folder, device=device, precision=precision)
    if engine.clip_calibration is None or refit:
        # fitted in float32, whatever the machine's arithmetic: the bundle's calibration the same on every machine
        fit = FaceEngine(folder, device=device, precision="float32")
        cal, info, share = calibrate_clips(fit, index, cache, split.calib_pairs, workers, progress)
        save_clip_calibration(folder, cal, info, share)
        engine = FaceEngine(folder, device=device, precision=precision)
    report = evaluate_clips(engine, engine.clip_calibration, index, cache, split.test_pairs, workers=workers,
                            progress=progress)
    report |= {"split": split.describe(), "engine": engine.info.as_dict(),
               "clip_calibration": engine.meta["clip_calibration"],
               "clip_calibration_sha256": engine.clip_calibration_sha256}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(report, indent=2))
    return report


def tune_sface(data: str | Path | None, onnx: str | Path | None, out: str | Path, overrides: dict, *,
               workers: int, threads: int | None, progress: Progress) -> dict:
    """Distil SFace into a student for degraded probes (:mod:`forensic_face.training.distil`) on the training
    people of the LFW split; everything is kept in ``out`` and the same command resumes. Returns the run's
    record (``out/record.json``); the student's state dict is ``out/student.pt``."""
    import torch

    from forensic_face.models.sface import SFaceNet
    from forensic_face.training.distil import DistilConfig, run_distillation
    from forensic_face.training.lfw import build_face_cache, index_folder
    from forensic_face.training.sface_onnx import convert, default_onnx_path
    from forensic_face.training.split import make_split

    known = {f.name for f in fields(DistilConfig)}
    cfg = DistilConfig(**{k: v for k, v in overrides.items() if k in known and v is not None})
    if not 0.0 <= cfg.teacher_share <= 1.0:
        raise ForensicFaceError(f"--teacher-share must lie in 0 .. 1 (0: the tuned student, 1: SFace as published), "
                                f"not {cfg.teacher_share:g}")
    if threads:
        torch.set_num_threads(threads)
    index = index_folder(lfw_folder(data))
    split = make_split(index, cfg.seed)
    cache = build_face_cache(index, progress, with_teacher=False, workers=workers)
    teacher = SFaceNet()
    teacher.load_state_dict(convert(Path(onnx) if onnx else default_onnx_path()))
    _, record = run_distillation(index, cache, split.train_people, teacher.eval(), Path(out), cfg, workers,
                                 progress)
    return record | {"student": str(Path(out) / "student.pt"), "split": split.describe()}


def export_sface_student(data: str | Path | None, run: str | Path, base: str | Path | None, dest: str | Path, *,
                         workers: int, progress: Progress, mirror: bool = True,
                         companion: str | Path | None = None, companion_weight: float | None = None) -> dict:
    """The tuned student of ``run`` (``student.pt``, ``record.json`` of :func:`tune_sface`) as the recogniser of a
    model bundle in ``dest``, beside the fusion autoencoder of the bundle ``base`` (default: the installed
    models), embedding the face as found in its own five-point crop; calibrated on the calibration people as
    :func:`forensic_face.training.evaluate.export_models` does. ``dest`` may be ``base``. ``mirror``: whether
    the engine averages each face's embedding with its mirror image's (twice the recogniser's time).
    ``companion``: a bundle whose recogniser (one of the reconstruction, in the autoencoder's crop) is joined to
    the student's as a companion, its share of the similarity ``companion_weight`` or, without one, chosen on
    the calibration people (:func:`~forensic_face.training.evaluate.choose_companion_weight`). Returns the
    calibration's record."""
    from datetime import date

    import torch

    from forensic_face.engine.inference import FaceEngine
    from forensic_face.models.bundle import load_networks, save_bundle
    from forensic_face.models.sface import SFaceNet
    from forensic_face.paths import models_dir
    from forensic_face.training.evaluate import calibrate, choose_companion_weight
    from forensic_face.training.split import load_split_data

    run, dest = Path(run), Path(dest)
    if not (run / "student.pt").is_file() or not (run / "record.json").is_file():
        raise ForensicFaceError(f"{run} holds no finished tuning run (student.pt and record.json); "
                                "run `forensic-face tune-sface --out` there first")
    ae, _, base_meta = load_networks(Path(base) if base else models_dir(), torch.device("cpu"))
    student = SFaceNet()
    student.load_state_dict(torch.load(run / "student.pt", map_location="cpu", weights_only=True))
    tuned = json.loads((run / "record.json").read_text())
    record = {"date": date.today().isoformat(),
              "recogniser": {"base": "OpenCV Zoo face_recognition_sface_2021dec (SFace, MobileFaceNet; Apache-2.0)",
                             "tuning": tuned, "command": "forensic-face tune-sface"},
              "autoencoder": {"from_bundle": base_meta["version"], "weights_sha256": base_meta["weights_sha256"],
                              "record": base_meta.get("record", {})}}
    source = "SFace (OpenCV Zoo, Apache-2.0) distilled for degraded faces by forensic-face tune-sface"
    index, split, cache = load_split_data(lfw_folder(data), progress, workers)
    joined, joined_from = _companion(companion, base_meta, companion_weight) if companion else (None, None)
    save_bundle(dest, ae, student.eval(), None, record, source=source, embeds="input", mirror=mirror,
                companion=joined)
    engine = FaceEngine(dest, device="cpu", precision="float32")  # what is fitted: the same on every machine
    if joined is not None:
        if companion_weight is None:
            chosen, record["companion_weight"] = choose_companion_weight(engine, index, cache, split.calib_pairs,
                                                                         workers, progress)
            joined = replace(joined, **chosen)
        record["companion"] = joined_from
        save_bundle(dest, engine.ae, engine.rec, None, record, source=source, embeds="input", mirror=mirror,
                    companion=joined)
        engine = FaceEngine(dest, device="cpu", precision="float32")
    cal, info = calibrate(engine, index, cache, split.calib_pairs, workers, progress, split.calib_made)
    record["calibration_info"] = info
    meta = save_bundle(dest, engine.ae, engine.rec, cal, record, source=source, embeds="input", mirror=mirror,
                       companion=joined)
    return {"models": str(dest), "version": meta["version"], "calibration_info": info}


def join_sharp(data: str | Path | None, models: str | Path | None, dest: str | Path, *, onnx: str | Path | None,
               workers: int, progress: Progress, share: float | None = None, ramp: float | None = None,
               cross: float = 0.0) -> dict:
    """The joined bundle in ``models`` (default: the installed models; an SFace student joined to a companion of the
    reconstruction) with SFace as published joined as its sharp part (:class:`~forensic_face.models.bundle.Sharp`,
    from ``onnx``, default the shared weights folder's file, checked against its recorded SHA-256), written to
    ``dest`` (may be ``models``): its share chosen on the calibration people
    (:func:`~forensic_face.training.evaluate.choose_sharp_share`), or ``share`` T and ``ramp`` R as given, then the
    match calibration, temperature and open-set table refitted there. ``cross``: the share b of the recogniser's
    cosine taken against the gallery face's sharp embedding (:class:`~forensic_face.models.bundle.Sharp`; 0: none),
    given (chosen by ``research/asymmetric/``'s rule), applied while the share is chosen too. The clip calibration
    is not carried over (refit it: ``forensic-face evaluate --clips --refit``). Refused, leaving ``dest`` as it was,
    when the rule keeps the bundle without the sharp part. Returns what was chosen and written."""
    import tempfile
    from datetime import date

    import torch

    from forensic_face.engine.inference import FaceEngine
    from forensic_face.models.bundle import Sharp, load_bundle, save_bundle
    from forensic_face.models.sface import SFaceNet
    from forensic_face.paths import models_dir
    from forensic_face.training.evaluate import calibrate, choose_sharp_share
    from forensic_face.training.sface_onnx import ONNX_SHA256, convert, default_onnx_path
    from forensic_face.training.split import load_split_data

    if (share is None) != (ramp is None):
        raise ForensicFaceError("give both the sharp share and its ramp, or neither (then they are chosen)")
    if not 0.0 <= cross < 1.0:
        raise ForensicFaceError(f"the cross share lies in [0, 1), not {cross!r}")
    folder, dest = Path(models) if models else models_dir(), Path(dest)
    ae, rec, companion, meta = load_bundle(folder, torch.device("cpu"))
    if companion is None or companion.quality_range is None or meta["recogniser"].get("embeds") != "input" \
            or meta["recogniser"].get("architecture") != "sface":
        raise ForensicFaceError(f"{folder}: a sharp part joins an SFace student of the face as found that has a "
                                "companion whose share falls with the probe's quality; this bundle is not one")
    path = Path(onnx) if onnx else default_onnx_path()
    if not path.is_file():
        raise ForensicFaceError(f"{path}: SFace's ONNX file not found")
    net = SFaceNet()
    try:
        net.load_state_dict(convert(path))
    except ValueError as exc:
        raise ForensicFaceError(str(exc)) from exc
    rec_info = meta["recogniser"]
    record = {**meta.get("record", {}), "date": date.today().isoformat()}
    record.pop("calibration_info", None)
    record["sharp"] = {"base": "OpenCV Zoo face_recognition_sface_2021dec (SFace, MobileFaceNet; Apache-2.0), "
                               "as published", "onnx_sha256": ONNX_SHA256, "joined_to": meta["version"],
                       "command": "forensic-face join-sharp", "cross": float(cross)}
    source = f"{path.name} (OpenCV Zoo, Apache-2.0) as published, SHA-256 {ONNX_SHA256[:12]}…"
    sharp = Sharp(net.eval(), 0.5, (companion.quality_range[1] - 1.0, companion.quality_range[1]), source=source,
                  cross=float(cross))
    joined = replace(companion, sharp=sharp)

    def save(folder_: Path, cal=None) -> dict:
        return save_bundle(folder_, ae, rec, cal, record, source=rec_info.get("source", ""), embeds="input",
                           mirror=rec_info.get("mirror", True), companion=joined)

    index, split, cache = load_split_data(lfw_folder(data), progress, workers)
    with tempfile.TemporaryDirectory(prefix="forensic-face-sharp-") as tmp:
        save(Path(tmp))
        if share is not None and ramp is not None:
            chosen = {"share": float(share), "quality_range": (sharp.quality_range[1] - ramp, sharp.quality_range[1])}
            record["sharp"]["share_choice"] = {"given": True, "chosen": {"T": float(share), "R": float(ramp)}}
        else:
            chosen, record["sharp"]["share_choice"] = choose_sharp_share(
                FaceEngine(tmp, device="cpu", precision="float32"), index, cache, split.calib_pairs, workers,
                progress)
        if chosen is None:
            raise ForensicFaceError("on the calibration people no sharp share beat the bundle without one "
                                    f"(the rule of choose_sharp_share); {dest} left as it was")
        joined = replace(companion, sharp=replace(sharp, **chosen))
        save(Path(tmp))
        cal, info = calibrate(FaceEngine(tmp, device="cpu", precision="float32"), index, cache, split.calib_pairs,
                              workers, progress, split.calib_made)
    record["calibration_info"] = info
    written = save(dest, cal)
    return {"models": str(dest), "version": written["version"], "chosen": record["sharp"]["share_choice"]["chosen"],
            "calibration_info": info}


def _companion(folder: str | Path, base_meta: dict, weight: float | None):
    """The recogniser of the bundle in ``folder`` as a companion (of the reconstruction, in the autoencoder's crop),
    with ``weight`` (0.5 until chosen), and where it came from (that bundle's version, weights digest and training
    record); refused when it does not embed the reconstruction the kept autoencoder makes."""
    import torch

    from forensic_face.models.bundle import Companion, load_networks, recogniser_embeds

    _, net, meta = load_networks(Path(folder), torch.device("cpu"))
    if recogniser_embeds(meta) != "reconstruction" or meta["ae"] != base_meta["ae"]:
        raise ForensicFaceError(f"{folder}: its recogniser does not embed reconstructions of the kept autoencoder's "
                                "crop, so it cannot be the companion")
    source = (f"the recogniser of bundle {meta['version']} (weights {meta['weights_sha256'][:12]}…, "
              f"{(meta.get('recogniser') or {}).get('source', 'forensic-face train')})")
    came = {"from_bundle": meta["version"], "weights_sha256": meta["weights_sha256"], "source": source,
            "record": meta.get("record", {})}
    return Companion(net.eval(), 0.5 if weight is None else float(weight), "reconstruction", True, source), came
