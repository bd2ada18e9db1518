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
threads), the probes noisy copies of stored embeddings (an exact search's cost does not depend on the probe). No
HNSW index is built. Prints JSON lines, the last the whole result.

    nice .venv/bin/python -m research.pg_10m --size 10000000 --folder /tmp/pg10m > research/pg_bench/exact-10m.txt
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from forensic_face.models.calibration import MatchCalibration
from forensic_face.paths import models_dir
from forensic_face.store.gallery import open_gallery
from research.pg_gallery_bench import _latency, after_load, new_database, probes_for, start_server
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=10_000_000)
    ap.add_argument("--chunk", type=int, default=1_000_000)
    ap.add_argument("--probes", type=int, default=20)
    ap.add_argument("--folder", type=Path, default=None)
    args = ap.parse_args()
    cal = MatchCalibration.from_dict(json.loads((models_dir() / "models.json").read_text())["calibration"])
    like = like_embeddings()
    work = args.folder or Path(tempfile.mkdtemp(prefix="pg-10m-"))
    work.mkdir(parents=True, exist_ok=True)
    server, url = start_server(work)
    out: dict = {"size": args.size, "like": f"DevTest gallery, {len(like)} x {like.shape[1]}", "chunk": args.chunk}
    try:
        with open_gallery(new_database(url, "bench_10m"), mode="create") as g:
            load_s, loaded, people, kept = 0.0, 0, 0, None
            for vectors, owner in chunks(args.size, args.chunk, like):
                if kept is None:
                    kept = vectors[:10_000].copy()
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
            probes = probes_for(kept, args.probes, noise=0.04)
            ms, p95, qps, _ = _latency(g, cal, probes, 150.0)
            out["exact"] = {"median_ms": round(ms, 1), "p95_ms": round(p95, 1),
                            "searches_per_s_2_threads": round(qps, 3)}
    finally:
        server.stop()
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
