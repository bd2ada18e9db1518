"""The ``forensic-face`` command line (contract: shared/CLI.md).

Exit codes: 0 success, 2 bad usage (argparse), 1 a failure explained in one line on stderr
(a traceback only with ``--debug``). Heavy imports happen inside the command handlers so that
``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from forensic_face import __version__
from forensic_face.core.errors import CancelledError, ForensicFaceError, InputError, describe_os_error


def _cmd_bench(args: argparse.Namespace) -> int:
    from forensic_face.services.bench import format_report, run_bench

    report = run_bench(repeats=args.repeats, fps=args.fps)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from forensic_face.services.demo import run_demo

    summary = run_demo(args.out)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for line in summary["lines"]:
            print(line)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from forensic_face.core.progress import console_progress
    from forensic_face.services.training import train_and_export

    try:
        summary = train_and_export(args.data, args.out, vars(args), workers=args.workers, resume=args.resume,
                                   export=args.export, progress=console_progress())
    except (KeyboardInterrupt, CancelledError) as exc:
        for note in getattr(exc, "__notes__", ()):
            print(f"\nforensic-face: {note}", file=sys.stderr)
        raise
    resumed = (f" (resumed: {summary['epochs']} epochs in the checkpoint)"
               if summary["epochs"] != summary["epochs_this_session"] else "")
    print(json.dumps(summary, indent=2) if args.json else
          f"trained {summary['epochs_this_session']} epochs in {summary['train_seconds']:.0f} s{resumed}; "
          f"models {summary['version']} written to {summary['models']}")
    return 0


def _cmd_tune_sface(args: argparse.Namespace) -> int:
    from forensic_face.core.progress import console_progress
    from forensic_face.services.training import tune_sface

    record = tune_sface(args.data, args.onnx, args.out, vars(args), workers=args.workers, threads=args.threads,
                        progress=console_progress())
    last = record["history"][-1] if record["history"] else {}
    print(json.dumps(record, indent=2) if args.json else
          f"student tuned on {record['images']} images of {record['people']} people "
          f"({record['timings']}); last epoch {last}"
          + (f"; moved {share:g} of the way back to SFace as published" if (share := record["config"]["teacher_share"])
             else "") + f"; weights in {record['student']}")
    if args.export:
        from forensic_face.services.training import export_sface_student

        done = export_sface_student(args.data, args.out, args.base, args.export, workers=args.workers,
                                    progress=console_progress(), mirror=not args.no_mirror,
                                    companion=args.companion, companion_weight=args.companion_weight)
        print(json.dumps(done, indent=2) if args.json else f"models {done['version']} written to {done['models']}")
    return 0


def _cmd_join_sharp(args: argparse.Namespace) -> int:
    from forensic_face.core.progress import console_progress
    from forensic_face.paths import models_dir
    from forensic_face.services.training import join_sharp

    done = join_sharp(args.data, args.models, args.out or args.models or models_dir(), onnx=args.onnx,
                      workers=args.workers, progress=console_progress(), share=args.share, ramp=args.ramp,
                      cross=args.cross)
    chosen = done["chosen"]
    how = "as given" if args.share is not None else "chosen on the calibration people"
    cross = f"; the recogniser's probe {args.cross:g} against its gallery embedding" if args.cross else ""
    print(json.dumps(done, indent=2) if args.json else
          f"SFace as published joined for sharp probes (share {chosen['T']:g}, from 0 at {chosen['R']:g} below the "
          f"companion's sharp end; {how}{cross}); models {done['version']} "
          f"written to {done['models']}; refit the clip calibration: forensic-face evaluate --clips --refit")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from forensic_face.core.progress import console_progress
    from forensic_face.services.training import evaluate_clip_models, evaluate_models

    if args.clips:
        return _print_clip_report(args, evaluate_clip_models(args.data, args.models, args.device, args.out,
                                                             refit=args.refit, workers=args.workers,
                                                             progress=console_progress(),
                                                             precision=args.precision))
    report = evaluate_models(args.data, args.models, args.device, args.out, workers=args.workers,
                             progress=console_progress(), precision=args.precision)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for level, lev in report["levels"].items():
            product = report.get("product_scores", "recon")  # what the product searches with
            ours = lev[f"{product}_with_audio"]
            plain = lev[f"{product}_no_audio"]
            ref = lev["dlib_reference"]["at_0.6"]
            lo, hi = plain["ci95"]["accuracy"]
            gain = lev["comparisons"].get("psnr_gain_over_bicubic_db", {}).get("no_audio")
            against = (f"vs bicubic {lev['bicubic']['psnr_db']:.2f} (gain 95 % {gain['ci95'][0]:+.2f} to "
                       f"{gain['ci95'][1]:+.2f} dB)" if gain else "(the clean probe is its own target)")
            published = next(iter(lev.get("reference", {}).values()), None)
            sface = (f"; SFace as published {published['accuracy']:.3f}, AUC {published['roc_auc']:.3f}"
                     if published else "")
            print(f"{level:7s} accuracy: ours {plain['accuracy']:.3f} (95 % {lo:.3f}-{hi:.3f}; with synthetic voice "
                  f"{ours['accuracy']:.3f}), AUC {plain['roc_auc']:.3f}; dlib {ref['accuracy']:.3f}, AUC "
                  f"{ref['roc_auc']:.3f}{sface}; PSNR {lev['reconstruction_no_audio']['psnr_db']:.2f} dB {against}")
        if "not_measured" in report.get("reference", {}):
            print(f"SFace as published not measured: {report['reference']['not_measured']}")
        print(f"written: {args.out}")
    return 0


def _print_clip_report(args: argparse.Namespace, report: dict) -> int:
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for level, lev in report["levels"].items():
        for n, row in lev["by_frames"].items():
            rec = row["reconstruction"]
            print(f"{level:7s} {n:>2s} frame(s): accuracy {row['accuracy']:.3f}, AUC {row['roc_auc']:.3f}, rank-1 "
                  f"{row['rank_1']['rate']:.3f} ({row['calibration']}); reconstruction {rec['psnr_db']:.2f} dB "
                  f"(one frame {rec['one_frame_psnr_db']:.2f}, frame average {rec['frame_average_psnr_db']:.2f})")
    print(f"written: {args.out}")
    return 0


def _cmd_case(args: argparse.Namespace) -> int:
    from forensic_face.core.progress import console_progress
    from forensic_face.store.case import Case

    if args.case_command == "new":
        case = Case.create(args.dir, args.id, args.analyst, args.title or "")
        print(json.dumps({"case": str(case.root), "id": case.meta["id"]}) if args.json else f"created case "
              f"{case.meta['id']!r} in {case.root}")
        return 0
    if args.case_command == "add":
        case = Case.open(args.dir)
        items = case.add_evidence(args.files, progress=console_progress())
        if args.json:
            print(json.dumps([i.__dict__ for i in items], indent=2))
        for i in items if not args.json else []:
            print(f"added evidence/{i.name} ({i.kind}, {i.format}, {i.size} bytes) sha256 {i.sha256}")
        skipped = len(args.files) - len(items)
        if skipped and not args.json:
            print(f"{skipped} file(s) already in the case (same SHA-256), not added again")
        return 0
    if args.case_command == "verify":
        return _verify(args)
    if args.case_command == "keygen":
        from forensic_face.store.audit import KEY_ENV, new_key_file

        key = new_key_file(args.file)
        print(f"unit key {key.key_id} written to {args.file} (readable by you only). Keep it outside every case "
              f"and set {KEY_ENV}={args.file} for every analyst of the unit: entries written then are sealed, "
              "and `case verify` checks the seals")
        return 0
    if args.case_command in ("withdraw", "note", "provenance"):
        return _case_record(args)
    if args.case_command == "log":
        entries = Case.open(args.dir).read_log()
        if args.json:
            print(json.dumps(entries, indent=2))
        for e in entries if not args.json else []:
            print(f"{e.get('seq'):>4} {e.get('time')} {e.get('action'):<28} {json.dumps(e.get('details'))[:160]}")
        return 0
    raise AssertionError(args.case_command)


def _case_record(args: argparse.Namespace) -> int:
    """case withdraw / note / provenance: something the analyst records about an analysis or an evidence file."""
    from forensic_face.store.case import Case

    case = Case.open(args.dir)
    if args.case_command == "withdraw":
        entry = case.withdraw_analysis(args.analysis, args.reason)
        what = f"{args.analysis} withdrawn (it stays in the case and the report, marked withdrawn)"
    elif args.case_command == "note":
        entry = case.add_note(args.analysis, args.text)
        what = f"note added to {args.analysis}"
    else:
        entry = case.set_provenance(args.evidence, args.exhibit or "", args.received_from or "",
                                    args.received_at or "")
        what = f"provenance of {args.evidence} recorded"
    print(json.dumps(entry, indent=2) if args.json else f"{what}; audit log entry {entry['seq']}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    """case verify: check everything the log knows, record the run (unless --no-log), print the anchor."""
    from forensic_face.core.progress import console_progress
    from forensic_face.services.cases import verify_and_record
    from forensic_face.store.case import Case

    run = verify_and_record(Case.open(args.dir), console_progress(), args.expect_head, record=not args.no_log)
    report, head = run.report, run.head
    not_logged = "--no-log given" if args.no_log else run.not_logged
    if args.json:
        print(json.dumps({**report.as_dict(), "logged": not not_logged, "not_logged": not_logged,
                          "head_now": head}, indent=2))
    else:
        for p in report.problems:
            print(f"PROBLEM: {p}")
        for n in report.notes:
            print(f"note: {n}")
        print(f"{'OK' if report.ok else 'FAILED'}: {report.evidence_checked} evidence file(s) re-hashed, "
              f"{len(report.result_status)} result file(s) and {report.log_entries} audit entries checked"
              + (f", seals checked with unit key {report.sealed_with}" if report.sealed_with else ""))
        print(f"head: {head.get('seq')}:{head.get('hash')} (note it outside the case; `case verify --expect-head "
              f"{head.get('seq')}:{str(head.get('hash'))[:16]}` later shows whether the log was rewritten since)")
        print(f"this verification was recorded in the audit log (entry {head.get('seq')})" if not not_logged
              else f"this verification was not recorded in the audit log: {not_logged}")
    if not report.ok:
        print(f"forensic-face: error: case verification failed ({len(report.problems)} problem(s))", file=sys.stderr)
    return 0 if report.ok else 1


def _resources(args: argparse.Namespace, gallery: str | None = None):
    """The engine (--models, --device), detector and read-only gallery of a command, built on first use."""
    from forensic_face.services.resources import Resources

    return Resources(getattr(args, "models", None), getattr(args, "device", "auto"), gallery or "",
                     getattr(args, "precision", "auto"))


def _cmd_gallery(args: argparse.Namespace) -> int:
    commands = {"info": _gallery_info, "enroll": _gallery_enroll, "search": _gallery_search,
                "migrate": _gallery_migrate, "index": _gallery_index}
    return commands[args.gallery_command](args)


def _gallery_info(args: argparse.Namespace) -> int:
    from forensic_face.store.gallery import describe_info, open_gallery

    with open_gallery(args.db) as g:
        info = g.info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print("\n".join(describe_info(info)))
    return 0


def _gallery_enroll(args: argparse.Namespace) -> int:
    from forensic_face.core.progress import console_progress
    from forensic_face.services.enrolment import enroll_folder
    from forensic_face.store.gallery import open_gallery

    res = _resources(args)
    with open_gallery(args.db, mode="create") as g:
        rep = enroll_folder(g, args.folder, res.engine(), res.detector(), progress=console_progress(),
                            workers=args.workers)
    if args.json:
        print(json.dumps(rep.as_dict(), indent=2))
        return 0
    print(f"enrolled {rep.enrolled} face(s) of {rep.people} people in {rep.seconds:.1f} s "
          f"({rep.as_dict()['faces_per_s']} faces/s, {rep.workers} worker(s)); {rep.already_enrolled} already enrolled")
    for p in rep.no_face:
        print(f"  no usable face: {p}")
    for p in rep.unreadable:
        print(f"  unreadable: {rep.reasons.get(p, p)}")
    return 0


def _gallery_migrate(args: argparse.Namespace) -> int:
    from forensic_face.core.progress import console_progress
    from forensic_face.services.migration import migrate_gallery

    rep = migrate_gallery(args.source, args.destination, sample=args.sample, progress=console_progress())
    if args.json:
        print(json.dumps(rep.as_dict(), indent=2))
        return 0
    print(f"copied {rep.people} people, {rep.images} images and "
          f"{', '.join(f'{n} embeddings of {v}' for v, n in rep.embeddings.items()) or 'no embeddings'} "
          f"from {rep.source} to {rep.destination} in {rep.seconds:.1f} s")
    for version, checksum in rep.content_sha256.items():
        print(f"  {version}: content SHA-256 {checksum} in both")
    print(f"  {rep.searches_compared} searches gave the same people in both (similarities within "
          f"{rep.max_similarity_difference:.1g})")
    return 0


def _gallery_index(args: argparse.Namespace) -> int:
    """Build (or drop) the HNSW indexes of every model version of a PostgreSQL gallery: of the whole embeddings,
    and for the installed joined bundle's version also of its recogniser's values (its sharp probes' queries)."""
    from forensic_face.models.bundle import sharp_query_prefix
    from forensic_face.store.gallery import open_gallery
    from forensic_face.store.gallery.postgres import PostgresGallery

    joined = sharp_query_prefix(args.models)
    with open_gallery(args.db, mode="write") as g:
        if not isinstance(g, PostgresGallery):
            raise ForensicFaceError(f"{g.location}: approximate (HNSW) search indexes are built in PostgreSQL "
                                    "galleries; an SQLite gallery is always searched exactly")
        for version in g.info()["embeddings_by_model"]:
            if args.exact:
                g.drop_index(version)
                print(f"{version}: searched exactly")
            else:
                for prefix in (None, joined[1]) if joined is not None and joined[0] == version else (None,):
                    build = g.build_index(version, m=args.m, ef_construction=args.ef_construction,
                                          ef_search=args.ef_search, prefix=prefix, build_memory=args.build_memory,
                                          vectors="vector" if args.full_precision else "halfvec")
                    what = "the whole embeddings" if prefix is None else \
                        f"their first {prefix} values (the recogniser's: sharp probes)"
                    print(f"{version}: HNSW index of {what} built in {build.seconds:.1f} s (m={args.m}, "
                          f"ef_construction={args.ef_construction}, ef_search={args.ef_search}, "
                          f"build memory {build.build_memory})")
                    if build.advice() is not None:
                        print(f"warning: {version}: {build.advice()}", file=sys.stderr)
    return 0


def _gallery_search(args: argparse.Namespace) -> int:
    """Search the gallery for every probe (image files, or the image files under folders): the gallery is
    opened and the model loaded once; a probe that fails gets its own line and the others go on. Exit 0
    when every probe was searched, 1 when any failed."""
    from forensic_face.core.progress import console_progress
    from forensic_face.services.search import BatchSearch, audio_vector, probe_files

    probes = probe_files(args.images)
    if args.audio and len(probes) != 1:
        raise ForensicFaceError(f"--audio goes with one probe image; {len(probes)} were given")
    with _resources(args, args.db) as res:
        gallery = res.gallery()
        engine = res.engine()
        audio = audio_vector(args.audio) if args.audio else None
        batch = BatchSearch(res.probe_path(), gallery, top=args.top, fpir=args.fpir, audio=audio)
        # nothing is printed before the gallery, the models and the audio are known to be usable
        out = _SearchOutput("json" if args.json else "csv" if args.csv else "text", args.top, len(probes))
        failed = 0
        for outcome in batch.run(probes, console_progress() if len(probes) > 1 else None):
            out.write(outcome, engine.info.as_dict())
            failed += not outcome.ok
    if failed:
        print(f"forensic-face: {failed} of {len(probes)} probe(s) could not be searched", file=sys.stderr)
    return 1 if failed else 0


class _SearchOutput:
    """The search command's output: text (one block per probe), JSON Lines (one object per probe) or CSV
    (a header, then one row per probe with its first ``top`` candidates)."""

    def __init__(self, form: str, top: int, probes: int) -> None:
        self.form, self.top, self.many = form, top, probes > 1
        self._csv = None
        if form == "csv":
            import csv

            self._csv = csv.writer(sys.stdout, lineterminator="\n")
            cand = ("person", "similarity", "identity_probability", "match_probability")
            self._csv.writerow(["image", "ok", "error", "verdict", "confident", "face_px", "sharpness",
                                "people_searched", "lead_score"]
                               + [f"rank{k}_{c}" for k in range(1, top + 1) for c in cand])

    def write(self, outcome, engine_info: dict) -> None:
        {"json": self._json, "csv": self._row, "text": self._text}[self.form](outcome, engine_info)
        sys.stdout.flush()

    def _json(self, o, engine_info: dict) -> None:
        if not o.ok:
            print(json.dumps({"image": str(o.path), "ok": False, "error": o.error}))
            return
        print(json.dumps({"image": str(o.path), "ok": True, **o.result.as_dict(), "face": o.face.detection.as_dict(),
                          "quality": o.face.quality.as_dict(), "engine": engine_info}))

    def _row(self, o, engine_info: dict) -> None:
        if not o.ok:
            self._csv.writerow([str(o.path), "false", o.error] + [""] * (6 + 4 * self.top))
            return
        r = o.result.as_dict()
        cands = [[c["person"], c["similarity"], c["identity_probability"], c["match_probability"]]
                 for c in r["candidates"]]
        cands += [[""] * 4] * (self.top - len(cands))
        self._csv.writerow([str(o.path), "true", "", r["verdict"], str(r["confident"]).lower(), r["probe_face_px"],
                            r["probe_sharpness"], r["people_searched"], "" if r["lead_score"] is None else
                            r["lead_score"]] + [v for c in cands for v in c])

    def _text(self, o, engine_info: dict) -> None:
        if not o.ok and not self.many:  # one probe: its failure is the command's, on stderr
            print(f"forensic-face: error: {o.error}", file=sys.stderr)
            return
        if not o.ok:  # one block among others: on stdout with them, naming its image first
            reason = o.error.removeprefix(f"{o.path}: ")
            print(f"{o.path}: not searched: {reason}")
            return
        res, det = o.result, o.face.detection
        print(f"{f'{o.path}: ' if self.many else ''}{res.verdict} (face {det.width:.0f} px, {det.method}; threshold "
              f"similarity {res.threshold_similarity:.3f}; {res.people_searched} people searched)")
        for i, c in enumerate(res.candidates, 1):
            print(f"{i:3d}. {c.person:32s} identity p {c.identity_probability:6.3f}  cosine {c.similarity:6.3f}"
                  f"  distance {c.euclidean:5.3f}  1:1 match p {c.match_probability:6.3f}  "
                  f"{c.image_path}")


def _whole_number(low: int, high: int, what: str):
    """An argparse type: a whole number of ``what`` from ``low`` to ``high``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"a whole number of {what} from {low} to {high}, got {text!r}")
        return value

    return parse


_top_k = _whole_number(1, 1000, "candidates")
_workers = _whole_number(1, 64, "workers")


def _seconds(text: str) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"a time in seconds from the start of the clip (0 or more), got {text!r}")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100.0 if text.endswith("%") else 1.0)
    except ValueError:
        value = float("nan")
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"a rate between 0 and 1 (or a percentage such as 1%), got {text!r}")
    return value


def _fpir_option(parser: argparse.ArgumentParser) -> None:
    from forensic_face.models.calibration import DEFAULT_FPIR

    parser.add_argument("--fpir", type=_rate, default=DEFAULT_FPIR, metavar="RATE",
                        help="false-lead rate of gallery searches: the share of searches for someone who is not "
                             "enrolled that may still end with a lead (default %(default)s; the shipped "
                             "calibration measured 0.005 to 0.1, e.g. 0.05 or 5%%)")


def _parse_box(text: str | None):
    if text is None:
        return None
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        vals = ()
    if len(vals) != 4:
        raise ForensicFaceError(f"--box must be x0,y0,x1,y1 in frame pixels, got {text!r}")
    return vals


def _cmd_analyze(args: argparse.Namespace) -> int:
    from forensic_face.core.errors import NoFaceFoundError
    from forensic_face.core.progress import console_progress
    from forensic_face.reports.wording import search_verdict
    from forensic_face.services.analysis import analyze_case
    from forensic_face.store.case import Case

    case = Case.open(args.dir)
    if args.list_tracks:
        return _list_tracks(args, case)
    with _resources(args, args.gallery) as r:
        engine = r.engine()
        try:
            if args.clip:
                res = _analyze_clip(args, case, r)
            else:
                res = analyze_case(case, engine, r.detector(), r.gallery(), frame=args.frame, audio=args.audio,
                                   use_audio=not args.no_audio, box=_parse_box(args.box), time_s=args.time,
                                   top_k=args.top, fpir=args.fpir, rotate=args.rotate, progress=console_progress())
        except NoFaceFoundError as exc:
            hint = "--box x0,y0,x1,y1 --seed-frame N" if args.clip else "--box x0,y0,x1,y1 in frame pixels"
            raise NoFaceFoundError(f"{exc}; give the face box by hand: {hint}") from None
    if args.json:
        print(json.dumps(res.as_dict(), indent=2))
        return 0
    when = f" at {res.timestamp_s:.2f} s" if res.timestamp_s is not None else ""
    print(f"{res.analysis_id}: {res.frame_evidence}{when}, face {res.face['box']} "
          f"({res.face['method']}), {', '.join(res.quality['hints']) or 'no quality warnings'}")
    print(f"audio: {res.audio['evidence'] + ' at ' + str(res.audio['timestamp_s']) + ' s' if res.audio else 'none'}")
    search = res.record.search
    if search:
        print(search_verdict(search))  # the sentence the GUI and the report give
        for i, c in enumerate(search.candidates, 1):
            print(f"{i:3d}. {c.person:32s} identity p {c.identity_probability:6.3f}  cosine "
                  f"{c.similarity:6.3f}  distance {c.euclidean:5.3f}  1:1 match p {c.match_probability:6.3f}")
    if res.clip is not None:
        used = res.clip["frames"]
        print(f"track {res.clip['track']} of {res.clip['tracks_found']}: {len(used)} frames pooled "
              f"({used[0]['time_s']:.2f}-{used[-1]['time_s']:.2f} s), {res.clip['calibration']} calibration")
    print(f"results saved in {case.results_dir} ({res.analysis_id}.json and images)")
    return 0


def _list_tracks(args: argparse.Namespace, case) -> int:
    """`analyze --clip --list-tracks`: the people of the clip (or time range), followed but not analysed."""
    from forensic_face.core.progress import console_progress
    from forensic_face.services.analysis import ClipRequest, find_tracks

    if not args.clip:
        raise InputError("--list-tracks lists the people followed through a clip: add --clip")
    request = ClipRequest(start_s=args.start_s, end_s=args.end_s, seed_frame=args.seed_frame,
                          seed_box=_parse_box(args.box))
    with _resources(args) as r:
        found = find_tracks(case, r.clip_detector(), clip=args.frame, request=request, progress=console_progress())
    rows = [{"track": t.track_id, "start_s": t.start_s, "end_s": t.end_s, "first_frame": t.first_frame,
             "last_frame": t.last_frame, "faces": t.faces, "usable_faces": t.usable_faces, "weight": t.weight,
             "best_frame": t.best_frame, "seeded": t.seeded} for t in found.tracks]
    if args.json:
        print(json.dumps({"evidence": found.evidence, "summary": found.summary, "warnings": list(found.warnings),
                          "tracks": rows}, indent=2))
        return 0
    print(f"{found.evidence}: {found.summary}")
    for w in found.warnings:
        print(f"warning: {w}")
    for t in rows:
        span = "" if t["start_s"] is None else f"{t['start_s']:.2f}-{t['end_s']:.2f} s, "
        print(f"track {t['track']}: {span}frames {t['first_frame']}-{t['last_frame']}, {t['faces']} faces "
              f"({t['usable_faces']} usable), weight {t['weight']:.2f}, best face on frame {t['best_frame']}"
              + (", started by the box given" if t["seeded"] else ""))
    print("nothing was analysed or written; analyse one with --clip --track N")
    return 0


def _analyze_clip(args: argparse.Namespace, case, r):
    from forensic_face.core.progress import console_progress
    from forensic_face.services.analysis import ClipRequest, analyze_clip

    if args.time is not None or args.rotate:
        raise InputError("--clip follows the face through a time range (--from, --to), not one --time, and does not "
                         "turn frames; leave out --time and --rotate")
    request = ClipRequest(start_s=args.start_s, end_s=args.end_s, track=args.track, seed_frame=args.seed_frame,
                          seed_box=_parse_box(args.box), pool_frames=args.pool)
    return analyze_clip(case, r.engine(), r.detector(), r.clip_detector(), r.gallery(), clip=args.frame,
                        audio=args.audio, use_audio=not args.no_audio, request=request, top_k=args.top,
                        fpir=args.fpir, progress=console_progress())


def _cmd_gui(args: argparse.Namespace) -> int:
    from forensic_face.gui.app import main as gui_main

    return gui_main(case=args.case, exit_after_show=args.exit_after_show, models=args.models)


def _cmd_report(args: argparse.Namespace) -> int:
    from forensic_face.core.progress import console_progress
    from forensic_face.reports.pdf import write_report
    from forensic_face.store.case import Case

    chosen = None
    if args.analyses is not None:
        chosen = [a.strip() for a in args.analyses.split(",") if a.strip()]
        if not chosen:
            raise ForensicFaceError("--analyses takes analysis ids separated by commas, e.g. analysis-001,analysis-003")
    info = write_report(Case.open(args.dir), args.out, progress=console_progress(), analyses=chosen)
    if args.json:
        print(json.dumps(info.as_dict(), indent=2))
        return 0
    left = f"; left out: {', '.join(info.left_out)}" if info.left_out else ""
    print(f"report: {info.path} ({info.pages} pages, {info.analyses} analyses{left}, SHA-256 {info.sha256}; "
          f"logged in the case)")
    if not info.verified:
        print("warning: the case failed verification; the report lists the problems", file=sys.stderr)
    return 0


def _engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", help="model folder (default: resources/models)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16"],
                   help="the recognisers' arithmetic on the CPU (default auto: $FORENSIC_FACE_PRECISION where set, "
                        "else bfloat16 where the CPU multiplies it natively, about half the time; float32 gives the "
                        "same numbers on every machine); recorded with every result")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forensic-face",
        description="Face reconstruction and recognition from degraded CCTV frames and their audio.",
    )
    parser.add_argument("--version", action="version", version=f"forensic-face {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _gui_parser(sub)
    _demo_parser(sub)
    _bench_parser(sub)
    _case_parser(sub)
    _gallery_parser(sub)
    _analyze_parser(sub)
    _report_parser(sub)
    _train_parser(sub)
    _tune_sface_parser(sub)
    _join_sharp_parser(sub)
    _evaluate_parser(sub)
    return parser


def _gui_parser(sub) -> None:
    """`forensic-face gui`: the desktop application."""
    p = sub.add_parser("gui", help="the desktop application")
    p.add_argument("--case", help="open this case folder at start")
    p.add_argument("--models", help="model folder (default: resources/models)")
    p.add_argument("--exit-after-show", dest="exit_after_show", action="store_true",
                   help="quit as soon as the first window is painted (start-up timing)")
    p.set_defaults(func=_cmd_gui)


def _demo_parser(sub) -> None:
    """`forensic-face demo`: the bundled demo."""
    p = sub.add_parser("demo", help="build the bundled demo case, analyse it, print what was produced")
    p.add_argument("--out", default="forensic-face-demo", help="output folder (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="machine-readable summary on stdout")
    p.set_defaults(func=_cmd_demo)


def _bench_parser(sub) -> None:
    """`forensic-face bench`: per-stage latency."""
    p = sub.add_parser("bench", help="per-stage latency of the perception engine on this machine")
    p.add_argument("--repeats", type=int, default=15,
                   help="timed runs per stage after a warm-up (default: %(default)s)")
    p.add_argument("--fps", type=float, default=25.0, help="video frame rate for audio features (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="machine-readable figures on stdout")
    p.set_defaults(func=_cmd_bench)


def _case_parser(sub) -> None:
    """`forensic-face case`: case folders."""
    p = sub.add_parser("case", help="case folders: new, add evidence, verify, show the audit log")
    case_sub = p.add_subparsers(dest="case_command", metavar="CASE_COMMAND", required=True)
    c = case_sub.add_parser("new", help="create a new case folder")
    c.add_argument("dir")
    c.add_argument("--id", required=True, help="case number or reference")
    c.add_argument("--analyst", required=True, help="name of the analyst responsible")
    c.add_argument("--title", help="short description")
    c.add_argument("--json", action="store_true")
    c = case_sub.add_parser("add", help="copy evidence files into the case (hashed, read-only, logged)")
    c.add_argument("dir")
    c.add_argument("files", nargs="+")
    c.add_argument("--json", action="store_true")
    c = case_sub.add_parser("verify", help="check evidence, results, metadata and the audit chain; exit 1 naming "
                                           "problems; the run is recorded in the log")
    c.add_argument("dir")
    c.add_argument("--expect-head", dest="expect_head", metavar="SEQ:HASH",
                   help="the head printed by an earlier verify or report: fail if the log was rewritten since")
    c.add_argument("--no-log", dest="no_log", action="store_true",
                   help="do not record this verification in the case (e.g. on a copy you must not change)")
    c.add_argument("--json", action="store_true")
    c = case_sub.add_parser("keygen", help="make a unit key file that seals audit entries (set "
                                           "FORENSIC_FACE_AUDIT_KEY to its path)")
    c.add_argument("file", help="where to write the key (never inside a case)")
    c = case_sub.add_parser("withdraw", help="mark an analysis withdrawn, with the reason (logged; never deleted)")
    c.add_argument("dir")
    c.add_argument("analysis", help="analysis id, e.g. analysis-002")
    c.add_argument("--reason", required=True, help="why it is withdrawn (wrong gallery, wrong face box, ...)")
    c.add_argument("--json", action="store_true")
    c = case_sub.add_parser("note", help="add the analyst's note to an analysis (logged, printed in the report)")
    c.add_argument("dir")
    c.add_argument("analysis", help="analysis id, e.g. analysis-001")
    c.add_argument("text", help="the note")
    c.add_argument("--json", action="store_true")
    c = case_sub.add_parser("provenance", help="record where an evidence file came from (exhibit number, who "
                                               "handed it over, when); logged, shown in the report")
    c.add_argument("dir")
    c.add_argument("evidence", help="the evidence file's name in the case (see `case log`)")
    c.add_argument("--exhibit", help="exhibit number or reference")
    c.add_argument("--received-from", dest="received_from", help="who handed it over")
    c.add_argument("--received-at", dest="received_at", help="when it was received (as on the exhibit label)")
    c.add_argument("--json", action="store_true")
    c = case_sub.add_parser("log", help="print the audit log")
    c.add_argument("dir")
    c.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_case)


_GALLERY_HELP = ("a database file's path, or a PostgreSQL server's postgresql://[user@]host[:port]/database URL "
                 "(the password from PGPASSWORD or ~/.pgpass)")


def _gallery_parser(sub) -> None:
    """`forensic-face gallery`: the gallery database."""
    p = sub.add_parser("gallery", help="the gallery database: enroll a folder, info, search images, migrate",
                       description=f"A gallery is {_GALLERY_HELP}.")
    g_sub = p.add_subparsers(dest="gallery_command", metavar="GALLERY_COMMAND", required=True)
    c = g_sub.add_parser("enroll", help="enrol an LFW-style folder (one sub-folder per person); resumable")
    c.add_argument("db", help=_GALLERY_HELP)
    c.add_argument("folder")
    _engine_options(c)
    c.add_argument("--workers", type=_workers, metavar="N",
                   help="images prepared and embedded at once (default: one per usable core, at most 8)")
    c.add_argument("--json", action="store_true")
    c = g_sub.add_parser("info", help="people, images, embedding models, size")
    c.add_argument("db", help=_GALLERY_HELP)
    c.add_argument("--json", action="store_true")
    c = g_sub.add_parser("migrate", help="copy a gallery into another (SQLite file <-> PostgreSQL) and check the copy",
                         description="Copy every person, image, embedding and thumbnail of SOURCE into DESTINATION "
                                     "(created when missing), then check that both hold the same content (checksum "
                                     "of each model version's embeddings) and give the same searches for a sample "
                                     "of the gallery's own embeddings. Running it again completes an interrupted "
                                     "copy without duplicates.")
    c.add_argument("source", help=_GALLERY_HELP)
    c.add_argument("destination", help=_GALLERY_HELP)
    c.add_argument("--sample", type=int, default=100, help="embeddings searched in both (default %(default)s)")
    c.add_argument("--json", action="store_true")
    c = g_sub.add_parser("index", help="PostgreSQL galleries: build an approximate (HNSW) search index, or drop it",
                         description="Build the HNSW index of every model version of a PostgreSQL gallery; searches "
                                     "then use it (approximate, recorded in every result with its parameters). "
                                     "For the installed models' version, when they join a companion to the "
                                     "recogniser, a second index of the recogniser's values is built beside it: "
                                     "sharp probes (searched with the recogniser alone) use that one, blurred "
                                     "ones the first. --exact drops them: searches scan every embedding again.")
    c.add_argument("db", help="postgresql:// URL of the gallery")
    c.add_argument("--models", help="model folder whose version may take the second index (default: resources/models)")
    c.add_argument("--m", type=int, default=24, help="links per node (default %(default)s)")
    c.add_argument("--ef-construction", type=int, default=200, help="candidates while building (default %(default)s)")
    c.add_argument("--ef-search", type=int, default=200, help="candidates while searching (default %(default)s)")
    c.add_argument("--full-precision", dest="full_precision", action="store_true",
                   help="index the embeddings themselves instead of half-precision copies (a third larger)")
    c.add_argument("--build-memory", dest="build_memory", metavar="SIZE",
                   help="memory the index's graph may take while it is built (maintenance_work_mem, e.g. 8GB; "
                        "default: the server's setting, at least 2GB); a graph that outgrows it is built far slower, "
                        "and the command says so")
    c.add_argument("--exact", action="store_true", help="drop the index: search exactly")
    c = g_sub.add_parser(
        "search", help="look up face images (degraded or not), without a case: files or folders, the model loaded once",
        description="Search the gallery for each probe image: the face is detected, aligned, reconstructed and "
                    "embedded, and the gallery's people ranked. A probe that cannot be searched (unreadable, no "
                    "face) gets its own line or row saying why, and the others go on; a progress line goes to "
                    "stderr when there are several probes.",
        epilog="Exit status: 0 when every probe was searched, 1 when any could not be (or the gallery or the "
               "models could not be used), 2 for bad usage.")
    c.add_argument("db", help=_GALLERY_HELP)
    c.add_argument("images", nargs="+", metavar="IMAGE",
                   help="probe image file, or a folder: every image file under it (sub-folders included)")
    c.add_argument("--audio", help="audio file recorded with the image (one probe image only)")
    c.add_argument("--top", type=_top_k, default=10, help="candidates to list, 1 to 1000 (default %(default)s)")
    _fpir_option(c)
    _engine_options(c)
    form = c.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="one JSON object per probe and line (JSON Lines)")
    form.add_argument("--csv", action="store_true",
                      help="CSV: a header, then one row per probe with its first --top candidates")
    p.set_defaults(func=_cmd_gallery)


def _analyze_parser(sub) -> None:
    """`forensic-face analyze`: the analysis of one frame of a case."""
    p = sub.add_parser("analyze", help="detect, reconstruct and search one frame of a case; results saved")
    p.add_argument("dir", help="case folder")
    p.add_argument("--gallery", help=f"gallery to search: {_GALLERY_HELP}")
    p.add_argument("--frame", help="image or video evidence (default: the first)")
    p.add_argument("--audio", help="audio evidence (default: the first, if any)")
    p.add_argument("--no-audio", dest="no_audio", action="store_true", help="reconstruct without audio")
    p.add_argument("--box", help="face box x0,y0,x1,y1 in frame pixels, when detection fails")
    p.add_argument("--rotate", type=int, choices=(0, 90, 180, 270), default=0, metavar="DEGREES",
                   help="turn the frame clockwise by 90, 180 or 270 degrees first (a camera hung sideways); "
                        "--box is then in the turned frame")
    p.add_argument("--time", type=_seconds, help="video: analyse the frame at this time (s)")
    p.add_argument("--clip", action="store_true",
                   help="video: follow the person through the clip and pool the best frames of the track (instead of "
                        "one frame); with --box and --seed-frame, follow the face drawn there")
    p.add_argument("--track", type=int,
                   help="with --clip: the track to pool (default: the one whose frames weigh most)")
    p.add_argument("--list-tracks", dest="list_tracks", action="store_true",
                   help="with --clip: list the people followed through the clip (or --from/--to) and stop; nothing "
                        "is analysed or written")
    p.add_argument("--seed-frame", dest="seed_frame", type=int, help="with --clip and --box: the frame number the box "
                                                                     "is on")
    p.add_argument("--from", dest="start_s", type=_seconds, help="with --clip: start of the time range (s)")
    p.add_argument("--to", dest="end_s", type=_seconds, help="with --clip: end of the time range (s)")
    p.add_argument("--pool", type=_top_k, default=16, help="with --clip: most frames pooled (default %(default)s)")
    p.add_argument("--top", type=_top_k, default=10, help="candidates to list, 1 to 1000 (default %(default)s)")
    _fpir_option(p)
    _engine_options(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_analyze)


def _report_parser(sub) -> None:
    """`forensic-face report`: the case report."""
    p = sub.add_parser("report", help="the case report as PDF (verifies the case first; logged in the case)")
    p.add_argument("dir", help="case folder")
    p.add_argument("--out", required=True, help="PDF file to write")
    p.add_argument("--analyses", help="the analyses to put in, by id, separated by commas (default: all); the "
                                      "report names the others as left out")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_report)


def _train_parser(sub) -> None:
    """`forensic-face train`: training."""
    p = sub.add_parser("train", help="train the fusion autoencoder and the recogniser on an LFW-style folder")
    p.add_argument("--data", help="folder with one sub-folder per person (default: ../shared/data/lfw)")
    p.add_argument("--out", default="runs/train", help="checkpoints and history (default: %(default)s)")
    p.add_argument("--export", help="where to write the calibrated models (default: resources/models)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--ae-epochs", dest="ae_epochs", type=int,
                   help="epochs of the autoencoder alone after the joint schedule (default 50)")
    p.add_argument("--ae-lr", dest="ae_lr", type=float, help="peak learning rate of the autoencoder-only epochs")
    p.add_argument("--ae-batch", dest="ae_batch", type=int,
                   help="batch size of the autoencoder-only epochs (default: --batch)")
    p.add_argument("--rec-epochs", dest="rec_epochs", type=int,
                   help="epochs of the recogniser alone on the final autoencoder's output (last phase; default 4)")
    p.add_argument("--rec-lr", dest="rec_lr", type=float, help="peak learning rate of the recogniser-only epochs")
    p.add_argument("--batch", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--size", type=int, help="input side in pixels (multiple of 16)")
    p.add_argument("--variants", type=int, help="degraded variants prepared per image")
    p.add_argument("--mse-weight", dest="mse_weight", type=float, help="weight of the reconstruction MSE")
    p.add_argument("--id-weight", dest="id_weight", type=float, help="identity loss reaching the autoencoder")
    p.add_argument("--ae-id-weight", dest="ae_id_weight", type=float,
                   help="identity loss through the frozen recogniser in the autoencoder-only epochs")
    p.add_argument("--init", dest="init_from", metavar="BUNDLE",
                   help="start from the networks of this model bundle (its architecture) instead of from scratch; "
                   "the ArcFace head starts afresh (a bundle holds none)")
    p.add_argument("--arc-weight", dest="arc_weight", type=float, help="weight of the ArcFace loss")
    p.add_argument("--arc-prototypes", dest="arc_prototypes", choices=["learned", "teacher"],
                   help="ArcFace class centres: learned, or fixed at the classes' mean teacher embedding")
    p.add_argument("--distill-weight", dest="distill_weight", type=float, help="weight of the teacher distillation")
    p.add_argument("--relation-weight", dest="relation_weight", type=float,
                   help="weight of matching the batch's probe-to-gallery cosines to the teacher's")
    p.add_argument("--raw-teacher", dest="teacher_centre", action="store_const", const=False,
                   help="distil towards dlib's raw descriptors instead of centred ones")
    p.add_argument("--ae-residual", dest="ae_residual", action="store_const", const=True,
                   help="the autoencoder learns a correction added to its input before the sigmoid")
    p.add_argument("--ae-width", dest="ae_width", type=int)
    p.add_argument("--ae-blocks", dest="ae_blocks", type=int, help="residual blocks at the autoencoder's bottleneck")
    p.add_argument("--rec-width", dest="rec_width", type=int)
    p.add_argument("--rec-depth", dest="rec_depth", type=int, help="residual blocks per recogniser stage")
    p.add_argument("--blends", type=int, help="add this many teacher-labelled blends of two training faces "
                   "(distillation only; see forensic_face.training.blends)")
    p.add_argument("--max-images", dest="max_images", type=int, help="train on a seeded subset (quick trials)")
    p.add_argument("--time-limit", dest="time_limit_s", type=float, help="stop after this many seconds")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--seed", type=int)
    p.add_argument("--workers", type=int, default=2, help="processes for data preparation (default: %(default)s)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_train)


def _tune_sface_parser(sub) -> None:
    """`forensic-face tune-sface`: the SFace student for degraded probes."""
    p = sub.add_parser("tune-sface", help="distil SFace into a recogniser for degraded probes (training people only)")
    p.add_argument("--data", help="folder with one sub-folder per person (default: ../shared/data/lfw)")
    p.add_argument("--onnx", help="SFace's ONNX file (default: ../shared/weights, or $FORENSIC_FACE_WEIGHTS)")
    p.add_argument("--out", default="runs/sface", help="crops, frozen features, checkpoints (default: %(default)s)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--variants", type=int, help="degraded copies per training image")
    p.add_argument("--frozen-blocks", dest="frozen_blocks", type=int, help="blocks kept as published (default 6)")
    p.add_argument("--batch", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--margin-weight", dest="margin_weight", type=float)
    p.add_argument("--fresh", action="store_true",
                   help="degrade every training image anew each epoch (no degraded copy seen twice) instead of "
                        "drawing one of --variants copies made once")
    p.add_argument("--bfloat16", action="store_true",
                   help="run the networks' products in bfloat16 while tuning (float32 weights and optimiser)")
    p.add_argument("--teacher-share", dest="teacher_share", type=float,
                   help="after tuning, move the student's weights this share of the way back to the teacher's "
                        "(0 .. 1; default 0); a finished run is moved without tuning again")
    p.add_argument("--seed", type=int)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--workers", type=int, default=2, help="processes for cropping (default: %(default)s)")
    p.add_argument("--export", metavar="DIR",
                   help="after tuning: write a model bundle to DIR with the student as its recogniser, the "
                        "autoencoder of --base, calibrated on the calibration people")
    p.add_argument("--base", help="with --export: the bundle whose autoencoder is kept (default: the installed models)")
    p.add_argument("--no-mirror", dest="no_mirror", action="store_true",
                   help="with --export: embed each face once, without averaging it with its mirror image's "
                        "(half the recogniser's time)")
    p.add_argument("--companion", metavar="BUNDLE",
                   help="with --export: join the recogniser of BUNDLE (the project's CNN of the reconstruction) to "
                        "the student's as a companion")
    p.add_argument("--companion-weight", dest="companion_weight", type=float,
                   help="the companion's share of the joined similarity (default: chosen on the calibration people)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_tune_sface)


def _join_sharp_parser(sub) -> None:
    """`forensic-face join-sharp`: SFace as published for sharp probes, joined to a bundle."""
    p = sub.add_parser("join-sharp", help="join SFace as published to a joined bundle for sharp probes (its share "
                                          "chosen on the calibration people, the calibration refitted)")
    p.add_argument("--data", help="LFW-style folder (default: ../shared/data/lfw)")
    p.add_argument("--models", help="the joined bundle (default: the installed models)")
    p.add_argument("--out", help="where the bundle is written (default: --models, replaced)")
    p.add_argument("--onnx", help="SFace's ONNX file (default: ../shared/weights, or $FORENSIC_FACE_WEIGHTS)")
    p.add_argument("--share", type=float, help="its share T of the recogniser side for a sharp probe (with --ramp; "
                                               "default: chosen on the calibration people)")
    p.add_argument("--ramp", type=float, help="how far below the companion's sharp end (in q) its share falls to 0")
    p.add_argument("--cross", type=float, default=0.0,
                   help="the share b of the recogniser's cosine taken against the gallery face's SFace embedding "
                        "(the student's probe against the teacher's gallery face; default: %(default)s, none)")
    p.add_argument("--workers", type=int, default=2, help="processes for cropping (default: %(default)s)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_join_sharp)


def _evaluate_parser(sub) -> None:
    """`forensic-face evaluate`: the evaluation."""
    p = sub.add_parser("evaluate", help="DESIGN.md's evaluation on identity-disjoint pairs, with dlib's reference")
    p.add_argument("--data", help="LFW-style folder (default: ../shared/data/lfw)")
    p.add_argument("--out", required=True, help="JSON report; plots are written beside it")
    _engine_options(p)
    p.add_argument("--clips", action="store_true",
                   help="evaluate synthetic clips of 1-16 frames instead (pooled templates; their calibration is "
                        "fitted on the calibration people and stored in the models first when they lack one)")
    p.add_argument("--refit", action="store_true", help="with --clips: fit the clips' calibration again")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_evaluate)



def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except CancelledError:
        print("forensic-face: cancelled", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("forensic-face: interrupted", file=sys.stderr)
        return 130
    except ForensicFaceError as exc:
        if args.debug:
            raise
        print(f"forensic-face: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the file system refused: say which file and what to do
        if args.debug:
            raise
        print(f"forensic-face: error: {describe_os_error(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the CLI contract: one line, no traceback without --debug
        if args.debug:
            raise
        print(f"forensic-face: internal error: {type(exc).__name__}: {exc} (run with --debug for details)",
              file=sys.stderr)
        return 1
