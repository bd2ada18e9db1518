"""What an exact search of a large PostgreSQL gallery spends on its per-person table (issue 22).

A gallery of more than ``FULL_RANK_PEOPLE`` people is searched exactly by one query that keeps each person's best
similarity in a table (an aggregate grouped by person) and returns the best people and a histogram of the others
(``PostgresGallery._rank_best``). The table's memory is PostgreSQL's ``work_mem`` (times ``hash_mem_multiplier``);
one that outgrows it goes to temporary files. This times that query on an existing gallery (``research.pg_10m``'s
database, its server's data folder) with ``work_mem`` set for the search's transaction to each ``--work-mem`` in
turn (``server``: the server's own setting), rounds interleaved, the probes noisy copies of stored embeddings:
median seconds, and from one ``EXPLAIN (ANALYZE, BUFFERS)`` per setting the temporary blocks written (8 kB each),
the aggregate's memory and batches, and the workers. The gallery's HNSW index, if any, is not used (the query is
the exact search's). A ``--work-mem`` entry may add planner settings (``server+enable_hashagg=off``: the
grouped table built from rows in person order, not hashed). ``--query narrow``: the same query with each row's
similarity (and image) computed in a subquery that the planner may not merge (``OFFSET 0``), so the grouped table is
sized by those alone, not by the embeddings (PostgreSQL then runs it in one process). Prints JSON.

    .venv/bin/python -m research.pg_exact_memory --folder /tmp/pg10m --database bench_10m \\
        --work-mem server 64MB 256MB 1GB > research/pg_bench/exact-memory-10m.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from forensic_face.store.gallery import open_gallery
from forensic_face.store.gallery.postgres import PostgresGallery
from research.pg_gallery_bench import start_server

SHIPPED_INPUT = ("SELECT person_id, max(ARRAY[-(vector <#> %b), -image_id::float8]) AS best FROM embeddings WHERE "
                 "model_version = %s GROUP BY person_id")
NARROW_INPUT = ("SELECT person_id, max(s) AS best FROM (SELECT person_id, ARRAY[-(vector <#> %b), "
                "-image_id::float8] AS s FROM embeddings WHERE model_version = %s OFFSET 0) e GROUP BY person_id")


def query(kind: str) -> str:
    """The exact search's SQL as shipped, or narrowed (see the module's text)."""
    shipped = PostgresGallery._rank_best_sql()
    if kind == "shipped":
        return shipped
    assert shipped.count(SHIPPED_INPUT) == 1, "the shipped query changed: update SHIPPED_INPUT"
    return shipped.replace(SHIPPED_INPUT, NARROW_INPUT)


def _aggregates(node: dict) -> list[dict]:
    """The aggregate nodes of an EXPLAIN plan, with what they spent."""
    here = [{k: node[k] for k in ("Node Type", "Strategy", "Partial Mode", "Peak Memory Usage", "Disk Usage",
                                  "HashAgg Batches", "Workers Planned", "Actual Rows", "Actual Loops") if k in node}] \
        if node.get("Node Type") == "Aggregate" else []
    return here + [a for child in node.get("Plans", []) for a in _aggregates(child)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", type=Path, required=True, help="the folder research.pg_10m ran its server in")
    ap.add_argument("--database", default="bench_10m")
    ap.add_argument("--work-mem", nargs="+", default=["server", "256MB"],
                    help="each: a work_mem ('server': the server's), optionally followed by '+name=value' planner "
                         "settings for the transaction, e.g. server+enable_hashagg=off")
    ap.add_argument("--probes", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--query", choices=("shipped", "narrow"), default="shipped")
    args = ap.parse_args()
    server, url = start_server(args.folder)
    sql = query(args.query)
    out: dict = {"database": args.database, "query": sql, "settings": {}}
    try:
        with open_gallery(url.format(args.database)) as g:
            version = next(iter(g.info()["embeddings_by_model"]))
            out |= {"people": g.info()["people"], "embeddings": g.info()["embeddings_by_model"][version]}
            rng = np.random.default_rng(7)
            stored = np.array([np.asarray(json.loads(r[0]), np.float32) for r in g._db.execute(
                "SELECT vector::text FROM forensic_face.embeddings TABLESAMPLE SYSTEM (0.01) LIMIT %s",
                (args.probes,)).fetchall()])
            probes = stored + 0.04 * rng.standard_normal(stored.shape, dtype=np.float32)
            probes /= np.linalg.norm(probes, axis=1, keepdims=True)
            times: dict[str, list[float]] = {w: [] for w in args.work_mem}

            def session(db, setting: str) -> None:
                db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                db.execute("SET LOCAL search_path = forensic_face, public")
                memory, *others = setting.split("+")
                if memory != "server":
                    db.execute("SELECT set_config('work_mem', %s, true)", (memory,))
                for other in others:  # name=value: a planner setting for the transaction
                    name, value = other.split("=")
                    db.execute("SELECT set_config(%s, %s, true)", (name, value))

            for setting in args.work_mem:
                with g._session() as db:
                    session(db, setting)
                    plan = db.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql,
                                      g._rank_best_params(version, probes[0], 100)).fetchone()[0][0]
                    memory = db.execute("SELECT current_setting('work_mem'), current_setting('hash_mem_multiplier')"
                                        ).fetchone()
                out["settings"][setting] = {
                    "work_mem": memory[0], "hash_mem_multiplier": memory[1],
                    "temp_blocks_written": plan["Plan"].get("Temp Written Blocks", 0),
                    "explain_execution_s": round(plan["Execution Time"] / 1000, 2), "aggregates": _aggregates(
                        plan["Plan"])}
                print(json.dumps({setting: out["settings"][setting]}), flush=True)
            for _ in range(args.rounds):
                for setting in args.work_mem:
                    for q in probes:
                        with g._session() as db:
                            session(db, setting)
                            t0 = time.perf_counter()
                            db.execute(sql, g._rank_best_params(version, q, 100)).fetchall()
                            times[setting].append(time.perf_counter() - t0)
            for setting, ts in times.items():
                out["settings"][setting] |= {"median_s": round(float(np.median(ts)), 2),
                                             "searches": len(ts), "each_s": [round(t, 2) for t in ts]}
    finally:
        server.stop()
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
