"""``strata bench search``: the first stage's vector search, Milvus's index types against exact NumPy search.

For each corpus size, the vectors (random unit vectors by default, or the rows of a ``.npy`` of real index-view
vectors) are written as the gateway writes them (:class:`serving.index.milvus_index.MilvusIndex`, upserts in
batches) to one collection per index type — FLAT, IVF_FLAT with ``--nlist`` clusters, and on a Milvus server HNSW
with ``--hnsw-m`` links per node — on a scratch Milvus Lite server or the one ``--milvus-uri`` names. Each query
(random unit vectors, or held-out rows of the file) is searched one at a time as the first stage searches: FLAT
once, IVF_FLAT at every ``--nprobes`` value, HNSW at every ``--efs`` value (at least C), for each depth C of
``--depths``. Recall@C = the share of
the exact top-C that the search returned, tie-aware: a returned id whose exact score equals the C-th best (within
1e-5) counts. The exact top-C and its time come from NumPy in the same run: one query's inner products with the
whole corpus (float32 matrix-vector product), then the C best (argpartition, then sort by score, ties by id).
Latency is per query, p50 and p95; speed-up = NumPy's p50 / the index's p50.

Each IVF_FLAT row also records the rows Milvus reports indexed. Milvus Lite 2.5.1 never builds the IVF_FLAT index
(0 rows indexed, flushed or not): it answers from its own index of growing data, exhaustive on small collections and
approximate on large ones, where ``nprobe`` changes nothing. The run says so when it sees it; ``--milvus-uri``
measures a Milvus server instead, where the index is built.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common.settings import INDEX_TYPES
from serving.index.spec import IndexSpec

TIE_EPS = 1e-5
BATCH = 5000                      # rows per upsert call (the index cuts them further)


def unit_rows(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    rows = rng.standard_normal((count, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def vector_ids(count: int) -> list[str]:
    return [f"v{i:07d}" for i in range(count)]   # id order = row order, so ties by id are ties by row


def exact_top(corpus: np.ndarray, query: np.ndarray, depth: int) -> np.ndarray:
    """Rows of the ``depth`` best inner products, best first, ties by row (= by id)."""
    scores = corpus @ query
    if depth < len(scores):
        part = np.argpartition(-scores, depth - 1)[:depth]
    else:
        part = np.arange(len(scores))
    return part[np.lexsort((part, -scores[part]))]


def recall(found: list[str], scores: np.ndarray, row_of: dict[str, int], depth: int) -> float:
    """Share of the exact top-``depth`` among ``found``, tie-aware: an id scoring (exactly) at least the
    ``depth``-th best score, within ``TIE_EPS``, counts."""
    kth = np.partition(-scores, depth - 1)[depth - 1] * -1 if depth < len(scores) else float(scores.min())
    good = sum(1 for item in found[:depth] if scores[row_of[item]] >= kth - TIE_EPS)
    return min(good, depth) / min(depth, len(scores))


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


class Progress:
    """One line on stderr at each tenth of a step, once it has run for a second."""

    def __init__(self, label: str, total: int):
        self.label, self.total, self.shown, self.start = label, total, 0, time.perf_counter()

    def __call__(self, done: int) -> None:
        tenth = done * 10 // max(self.total, 1)
        if tenth > self.shown and time.perf_counter() - self.start >= 1.0:
            self.shown = tenth
            print(f"  {self.label}: {done:,}/{self.total:,} ({time.perf_counter() - self.start:.0f} s)",
                  file=sys.stderr, flush=True)


def load(index, name: str, corpus: np.ndarray, ids: list[str], label: str) -> float:
    """Upsert the corpus into ``name`` in batches; seconds taken."""
    step = Progress(f"{label}: rows written", len(ids))
    start = time.perf_counter()
    for begin in range(0, len(ids), BATCH):
        end = min(begin + BATCH, len(ids))
        index.upsert(name, [{"id": ids[i], "vector": corpus[i]} for i in range(begin, end)])
        step(end)
    return time.perf_counter() - start


def bench_size(index, corpus: np.ndarray, queries: np.ndarray, args, say) -> list[dict]:
    """Every (index, nprobe, depth) row of one corpus size."""
    size, dim = corpus.shape
    ids = vector_ids(size)
    row_of = {item: i for i, item in enumerate(ids)}
    rows: list[dict] = []
    # Exact search in NumPy: the truth, and the time to beat (one query at a time, as the first stage runs).
    numpy_ms = {depth: [] for depth in args.depths}
    all_scores = []
    for query in queries:
        all_scores.append(corpus @ query)
        for depth in args.depths:
            start = time.perf_counter()
            exact_top(corpus, query, depth)
            numpy_ms[depth].append(1e3 * (time.perf_counter() - start))
    for depth in args.depths:
        rows.append({"size": size, "index": "numpy exact", "nlist": 0, "nprobe": 0, "ef": 0, "depth": depth, "recall": 1.0,
                     "p50_ms": percentile(numpy_ms[depth], 50), "p95_ms": percentile(numpy_ms[depth], 95),
                     "speedup": 1.0, "queries": len(queries)})
    numpy_p50 = {depth: rows[-len(args.depths) + k]["p50_ms"] for k, depth in enumerate(args.depths)}
    for spec, values in search_plans(args, size):
        name = f"bench_{spec.type.lower()}_{size}"
        if index.has(name):   # left by an interrupted run
            index.drop(name)
        in_force = index.ensure_collection(name, dim, "videos", spec)
        took = load(index, name, corpus, ids, f"{size:,} {spec.type}")
        indexed = indexed_rows(index, name)
        say(f"search: {size:,} rows into {spec.type} in {took:.0f} s ({size / took:,.0f} rows/s); index in force "
            f"{in_force.label}, {indexed:,} rows indexed by Milvus")
        probe, other = ("nprobe", "ef") if spec.type != "HNSW" else ("ef", "nprobe")
        for query in queries[:args.warmup]:   # warm: the collection's first searches load what it needs
            index.search(name, query[None], max(args.depths), **{probe: values[-1] or None})
        for value in values:
            for depth in args.depths:
                step = Progress(f"{size:,} {spec.type} {probe} {value} C={depth}: queries", len(queries))
                hits, took_ms = [], []
                for k, query in enumerate(queries):
                    start = time.perf_counter()
                    found = index.search(name, query[None], depth, **{probe: value or None})[0]
                    took_ms.append(1e3 * (time.perf_counter() - start))
                    hits.append(recall([item for item, _ in found], all_scores[k], row_of, depth))
                    step(k + 1)
                p50 = percentile(took_ms, 50)
                rows.append({"size": size, "index": spec.type, "nlist": spec.nlist, "m": spec.m,
                             "ef_construction": spec.ef_construction, probe: value, other: 0, "depth": depth,
                             "recall": float(np.mean(hits)), "min_recall": float(np.min(hits)), "p50_ms": p50,
                             "p95_ms": percentile(took_ms, 95), "speedup": numpy_p50[depth] / p50,
                             "queries": len(queries), "indexed_rows": indexed})
                say(line(rows[-1]))
        index.drop(name)
    return rows


def search_plans(args, size: int) -> list[tuple[IndexSpec, list[int]]]:
    """Each index type asked for, with the values of its search parameter to measure (0: it has none): IVF_FLAT's
    nprobe values up to its nlist, HNSW's ef values."""
    nlist = min(args.nlist, size)
    plans = {"FLAT": (IndexSpec("FLAT"), [0]),
             "IVF_FLAT": (IndexSpec("IVF_FLAT", nlist=nlist), [p for p in args.nprobes if p <= nlist] or [nlist]),
             "HNSW": (IndexSpec("HNSW", m=args.hnsw_m, ef_construction=args.hnsw_ef_construction), args.efs)}
    return [plans[index_type] for index_type in INDEX_TYPES if index_type in args.index_types]


def indexed_rows(index, name: str) -> int:
    """The rows Milvus reports indexed in ``name``'s vector index (-1 when it does not say)."""
    info = index._call(f"describe_index {name}", lambda c, **kw: c.describe_index(name, "vector", **kw)) or {}
    value = info.get("indexed_rows")
    return int(value) if value is not None else -1


def nprobe_notes(rows: list[dict]) -> list[str]:
    """A line for each (size, depth) whose IVF_FLAT recall did not move with nprobe although it fell short of 1."""
    notes = []
    for size, depth in sorted({(r["size"], r["depth"]) for r in rows if r["index"] == "IVF_FLAT"}):
        mine = [r for r in rows if (r["index"], r["size"], r["depth"]) == ("IVF_FLAT", size, depth)]
        recalls = {round(r["recall"], 6) for r in mine}
        if len(mine) > 1 and len(recalls) == 1 and min(recalls) < 1.0:
            notes.append(f"note: at {size:,} rows, C={depth}, IVF_FLAT recall {min(recalls):.3f} at every nprobe: nprobe "
                         f"had no effect ({mine[0]['indexed_rows']:,} rows indexed by Milvus; Milvus Lite answers from "
                         f"its own index of growing data)")
    return notes


HEADER = (f"{'size':>8s} {'index':11s} {'built with':>14s} {'searched':>10s} {'C':>4s} {'recall@C':>8s} {'p50 ms':>7s} "
          f"{'p95 ms':>7s} {'x numpy':>8s}")


def line(row: dict) -> str:
    built = (f"nlist={row['nlist']}" if row.get("nlist") else f"M={row['m']},efC={row['ef_construction']}"
             if row.get("m") else "-")
    searched = f"nprobe={row['nprobe']}" if row.get("nprobe") else f"ef={row['ef']}" if row.get("ef") else "-"
    return (f"{row['size']:8,d} {row['index']:11s} {built:>14s} {searched:>10s} {row['depth']:4d} {row['recall']:8.3f} "
            f"{row['p50_ms']:7.2f} {row['p95_ms']:7.2f} {row['speedup']:7.2f}x")


def plot(rows: list[dict], path: Path) -> None:
    """Recall against p50 latency, one panel per depth, one line per (size, index); NumPy exact as a marker."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    depths = sorted({r["depth"] for r in rows})
    sizes = sorted({r["size"] for r in rows})
    fig, axes = plt.subplots(1, len(depths), figsize=(4.6 * len(depths), 3.8), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, depth in zip(axes[0], depths):
        for s, size in enumerate(sizes):
            color = colors[s % len(colors)]
            mine = [r for r in rows if r["size"] == size and r["depth"] == depth]
            for kind, probe, marker in (("IVF_FLAT", "nprobe", "o"), ("HNSW", "ef", "^")):
                approximate = sorted((r for r in mine if r["index"] == kind), key=lambda r: r[probe])
                if approximate:
                    ax.plot([r["p50_ms"] for r in approximate], [r["recall"] for r in approximate], marker=marker,
                            color=color, label=f"{size:,} {kind}")
                for r in approximate:
                    ax.annotate(str(r[probe]), (r["p50_ms"], r["recall"]), fontsize=6, xytext=(2, -8),
                                textcoords="offset points")
            for r in mine:
                if r["index"] == "FLAT":
                    ax.plot([r["p50_ms"]], [r["recall"]], marker="s", color=color, ls="", label=f"{size:,} FLAT")
                elif r["index"] == "numpy exact":
                    ax.plot([r["p50_ms"]], [r["recall"]], marker="*", ms=10, color=color, ls="",
                            label=f"{size:,} NumPy exact")
        ax.set_xscale("log")
        ax.set_xlabel("p50 ms per query", fontsize=8)
        ax.set_ylabel(f"recall of the exact top-{depth}", fontsize=8)
        ax.set_title(f"C = {depth} (labels: nprobe or ef)", fontsize=9)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def corpus_source(args, rng) -> tuple[np.ndarray, np.ndarray, str]:
    """(corpus rows for the largest size, queries, what they are)."""
    biggest = max(args.sizes)
    if args.vectors:
        data = np.load(args.vectors, mmap_mode="r")
        if data.ndim != 2 or len(data) < biggest + args.queries:
            raise ValueError(f"--vectors {args.vectors}: need a [rows, dim] array of at least {biggest + args.queries} "
                             f"rows (the largest size and the queries), got shape {data.shape}")
        data = np.asarray(data[:biggest + args.queries], np.float32)
        return data[:biggest], data[biggest:], f"rows of {Path(args.vectors).name} (queries: the {args.queries} after)"
    return unit_rows(rng, biggest, args.dim), unit_rows(rng, args.queries, args.dim), "random unit vectors"


def run(argv: list[str]) -> int:
    """Recall of the exact top-C and per-query latency of the Milvus index types (FLAT, IVF_FLAT at several nprobe,
    HNSW at several ef on a Milvus server) against exact NumPy search on the same vectors; prints the table and draws
    recall against latency as a PNG."""
    from common.connect import http_uri
    from common.conventions import add_json_flag, emit_json, positive_int, say, settings, standalone_parser
    from common.errors import ConfigError
    from common.settings import HNSW_M_RANGE, LITE_INDEX_TYPES, MAX_NLIST
    from serving.index.milvus_index import MilvusIndex
    from serving.index.milvus_server import MilvusLiteServer

    parser = standalone_parser("strata bench search", (__doc__ or "").split("\n\n")[0] + "\n\n" + (run.__doc__ or ""),
                               examples=["strata bench search --json search.json --out search.png",
                                         "strata bench search --sizes 10000 --nprobes 8 16 32 --queries 100",
                                         "strata bench search --quick"])
    parser.add_argument("--sizes", type=positive_int, nargs="+", default=[10_000, 100_000], help="corpus sizes")
    parser.add_argument("--quick", action="store_true",
                        help="a small run: 2,000 rows, 20 queries, nlist 32, nprobe 1 4 32 (unless given)")
    parser.add_argument("--dim", type=positive_int, default=256, help="vector size of random vectors")
    parser.add_argument("--vectors", help="a .npy of real index-view vectors [rows, dim] instead of random ones: the "
                        "corpus is its first rows, the queries the rows after")
    parser.add_argument("--queries", type=positive_int, default=200, help="queries per configuration")
    parser.add_argument("--depths", type=positive_int, nargs="+", default=[50, 100],
                        help="first-stage depths C (the top-C whose recall is measured)")
    parser.add_argument("--index-types", nargs="+", choices=INDEX_TYPES,
                        help=f"default: {' '.join(LITE_INDEX_TYPES)} (what Milvus Lite builds); with --milvus-uri, "
                             f"{' '.join(INDEX_TYPES)}")
    parser.add_argument("--nlist", type=positive_int, default=1024, help="IVF_FLAT clusters (at most the corpus size)")
    parser.add_argument("--nprobes", type=positive_int, nargs="+", default=[1, 4, 8, 16, 32, 64, 128],
                        help="IVF_FLAT clusters visited per search (those above nlist are skipped)")
    parser.add_argument("--hnsw-m", type=positive_int, default=16, help="HNSW links per node")
    parser.add_argument("--hnsw-ef-construction", type=positive_int, default=200,
                        help="HNSW candidates kept while inserting")
    parser.add_argument("--efs", type=positive_int, nargs="+", default=[64, 128, 256, 512],
                        help="HNSW candidates kept per search (Milvus raises each to at least C)")
    parser.add_argument("--milvus-uri", help="measure this Milvus (e.g. a server at http://host:19530, with the "
                        "settings' credentials) instead of a scratch Milvus Lite; its bench_* collections are dropped")
    parser.add_argument("--warmup", type=int, default=5, help="untimed searches per collection first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="search.png", help="the figure (PNG)")
    add_json_flag(parser, "the settings of the run and every row")
    args = parser.parse_args(argv)
    given = set(argv)
    if args.quick:
        if "--sizes" not in given:
            args.sizes = [2_000]
        if "--queries" not in given:
            args.queries = 20
        if "--nlist" not in given:
            args.nlist = 32
        if "--nprobes" not in given:
            args.nprobes = [1, 4, 32]
    if args.nlist > MAX_NLIST:
        raise ConfigError(f"--nlist must be at most {MAX_NLIST}, got {args.nlist}")
    if not HNSW_M_RANGE[0] <= args.hnsw_m <= HNSW_M_RANGE[1]:
        raise ConfigError(f"--hnsw-m must be in {HNSW_M_RANGE[0]}..{HNSW_M_RANGE[1]}, got {args.hnsw_m}")
    args.index_types = args.index_types or list(INDEX_TYPES if args.milvus_uri else LITE_INDEX_TYPES)
    if "HNSW" in args.index_types and not args.milvus_uri:
        raise ConfigError("--index-types HNSW needs a Milvus server (--milvus-uri): Milvus Lite builds FLAT and "
                          "IVF_FLAT only")
    if max(args.depths) > min(args.sizes):
        raise ConfigError(f"--depths: {max(args.depths)} is more than the smallest corpus ({min(args.sizes)})")
    args.sizes = sorted(set(args.sizes))
    args.depths = sorted(set(args.depths))
    args.nprobes = sorted(set(args.nprobes))
    args.efs = sorted(set(args.efs))
    tell = say(args)
    rng = np.random.default_rng(args.seed)
    try:
        corpus, queries, what = corpus_source(args, rng)
    except (OSError, ValueError) as err:
        raise ConfigError(str(err)) from None
    dim = corpus.shape[1]
    threads = os.environ.get("OMP_NUM_THREADS") or os.environ.get("OPENBLAS_NUM_THREADS") or "default"
    hnsw = (f"; HNSW M {args.hnsw_m}, efConstruction {args.hnsw_ef_construction}, ef {', '.join(map(str, args.efs))}"
            if "HNSW" in args.index_types else "")
    tell(f"search: {what}, dim {dim}; sizes {', '.join(f'{s:,}' for s in args.sizes)}; {len(queries)} queries, one "
         f"at a time; depths {', '.join(map(str, args.depths))}; IVF_FLAT nlist {args.nlist}, nprobe "
         f"{', '.join(map(str, args.nprobes))}{hnsw}; NumPy threads {threads}; load average {os.getloadavg()[0]:.1f} on "
         f"{os.cpu_count()} cores")
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="strata-bench-search-") as scratch:
        server = None if args.milvus_uri else MilvusLiteServer(Path(scratch) / "milvus")
        try:
            if server is None:
                index = MilvusIndex(args.milvus_uri, timeout_s=300, settings=settings())
            else:
                state = server.start(Path(scratch) / "milvus" / "bench.db", port=0)
                index = MilvusIndex(http_uri(state.address, state.port()), timeout_s=300)
            tell(f"search: on {'a scratch Milvus Lite server' if server else index.where}")
            tell(HEADER)
            for size in args.sizes:
                rows += bench_size(index, corpus[:size], queries, args, tell)
            index.close()
        finally:
            if server is not None:
                server.stop()
    tell("\n" + HEADER)
    order = {"numpy exact": 0, "FLAT": 1, "IVF_FLAT": 2, "HNSW": 3}
    for row in sorted(rows, key=lambda r: (r["size"], r["depth"], order[r["index"]], r["nprobe"], r["ef"])):
        tell(line(row))
    for note in nprobe_notes(rows):
        tell(note)
    tell(f"(recall@C: share of the exact top-C returned, ties within {TIE_EPS:g} counted; x numpy: NumPy exact "
         f"search's p50 over the index's, same run; vectors: {what})")
    plot(rows, Path(args.out))
    tell(f"figure: {args.out}")
    emit_json(args, {"vectors": what, "dim": dim, "sizes": args.sizes, "queries": len(queries), "depths": args.depths,
                     "index_types": args.index_types, "nlist": args.nlist, "nprobes": args.nprobes,
                     "hnsw_m": args.hnsw_m, "hnsw_ef_construction": args.hnsw_ef_construction, "efs": args.efs,
                     "tie_eps": TIE_EPS,
                     "milvus": "scratch Milvus Lite" if not args.milvus_uri else "given by --milvus-uri",
                     "load_average": os.getloadavg()[0], "cores": os.cpu_count(), "rows": rows})
    return 0
