"""10M embeddings on PostgreSQL, exact search measured where the earlier runs extrapolated (issue 22).

``research.pg_gallery_bench scale`` holds all its synthetic embeddings in memory (10M x 384 float32 is 15 GB, this
machine has 23 GB in all) and builds HNSW indexes (hours at 10M on 2 cores), so 10M was fitted from 100k-3M. This
makes the same kind of data a chunk at a time (``--chunk`` embeddings): each person's centre drawn from a Gaussian
with the mean and covariance of the shipped bundle's DevTest gallery embeddings (float32; as ``research.pg_ivf``
makes them), each image that centre plus isotropic noise of a third of its spread, a Poisson(4) number of images per
person (people drawn with none left out), unit length; loaded through ``PostgresGallery.bulk_add`` in batches of
100k, as the scale bench loads. Then, with no index: the loading rate, VACUUM ANALYZE, disk size, the gallery
identity's first read (its content checksum over every embedding), and exact searches through the product's
``search_gallery`` (median and 95th percentile of ``--probes`` single searches, and searches per second with two
threads), the probes noisy copies of stored embeddings (an exact search's cost does not depend on the probe).

With ``--hnsw M:EF_CONSTRUCTION``, an HNSW index of the whole embeddings (halfvec, as ``gallery index`` builds it)
is then built through ``PostgresGallery.build_index`` in ``--build-memory`` (its progress, rows in the graph as
``pg_stat_progress_create_index`` reports them, printed each minute), and ``--probes`` probes (noisy copies of stored
embeddings, as above) searched at each ``--ef-search`` after ``--warm`` untimed searches of other probes: median and
95th percentile, searches per second with two threads, what a search's time is made of, and people recall@10
against the exact ten nearest people. Exact search at this size takes most of a minute, so the exact ten are
computed in memory while the data are made (each person's best inner product over their embeddings, float32), and
checked against the product's exact search for the ``--exact-probes`` first probes before the index is built.
Prints JSON lines, the last the whole result.

    nice .venv/bin/python -m research.pg_10m --size 10000000 --folder /tmp/pg10m > research/pg_bench/exact-10m.txt
    .venv/bin/python -m research.pg_10m --size 10000000 --folder /tmp/pg10m --probes 100 --exact-probes 2 --warm 50 \
        --hnsw 16:64 --ef-search 100 200 400 800 --build-memory 16GB > research/pg_bench/hnsw-10m.txt
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from forensic_face.models.calibration import MatchCalibration
from forensic_face.paths import models_dir
from forensic_face.store.gallery import open_gallery
from research.pg_gallery_bench import (
    _breakdown,
    _latency,
    after_load,
    new_database,
    probes_for,
    set_ef_search,
    start_server,
)
from research.pg_ivf import like_embeddings

BATCH = 100_000


def chunks(n: int, chunk: int, like: np.ndarray, seed: int = 0):
    """(vectors, person numbers) of ``n`` embeddings, ``chunk`` at a time; person numbers run on across chunks."""
    rng = np.random.default_rng(seed)
    mean, cov = like.mean(0), np.cov(like, rowvar=False)
    spread = float(np.sqrt(np.trace(cov) / like.shape[1])) / 3
    made, first_person = 0, 0
    while made < n:
        people = max(1, chunk // 4)
        centres = rng.multivariate_normal(mean, cov, people).astype(np.float32)
        owner = np.repeat(np.arange(people), rng.poisson(4, people))[: n - made]
        vectors = centres[owner] + spread * rng.standard_normal((owner.size, like.shape[1]), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        yield vectors, owner + first_person
        made += owner.size
        first_person += people


class NearestPeople:
    """The exact ``k`` nearest people of each probe, by their best inner product, gathered a chunk at a time (a
    chunk holds whole people, in order)."""

    def __init__(self, probes: np.ndarray, k: int = 10) -> None:
        self.probes, self.k = probes, k
        self.best = np.full((len(probes), 0), -np.inf, np.float32)
        self.people = np.zeros((len(probes), 0), np.int64)

    def add(self, vectors: np.ndarray, owner: np.ndarray) -> None:
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        best = np.maximum.reduceat(vectors @ self.probes.T, starts, axis=0).T  # (probes, people of the chunk)
        best = np.concatenate([self.best, best], axis=1)
        people = np.concatenate([self.people, np.broadcast_to(owner[starts], (len(self.probes), len(starts)))], axis=1)
        keep = np.argsort(-best, axis=1, kind="stable")[:, :self.k]
        self.best, self.people = np.take_along_axis(best, keep, 1), np.take_along_axis(people, keep, 1)

    def names(self, i: int) -> list[str]:
        return [f"P{int(n):09d}" for n in self.people[i]]


def _progress(url: str, stop: threading.Event) -> None:
    """Print the index build's rows in the graph each minute (its own connection)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        while not stop.wait(60):
            row = db.execute("SELECT phase, tuples_done, blocks_done, blocks_total FROM "
                             "pg_stat_progress_create_index").fetchone()
            if row is not None:
                print(json.dumps({"build": row[0], "tuples_done": row[1], "blocks": [row[2], row[3]],
                                  "at": time.strftime("%H:%M:%S")}), flush=True)


def hnsw(g, url: str, cal, m: int, ef_construction: int, build_memory: str, probes: np.ndarray, warm: np.ndarray,
         truth: NearestPeople, efs: list[int]) -> dict:
    """The whole embeddings' index built and searched at each ef_search (as ``research.pg_gallery_bench``'s)."""
    out: dict = {"m": m, "ef_construction": ef_construction, "vectors": "halfvec", "build_memory": build_memory}
    stop = threading.Event()
    watch = threading.Thread(target=_progress, args=(url, stop), daemon=True)
    watch.start()
    t0 = time.perf_counter()
    try:
        build = g.build_index("bench", m=m, ef_construction=ef_construction, ef_search=efs[0], vectors="halfvec",
                              build_memory=build_memory)
    finally:
        stop.set()
    out["build_s"] = round(time.perf_counter() - t0, 1)
    out["graph_spilled_after"] = build.spilled_after  # None: the graph was built in memory throughout
    out["disk_mb_with_index"] = round(g.info()["size_bytes"] / 1e6)
    out["index_mb"] = round(g._db.execute("SELECT pg_relation_size(index_name::regclass) FROM "
                                          "forensic_face.search_index").fetchone()[0] / 1e6)
    print(json.dumps(out), flush=True)
    for ef in efs:
        set_ef_search(g, ef)
        for q in warm:
            g.rank("bench", q, 10)
        ms, p95, qps, approx = _latency(g, cal, probes, 150.0)
        found = [len({c.person for c in a.candidates} & set(truth.names(i))) for i, a in enumerate(approx)]
        out[f"ef_search_{ef}"] = {
            "median_ms": round(ms, 2), "p95_ms": round(p95, 2), "searches_per_s_2_threads": round(qps, 2),
            "searched_on": sorted({a.gallery["search"]["mode"] for a in approx}),
            "people_recall_at_10": round(sum(found) / (truth.k * len(approx)), 4),
            "same_first_candidate": round(float(np.mean([a.candidates[0].person == truth.names(i)[0]
                                                         for i, a in enumerate(approx)])), 4),
            **_breakdown(g, probes[:20])}
        print(json.dumps({f"ef_search_{ef}": out[f"ef_search_{ef}"]}), flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=10_000_000)
    ap.add_argument("--chunk", type=int, default=1_000_000)
    ap.add_argument("--probes", type=int, default=20)
    ap.add_argument("--folder", type=Path, default=None)
    ap.add_argument("--hnsw", default=None, metavar="M:EF_CONSTRUCTION", help="build this index and search it")
    ap.add_argument("--ef-search", type=int, nargs="+", default=[100, 200, 400, 800])
    ap.add_argument("--exact-probes", type=int, default=None,
                    help="exact searches (default --probes; with --hnsw, the check of the exact ten made in memory)")
    ap.add_argument("--warm", type=int, default=50, help="with --hnsw: untimed searches before each ef_search")
    ap.add_argument("--build-memory", default="5GB", help="the server's maintenance_work_mem")
    args = ap.parse_args()
    cal = MatchCalibration.from_dict(json.loads((models_dir() / "models.json").read_text())["calibration"])
    like = like_embeddings()
    work = args.folder or Path(tempfile.mkdtemp(prefix="pg-10m-"))
    work.mkdir(parents=True, exist_ok=True)
    server, url = start_server(work, build_memory=args.build_memory)
    out: dict = {"size": args.size, "like": f"DevTest gallery, {len(like)} x {like.shape[1]}", "chunk": args.chunk}
    try:
        with open_gallery(new_database(url, "bench_10m"), mode="create") as g:
            load_s, loaded, people, kept, truth = 0.0, 0, 0, None, None
            for vectors, owner in chunks(args.size, args.chunk, like):
                if kept is None:
                    kept = vectors[:10_000].copy()
                    probes = probes_for(kept, args.probes, noise=0.04)
                    warm = probes_for(kept, args.warm, seed=2, noise=0.04)
                    truth = NearestPeople(probes) if args.hnsw else None
                if truth is not None:
                    truth.add(vectors, owner)
                t0 = time.perf_counter()
                for s in range(0, len(vectors), BATCH):
                    idx = owner[s:s + BATCH]
                    used = np.unique(idx)
                    g.bulk_add("bench", [f"P{i:09d}" for i in used], np.searchsorted(used, idx),
                               vectors[s:s + BATCH], [f"<{loaded + s + k}>" for k in range(len(idx))])
                load_s += time.perf_counter() - t0
                loaded += len(vectors)
                people += int(np.unique(owner).size)
                print(json.dumps({"loaded": loaded, "embeddings_per_s": round(loaded / load_s)}), flush=True)
            out["people"] = people
            out["load_embeddings_per_s"] = round(args.size / load_s)
            out |= after_load(g)
            print(json.dumps(out), flush=True)
            exact = probes[:args.probes if args.exact_probes is None else args.exact_probes]
            ms, p95, qps, outcomes = _latency(g, cal, exact, 150.0)
            out["exact"] = {"median_ms": round(ms, 1), "p95_ms": round(p95, 1),
                            "searches_per_s_2_threads": round(qps, 3), "probes": len(exact)}
            if truth is not None:
                out["exact"]["same_ten_as_in_memory"] = {
                    "people": sum({c.person for c in o.candidates} == set(truth.names(i))
                                  for i, o in enumerate(outcomes)),
                    "in_order": sum([c.person for c in o.candidates] == truth.names(i) for i, o in enumerate(outcomes))}
                print(json.dumps(out), flush=True)
                m, efc = (int(v) for v in args.hnsw.split(":"))
                out["hnsw"] = hnsw(g, url.format("bench_10m"), cal, m, efc, args.build_memory, probes, warm, truth,
                                   args.ef_search)
    finally:
        server.stop()
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
