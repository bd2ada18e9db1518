"""kill -9 trials of the commands that write: `case add`, `analyze`, `gallery enroll` and `report`.

Each trial runs the real command line in a child process that kills itself with SIGKILL at a chosen
point of its writes: just before or just after its k-th rename (every atomic write of this tool
ends in one: case.json, audit.log, evidence, results, the PDF), k drawn over all the renames the
command makes, so every write phase is hit. `gallery enroll` writes through SQLite, which renames
nothing: it is killed at a random time over its measured run instead.

After every kill the script checks, with the tool's own verification and by hand:
- the case verifies (an interrupted change may be a note, never a problem), and after the next
  change (a logged verification, which finishes or removes the interrupted one) it verifies with no
  note left: no broken case;
- every evidence file there before is still there with its hash, and a new one is whole or absent:
  no lost evidence;
- every analysis the log records has all its files, and no staged analysis is left unlogged after
  the next change: no unreported half-analysis;
- a report is absent or a whole PDF; a gallery passes SQLite's integrity check and, resumed, ends
  with exactly the content of an uninterrupted enrolment (same identity checksum).

    .venv/bin/python scripts/kill_trials.py --trials 60 --out /tmp/kill-trials   # 60 per command (240 in all)

Prints one line per command (trials, where they were killed, failures) and exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

HOOK = r"""
import os, signal, sys
K, WHEN = int(os.environ.get("KT_K", "0")), os.environ.get("KT_WHEN", "never")
real, count = os.replace, [0]
def replace(a, b):
    count[0] += 1
    if count[0] == K and WHEN == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    real(a, b)
    if count[0] == K and WHEN == "after":
        os.kill(os.getpid(), signal.SIGKILL)
os.replace = replace
import atexit
atexit.register(lambda: print(f"KT_REPLACES {count[0]}", file=sys.stderr))
from forensic_face.cli import main
code = main(sys.argv[1:])
sys.stderr.flush()
sys.exit(code)
"""


def run_cli(args: list[str], k: int = 0, when: str = "never", kill_after_s: float | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "KT_K": str(k), "KT_WHEN": when}
    proc = subprocess.Popen([sys.executable, "-c", HOOK, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    if kill_after_s is not None:
        try:
            out, err = proc.communicate(timeout=kill_after_s)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            out, err = proc.communicate()
    else:
        out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def replaces(res: subprocess.CompletedProcess) -> int:
    for line in res.stderr.splitlines():
        if line.startswith("KT_REPLACES"):
            return int(line.split()[1])
    raise RuntimeError(f"no count of renames (exit {res.returncode}): {res.stderr[-2000:]}")


# ------------------------------------------------------------------------------------------------ checks
def case_state(root: Path) -> dict:
    from forensic_face.store.case import Case

    case = Case.open(root)
    return {"evidence": {e.name: e.sha256 for e in case.evidence},
            "analyses": [a.analysis_id for a in case.analyses()], "entries": len(case.read_log())}


def check_case(root: Path, before: dict) -> list[str]:
    """Failures after a kill: the case verifies (notes allowed), then after a logged verification, clean."""
    from forensic_face.store.case import Case

    fails = []
    report = Case.open(root).verify()
    if not report.ok:
        fails.append("broken case after the kill: " + "; ".join(report.problems))
    now = case_state(root)
    lost = [n for n, h in before["evidence"].items() if now["evidence"].get(n) != h]
    if lost:
        fails.append(f"evidence lost or changed: {lost}")
    if len(now["evidence"]) - len(before["evidence"]) > 1:
        fails.append("more evidence than the command added")
    case = Case.open(root)
    try:
        case.log_verification(report)  # the next change: finishes or removes what the kill left
    except Exception as exc:  # noqa: BLE001 - a failure to record is itself a finding
        fails.append(f"the next change was refused: {exc}")
    report = Case.open(root).verify()
    if not report.ok or report.notes:
        fails.append("not clean after the next change: " + "; ".join(report.problems + report.notes))
    for ref in Case.open(root).analyses():
        if ref.record is None or not ref.record.is_file():
            fails.append(f"{ref.analysis_id}: logged without its record")
            continue
        try:
            json.loads(ref.record.read_text())
        except ValueError:
            fails.append(f"{ref.analysis_id}: its record is not whole JSON")
    if any(p.name.startswith(".partial-") for p in (root / "results").iterdir()):
        fails.append("a staged analysis was left after the next change")
    ids = case_state(root)["analyses"]
    if len(ids) != len(set(ids)):
        fails.append(f"an analysis id was used twice: {ids}")
    return fails


# ------------------------------------------------------------------------------------------------ material
def make_material(work: Path) -> dict:
    """The demo (case with a CCTV still and audio, a gallery of three people), and sources to add."""
    demo = work / "demo"
    if not (demo / "case" / "case.json").is_file():
        res = run_cli(["demo", "--out", str(demo)])
        if res.returncode != 0:
            raise SystemExit(f"demo failed: {res.stderr[-2000:]}")
    sources = work / "sources"
    sources.mkdir(exist_ok=True)
    people = work / "people"
    if not people.exists():
        for person in (demo / "gallery_people").iterdir():
            dest = people / person.name
            dest.mkdir(parents=True)
            img = cv2.imread(str(next(person.iterdir())))
            for i, scale in enumerate((1.0, 0.8, 0.6, 0.5)):  # each person at four sizes: 12 images
                small = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                cv2.imwrite(str(dest / f"{person.name}_{i:04d}.jpg"), small)
    return {"demo": demo, "sources": sources, "people": people}


def fresh_case(material: dict, dest: Path) -> Path:
    if dest.exists():
        for p in dest.rglob("*"):
            if p.is_file():
                p.chmod(0o644)
        shutil.rmtree(dest)
    shutil.copytree(material["demo"] / "case", dest, ignore=shutil.ignore_patterns(".lock"))
    return dest


def new_source(material: dict, i: int, rng: random.Random) -> Path:
    path = material["sources"] / f"src_{i:04d}.jpg"
    img = np.random.default_rng(i).integers(0, 255, (rng.randint(200, 900), rng.randint(200, 900), 3), np.uint8)
    cv2.imwrite(str(path), img)
    return path


# ------------------------------------------------------------------------------------------------ trials
def trials_on_case(op: str, material: dict, work: Path, n: int, rng: random.Random) -> tuple[Counter, list[str]]:
    root = fresh_case(material, work / f"case-{op}")
    gallery = material["demo"] / "gallery.db"
    out_pdf = work / f"report-{op}.pdf"

    def args(i: int) -> list[str]:
        if op == "add":
            return ["case", "add", str(root), str(new_source(material, i, rng))]
        if op == "analyze":
            return ["analyze", str(root), "--gallery", str(gallery), "--top", "3"]
        return ["report", str(root), "--out", str(out_pdf)]

    dry = run_cli(args(0))
    if dry.returncode != 0:
        raise SystemExit(f"{op}: the uninterrupted run failed: {dry.stderr[-2000:]}")
    total = replaces(dry)
    tally, fails = Counter(), []
    for i in range(1, n + 1):
        if len(case_state(root)["analyses"]) > 30 or case_state(root)["entries"] > 400:
            root = fresh_case(material, root)  # keep each trial's case small
        before = case_state(root)
        k, when = rng.randint(1, total), rng.choice(("before", "after"))
        old_pdf = out_pdf.read_bytes() if out_pdf.exists() else None
        res = run_cli(args(i), k, when)
        tally["killed" if res.returncode == -signal.SIGKILL else f"exit {res.returncode}"] += 1
        tally["phase_" + f"{k:02d}{when[0]}"] += 1  # k-th rename, (b)efore or (a)fter it
        problems = check_case(root, before)
        if op == "report" and out_pdf.exists():
            data = out_pdf.read_bytes()
            if data != old_pdf and not (data.startswith(b"%PDF") and data.rstrip().endswith(b"%%EOF")):
                problems.append("the report file is not a whole PDF")
        fails += [f"{op} trial {i} (rename {k}/{total} {when}): {p}" for p in problems]
    return tally, fails


def trials_enroll(material: dict, work: Path, n: int, rng: random.Random) -> tuple[Counter, list[str]]:
    import sqlite3

    from forensic_face.engine.inference import FaceEngine
    from forensic_face.store.gallery import open_gallery

    version = FaceEngine().info.version
    ref_db = work / "enroll-ref.db"
    for p in work.glob("enroll-*.db*"):
        p.unlink()
    t0 = time.perf_counter()
    res = run_cli(["gallery", "enroll", str(ref_db), str(material["people"])])
    duration = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"enroll: the uninterrupted run failed: {res.stderr[-2000:]}")
    with open_gallery(ref_db, mode="read") as g:
        reference = g.identity(version)["content_sha256"]
    tally, fails = Counter(), []
    for i in range(1, n + 1):
        db = work / "enroll-trial.db"
        for p in work.glob("enroll-trial.db*"):
            p.unlink()
        at = rng.uniform(0.3, 1.0) * duration  # start-up (imports, model loading) takes most of the run
        res = run_cli(["gallery", "enroll", str(db), str(material["people"])], kill_after_s=at)
        tally["killed" if res.returncode == -signal.SIGKILL else f"exit {res.returncode}"] += 1
        tally["phase_" + ("no file yet" if not db.exists() else "during enrolment")] += 1
        if db.exists():
            try:
                with sqlite3.connect(db) as con:
                    ok = con.execute("PRAGMA integrity_check").fetchone()[0]
                if ok != "ok":
                    fails.append(f"enroll trial {i}: integrity check {ok}")
            except sqlite3.DatabaseError as exc:
                fails.append(f"enroll trial {i}: the database is damaged ({exc})")
        again = run_cli(["gallery", "enroll", str(db), str(material["people"])])
        if again.returncode != 0:
            fails.append(f"enroll trial {i}: resuming failed: {again.stderr[-500:]}")
            continue
        with open_gallery(db, mode="read") as g:
            got = g.identity(version)["content_sha256"]
        if got != reference:
            fails.append(f"enroll trial {i} (killed at {at:.2f} s): resumed content differs from an uninterrupted run")
    return tally, fails


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=60, help="trials per command (default %(default)s)")
    parser.add_argument("--ops", default="add,analyze,enroll,report")
    parser.add_argument("--out", default="/tmp/forensic-face-kill-trials", help="work folder")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.ERROR)  # the recoveries this provokes are logged in each case, not here
    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    material = make_material(work)
    all_fails, total = [], 0
    for op in args.ops.split(","):
        t0 = time.perf_counter()
        if op == "enroll":
            tally, fails = trials_enroll(material, work, args.trials, rng)
        else:
            tally, fails = trials_on_case(op, material, work, args.trials, rng)
        total += args.trials
        phases = sorted((k[6:], v) for k, v in tally.items() if k.startswith("phase_"))
        killed = tally["killed"]
        print(f"{op:8s} {args.trials:4d} trials, {killed} killed, {len(phases)} distinct kill points "
              f"({', '.join(f'{p} x{v}' for p, v in phases)}), {len(fails)} failures, "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        all_fails += fails
    for f in all_fails:
        print("FAIL", f)
    print(f"{total} trials, {len(all_fails)} failures: "
          + ("no broken case, no lost evidence, no unreported half-analysis" if not all_fails else "see FAIL lines"))
    return 1 if all_fails else 0


if __name__ == "__main__":
    sys.exit(main())
