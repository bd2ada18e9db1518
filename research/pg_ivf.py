"""pgvector's IVFFlat index against the goal HNSW missed (issue 22: recall@10 >= 0.99 within 10 ms at 1M).

The same data as ``research.pg_gallery_bench scale --like``: synthetic embeddings shaped like the shipped join's
gallery embeddings (here made directly: the DevTest gallery, 696 clean faces, embedded in float32), ~4 per
person, and probes that are a stored vector plus noise, as the join's queries at companion share 0 (a sharp probe:
the student's 128 values only) and 0.2 (a blurred one: all 256). Exact people ranking (the gallery's own exact
search, no index) is the truth. For each number of lists, two IVFFlat indexes side by side, as ``gallery index``
builds HNSW ones: the first 128 values (sharp probes) and the whole vectors (blurred ones), halfvec, inner product;
then each probe set searched through the index that serves it at several ``ivfflat.probes``: the nearest
``--limit`` embeddings, their people, the best 10 people by the full vectors' inner product (as the HNSW search
ranks them). People recall@10 against exact, median and 95th-percentile latency of that query (one connection,
warm), build time and size.

    nice .venv/bin/python -m research.pg_ivf --size 1000000 --lists 1000 --probes 16 64 256
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from forensic_face.store.gallery import open_gallery
from research.pg_gallery_bench import _load, new_database, probes_for, start_server, synthetic


def like_embeddings() -> np.ndarray:
    """The shipped join's gallery embeddings of the DevTest gallery (one clean image per person), float32."""
    from forensic_face.engine.inference import FaceEngine
    from forensic_face.paths import shared_data_dir
    from forensic_face.training.evaluate import gallery_embeddings, identification_sets
    from forensic_face.training.split import load_split_data

    index, split, cache = load_split_data(shared_data_dir() / "lfw")
    engine = FaceEngine(device="cpu", precision="float32")
    return gallery_embeddings(engine, index, cache, identification_sets(split.test_pairs).gallery_paths)


def exact_top(g, q: np.ndarray, k: int = 10) -> list[str]:
    ranking = g.rank("bench", q, k)
    order = np.argsort(-ranking.best, kind="stable")[:k]
    return [ranking.people[i] for i in order]


def ivf_top(db, q: np.ndarray, dim: int, limit: int, k: int = 10) -> list[str]:
    x = "vector" if dim == q.size else f"subvector(vector, 1, {dim})"
    rows = db.execute(
        "SELECT DISTINCT ON (r.person_id) p.name, -r.d FROM (SELECT person_id, vector <#> %b AS d FROM "
        f"(SELECT person_id, vector FROM embeddings WHERE model_version = 'bench' ORDER BY {x}::halfvec({dim}) "
        f"<#> %b::halfvec({dim}) LIMIT {int(limit)}) n) r JOIN people p ON p.id = r.person_id "
        "ORDER BY r.person_id, r.d", (q, q[:dim])).fetchall()
    rows.sort(key=lambda r: -r[1])
    return [r[0] for r in rows[:k]]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1_000_000)
    ap.add_argument("--lists", type=int, nargs="+", default=[1000])
    ap.add_argument("--probes", type=int, nargs="+", default=[8, 16, 32, 64])
    ap.add_argument("--searches", type=int, default=100)
    ap.add_argument("--limit", type=int, default=200, help="embeddings taken from the index per search")
    ap.add_argument("--folder", type=Path, default=None)
    args = ap.parse_args()
    like = like_embeddings()
    work = args.folder or Path(tempfile.mkdtemp(prefix="pg-ivf-"))
    work.mkdir(parents=True, exist_ok=True)
    server, url = start_server(work)
    out: dict = {"size": args.size, "like": f"DevTest gallery, {len(like)} x {like.shape[1]}", "limit": args.limit,
                 "searches": args.searches}
    try:
        vectors, owner, people = synthetic(args.size, like=like)
        sets = {share: probes_for(vectors, args.searches, noise=0.04, share=share) for share in (0.0, 0.2)}
        warm = {share: probes_for(vectors, 30, seed=2, noise=0.04, share=share) for share in (0.0, 0.2)}
        with open_gallery(new_database(url, "ivf"), mode="create") as g:
            out["people"], out["load_per_s"] = int(np.unique(owner).size), round(_load(g, vectors, owner, people))
            g._db.execute("VACUUM ANALYZE forensic_face.embeddings")
            g.identity("bench")
            truth = {s: [exact_top(g, q) for q in qs] for s, qs in sets.items()}
            print(json.dumps(out), flush=True)
            out["indexes"] = []
            db = g._db
            for lists in args.lists:
                row: dict = {"lists": lists}
                for name, dim in (("prefix", 128), ("whole", vectors.shape[1])):
                    x = "vector" if name == "whole" else "subvector(vector, 1, 128)"
                    db.execute(f"DROP INDEX IF EXISTS forensic_face.ivf_{name}")
                    db.execute("SET maintenance_work_mem = '4GB'")
                    t0 = time.perf_counter()
                    db.execute(f"CREATE INDEX ivf_{name} ON forensic_face.embeddings USING ivfflat "
                               f"(({x}::halfvec({dim})) halfvec_ip_ops) WITH (lists = {lists}) "
                               "WHERE model_version = 'bench'")
                    row[f"{name}_build_s"] = round(time.perf_counter() - t0, 1)
                    row[f"{name}_mb"] = round(db.execute(f"SELECT pg_relation_size('forensic_face.ivf_{name}')"
                                                         ).fetchone()[0] / 1e6)
                db.execute("SET enable_seqscan = off")
                db.execute("SET enable_bitmapscan = off")
                for p in args.probes:
                    db.execute(f"SET ivfflat.probes = {int(p)}")
                    for share, qs in sets.items():
                        dim = 128 if share == 0 else vectors.shape[1]
                        for q in warm[share]:
                            ivf_top(db, q, dim, args.limit)
                        times, found = [], []
                        for q in qs:
                            t0 = time.perf_counter()
                            found.append(ivf_top(db, q, dim, args.limit))
                            times.append(time.perf_counter() - t0)
                        recall = np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(found, truth[share],
                                                                                        strict=True)])
                        first = np.mean([a[0] == e[0] for a, e in zip(found, truth[share], strict=True)])
                        row[f"probes_{p}_share_{share:g}"] = {
                            "people_recall_at_10": round(float(recall), 4), "same_first": round(float(first), 3),
                            "median_ms": round(1000 * float(np.median(times)), 2),
                            "p95_ms": round(1000 * float(np.percentile(times, 95)), 2)}
                    print(json.dumps({"lists": lists, "probes": p,
                                      **{k: v for k, v in row.items() if k.startswith(f"probes_{p}_")}}), flush=True)
                db.execute("RESET enable_seqscan")
                db.execute("RESET enable_bitmapscan")
                out["indexes"].append(row)
                print(json.dumps(row), flush=True)
    finally:
        server.stop()
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
