"""Issue 5 benchmark: the service's retrieval index (exact scoring vs FAISS HNSW).

For each catalogue size this builds :class:`lifelongrec.serving.ItemIndex` over synthetic
item vectors in both kinds (exact; HNSW with ``ann_threshold=0``) and measures

* HNSW build seconds, the process's resident memory growth and the index's own bytes;
* recall@10 of HNSW against exact search (numpy ground truth computed here);
* single-query latency (p50/p95/p99 of ``ItemIndex.search`` called one query at a time,
  as the service does) without a filter, with a per-query exclude set of 50 items, and
  with a category filter keeping ~10 % / ~1 % of the items; with 1 and 2 threads
  (``faiss.omp_set_num_threads`` and the BLAS pool via threadpoolctl).

The data is not isotropic Gaussian (which makes ANN look worse than real embeddings):
item vectors lie near a rank-16 subspace of R^D, grouped in 256 clusters of Zipf-skewed
sizes, plus full-rank noise; popularity (Zipf) scales an item's norm, as it does in
trained factor models. Users are drawn like items from popularity-weighted clusters. An
exclude set is what a user has seen: 40 of the user's exact top 100 plus 10 random
items. Categories are random subsets (independent of the clusters).

    .venv/bin/python benchmarks/ann.py                         # 100k and 1M (minutes)
    .venv/bin/python benchmarks/ann.py --sizes 20000 --queries 200 --no-write   # quick
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any

import numpy as np
from _common import command_line, md_table, write_block

K = 10
FILTERS = ["none", "exclude 50", "category 10%", "category 1%"]


# ----------------------------------------------------------------- data
def make_data(
    n: int, n_users: int, d: int, seed: int, rank: int = 16, n_clusters: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Item vectors ``(n, d)`` and user vectors ``(n_users, d)``, float32 (see module doc)."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((rank, d)) / np.sqrt(rank)
    centres = rng.standard_normal((n_clusters, rank))
    sizes = 1.0 / np.arange(1, n_clusters + 1) ** 0.8
    sizes /= sizes.sum()
    items = np.empty((n, d), dtype=np.float32)
    popularity = 1.0 / rng.permutation(np.arange(1, n + 1)) ** 0.9
    scale = np.clip((popularity / np.median(popularity)) ** 0.15, 0.5, 4.0)
    for start in range(0, n, 200_000):  # in blocks: bounded float64 temporaries
        m = min(200_000, n - start)
        z = centres[rng.choice(n_clusters, m, p=sizes)] + 0.6 * rng.standard_normal((m, rank))
        v = z @ basis + 0.15 * rng.standard_normal((m, d))
        items[start : start + m] = v * scale[start : start + m, None]
    zu = centres[rng.choice(n_clusters, n_users, p=sizes)] + 0.6 * rng.standard_normal(
        (n_users, rank)
    )
    users = (zu @ basis + 0.15 * rng.standard_normal((n_users, d))).astype(np.float32)
    return items, users


def exact_topk(items: np.ndarray, users: np.ndarray, k: int) -> np.ndarray:
    """Row indices of the exact top ``k`` per user (ground truth; ties irrelevant here)."""
    out = np.empty((len(users), k), dtype=np.int64)
    step = max(1, 8_000_000 // len(items))
    for s in range(0, len(users), step):
        scores = users[s : s + step] @ items.T
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1)
        out[s : s + step] = np.take_along_axis(part, order, axis=1)
    return out


# ----------------------------------------------------------------- measuring
def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def hnsw_bytes(hnsw: Any) -> int:
    """Vectors plus graph (neighbour lists, levels, offsets) of a faiss IndexHNSWFlat."""
    g = hnsw.hnsw
    return int(
        hnsw.ntotal * hnsw.d * 4
        + g.neighbors.size() * 4
        + g.levels.size() * 4
        + g.offsets.size() * 8
        + g.assign_probas.size() * 8
    )


def latencies(index, users, exclude, allowed) -> tuple[np.ndarray, list]:
    """Seconds per single-query search, and the result ids."""
    times, got = np.empty(len(users)), []
    for i, u in enumerate(users):
        ex = None if exclude is None else exclude[i]
        t0 = time.perf_counter()
        ids, _ = index.search(u, K, exclude=ex, allowed=allowed)
        times[i] = time.perf_counter() - t0
        got.append(ids)
    return times, got


def throughput(index, users, clients: int, exclude=None) -> float:
    """Queries per second of single-query searches spread over ``clients`` Python threads
    (the service's request threads), FAISS and BLAS at one thread each."""
    parts = np.array_split(np.arange(len(users)), clients)

    def work(rows: np.ndarray) -> None:
        for i in rows:
            index.search(users[i], K, exclude=None if exclude is None else exclude[i])

    threads = [threading.Thread(target=work, args=(rows,)) for rows in parts]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(users) / (time.perf_counter() - t0)


def recall(got: list, truth: list[set]) -> float:
    return float(
        np.mean([len(set(g.tolist()) & t) / len(t) for g, t in zip(got, truth, strict=True)])
    )


def run_size(n: int, efc: int, args: argparse.Namespace) -> tuple[list, list, list]:
    import faiss
    from threadpoolctl import threadpool_limits

    from lifelongrec.serving import ItemIndex

    rng = np.random.default_rng(args.seed + 1)
    items, users = make_data(n, args.queries, args.dim, args.seed)
    ids = np.array([f"i{j}" for j in range(n)], dtype=object)
    print(f"n={n}: data ready", flush=True)

    # Ground truth, per filter: the exact top 10 of each user (numpy, here).
    top100 = exact_topk(items, users, 100)
    excl_rows = [
        np.unique(np.concatenate([rng.choice(t, 40, replace=False), rng.integers(0, n, 10)]))
        for t in top100
    ]
    cats = {"category 10%": rng.random(n) < 0.10, "category 1%": rng.random(n) < 0.01}
    truth: dict[str, list[set]] = {"none": [set(ids[t[:K]]) for t in top100]}
    scores = None
    truth["exclude 50"] = []
    for i, u in enumerate(users):
        scores = items @ u
        scores[excl_rows[i]] = -np.inf
        truth["exclude 50"].append(set(ids[np.argpartition(-scores, K)[:K]]))
    for name, mask in cats.items():
        rows = np.flatnonzero(mask)
        sub = exact_topk(items[rows], users, K)
        truth[name] = [set(ids[rows[t]]) for t in sub]
    excl_ids = [ids[r] for r in excl_rows]
    print(f"n={n}: ground truth ready", flush=True)

    rows_out: list[dict] = []
    qps_rows: list[dict] = []
    exact = ItemIndex(ann_threshold=n).build(ids, items)
    builds = []
    build_threads = args.build_threads
    if n <= args.serial_build_max and 1 not in build_threads:
        build_threads = [*build_threads, 1]
    for threads in build_threads:
        faiss.omp_set_num_threads(threads)
        hnsw = None  # free the previous graph first
        rss0 = rss_mb()
        t0 = time.perf_counter()
        hnsw = ItemIndex(
            ann_threshold=0, m=args.m, ef_construction=efc, ef_search=args.ef_search
        ).build(ids, items)
        build = {
            "n": n,
            "threads": threads,
            "m": args.m,
            "ef_construction": efc,
            "build_s": time.perf_counter() - t0,
            "rss_growth_mb": rss_mb() - rss0,
            "index_mb": hnsw_bytes(hnsw._state.main.hnsw) / 2**20,
            "vectors_mb": items.nbytes / 2**20,
        }
        builds.append(build)
        print(f"n={n}: HNSW built in {build['build_s']:.1f}s with {threads} threads", flush=True)
    del items

    n_exact = min(args.exact_queries, args.queries)
    for threads in args.threads:
        faiss.omp_set_num_threads(threads)
        with threadpool_limits(threads):
            for filt in FILTERS:
                exclude = excl_ids if filt == "exclude 50" else None
                mask = cats.get(filt)
                allowed = None if mask is None else mask  # a bool mask over slot_ids
                runs = [("exact", exact, "exact", n_exact)]
                if mask is None:
                    runs.append(("hnsw", hnsw, "graph", args.queries))
                else:
                    runs.append(("hnsw", hnsw, "graph", args.queries))
                    runs.append(("hnsw", hnsw, "exact subset", args.queries))
                for kind, index, path, nq in runs:
                    index.exact_filter_max = n if path == "exact subset" else 0
                    before = index.n_exact_fallbacks
                    t, got = latencies(
                        index, users[:nq], None if exclude is None else exclude[:nq], allowed
                    )
                    row = {
                        "n": n,
                        "threads": threads,
                        "index": kind,
                        "filter": filt,
                        "path": path,
                        "recall@10": recall(got, truth[filt][:nq]),
                        "p50_ms": float(np.percentile(t, 50) * 1e3),
                        "p95_ms": float(np.percentile(t, 95) * 1e3),
                        "p99_ms": float(np.percentile(t, 99) * 1e3),
                        "queries": nq,
                        "fallbacks": index.n_exact_fallbacks - before,
                    }
                    rows_out.append(row)
                    print(
                        f"  t={threads} {kind:5s} {filt:13s} {path:12s} "
                        f"recall={row['recall@10']:.4f} p50={row['p50_ms']:.3f}ms "
                        f"p99={row['p99_ms']:.3f}ms fallbacks={row['fallbacks']}",
                        flush=True,
                    )
    faiss.omp_set_num_threads(1)
    with threadpool_limits(1):
        for kind, index, nq in (("exact", exact, n_exact), ("hnsw", hnsw, args.queries)):
            index.exact_filter_max = 0
            for filt, ex in (("none", None), ("exclude 50", excl_ids)):
                for clients in (1, 2):
                    qps = throughput(index, users[:nq], clients, ex)
                    qps_rows.append(
                        {"n": n, "index": kind, "filter": filt, "clients": clients, "qps": qps}
                    )
                    print(f"  {kind} {filt} clients={clients}: {qps:.0f} queries/s", flush=True)
    return builds, rows_out, qps_rows


# ----------------------------------------------------------------- main
BUILD_COLS = [
    ("n", "items", 0),
    ("threads", "threads", 0),
    ("m", "M", 0),
    ("ef_construction", "efC", 0),
    ("build_s", "build s", 1),
    ("index_mb", "index MB", 0),
    ("vectors_mb", "of it vectors MB", 0),
    ("rss_growth_mb", "RSS growth MB", 0),
]
LAT_COLS = [
    ("n", "items", 0),
    ("threads", "threads", 0),
    ("index", "index", 0),
    ("filter", "filter", 0),
    ("path", "path", 0),
    ("recall@10", "recall@10", 4),
    ("p50_ms", "p50 ms", 3),
    ("p95_ms", "p95 ms", 3),
    ("p99_ms", "p99 ms", 3),
    ("queries", "queries", 0),
    ("fallbacks", "exact redos", 0),
]

QPS_COLS = [
    ("n", "items", 0),
    ("index", "index", 0),
    ("filter", "filter", 0),
    ("clients", "client threads", 0),
    ("qps", "queries/s", 0),
]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--m", type=int, default=32)
    p.add_argument(
        "--ef-construction",
        type=int,
        nargs="+",
        default=[200],
        help="one value for every size, or one per size",
    )
    p.add_argument("--ef-search", type=int, default=128)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="for searching")
    p.add_argument(
        "--build-threads", type=int, nargs="+", default=[2], help="builds, one per value"
    )
    p.add_argument(
        "--serial-build-max",
        type=int,
        default=200_000,
        help="sizes up to this also get a 1-thread build",
    )
    p.add_argument("--queries", type=int, default=1000, help="users per measurement")
    p.add_argument(
        "--exact-queries", type=int, default=200, help="of them for exact search (slow at 1M)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--block", default=None, help="write to the ann-<block> block instead")
    return p


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    efcs = args.ef_construction
    if len(efcs) not in (1, len(args.sizes)):
        raise SystemExit("--ef-construction: give one value or one per size")
    builds, rows, qps = [], [], []
    per_size = efcs * len(args.sizes) if len(efcs) == 1 else efcs
    for n, efc in zip(args.sizes, per_size, strict=True):
        b, r, t = run_size(n, efc, args)
        builds.extend(b)
        rows.extend(r)
        qps.extend(t)
    body = [
        f"Data: D={args.dim} item vectors near a rank-16 subspace (256 clusters of Zipf-skewed "
        "sizes, plus full-rank noise), norms scaled by Zipf popularity; users drawn like "
        "items; an exclude set is 40 of the user's exact top 100 plus 10 random items; "
        "categories are random subsets. Latency: one query per call, "
        f"{args.queries} users ({args.exact_queries} for exact search); threads = FAISS "
        "OpenMP and BLAS threads.",
        "",
        "HNSW build (FAISS `IndexHNSWFlat`, inner product) and memory:",
        "",
        md_table(builds, BUILD_COLS),
        "",
        f"Single-query `ItemIndex.search` latency, k={K}, efSearch={args.ef_search}; recall@10 "
        "against exact numpy search. `path`: graph = filtered HNSW walk (IDSelectorBitmap), "
        "exact subset = exact scoring of the allowed rows only.",
        "",
        md_table(rows, LAT_COLS),
        "",
        "Throughput of single-query searches from 1 or 2 client threads (FAISS and BLAS at "
        "1 thread each; the searches release the GIL):",
        "",
        md_table(qps, QPS_COLS),
    ]
    print("\n".join(body))
    if not args.no_write:
        name = "ann" if args.block is None else f"ann-{args.block}"
        command = command_line("ann.py", argv)
        raw = {"build": builds, "latency": rows, "throughput": qps, "args": vars(args)}
        write_block(name, "Retrieval index: exact vs HNSW", command, body, raw, prefix="service")


if __name__ == "__main__":
    main()
