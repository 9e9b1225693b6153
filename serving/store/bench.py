"""``strata bench store``: tensor stores side by side at the gateway's row size: ingest rows/s and the fetch of a
query's candidates (200 random items), each store taking its turn in every repetition so machine noise falls on
all alike. A row is one HGR-fast video: event, action and entity tensors (20 frames x 256), frame mask and index
view in the store's precision, plus the 20 x 256 float32 source frame features kept for re-embedding.
A memory-mapped ``.npy`` matrix (fixed-size rows, fetched by row number, no ids, no upsert) is the floor.
"""
from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from clients.conventions import positive_int, standalone_parser

STORES = ("lmdb", "lance", "npy-mmap")


def hgr_fast_row(rng: np.random.Generator, dtype: str, frames: int = 20, dim: int = 256) -> dict[str, np.ndarray]:
    return {"video_event": rng.standard_normal(dim).astype(dtype),
            "video_actions": rng.standard_normal((frames, dim)).astype(dtype),
            "video_entities": rng.standard_normal((frames, dim)).astype(dtype),
            "video_frame_mask": np.ones(frames, dtype),
            "video_index": rng.standard_normal(dim).astype(dtype),
            "frame_feats": rng.standard_normal((frames, dim)).astype(np.float32)}


class _Mmap:
    """The floor: rows flattened into one memory-mapped matrix, fetched by row number."""

    def __init__(self, folder: Path):
        self.path = folder / "rows.npy"

    def put_all(self, rows: list[dict[str, np.ndarray]]) -> None:
        flat = np.stack([np.concatenate([v.astype(np.float32).ravel() for v in r.values()]) for r in rows])
        np.save(self.path, flat)
        self.matrix = np.load(self.path, mmap_mode="r")

    def fetch(self, positions: np.ndarray) -> int:
        return int(np.asarray(self.matrix[np.sort(positions)]).nbytes)


def run(argv: list[str]) -> int:
    parser = standalone_parser("strata bench store", __doc__,
                               ["strata bench store", "strata bench store --rows 2000 --repeats 10 --dtype float32"])
    parser.add_argument("--rows", type=positive_int, default=10_000, help="rows ingested into each store")
    parser.add_argument("--fetch", type=positive_int, default=200, help="random rows per fetch (a query's candidates)")
    parser.add_argument("--repeats", type=positive_int, default=30, help="fetches per store (median and p95 reported)")
    parser.add_argument("--batch", type=positive_int, default=256, help="rows per put")
    parser.add_argument("--dtype", choices=("float16", "float32"), default="float16", help="scorer-input precision")
    parser.add_argument("--out", type=Path, help="folder for the stores (default: a temporary one, removed)")
    args = parser.parse_args(argv)
    from serving.store import open_store
    from serving.store.record import encode_record

    rng = np.random.default_rng(0)
    rows = [hgr_fast_row(rng, args.dtype) for _ in range(args.rows)]
    ids = [f"video{i:07d}" for i in range(args.rows)]
    row_bytes = len(encode_record(rows[0]))
    folder = args.out or Path(tempfile.mkdtemp(prefix="strata-bench-store-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        stores = {"lmdb": open_store(folder / "lmdb"), "lance": open_store(f"lance:{folder / 'rows.lance'}")}
        ingest: dict[str, float] = {}
        for name, store in stores.items():
            started = time.perf_counter()
            for start in range(0, args.rows, args.batch):
                store.put(list(zip(ids[start:start + args.batch], rows[start:start + args.batch])))
                print(f"  {name}: {min(start + args.batch, args.rows)}/{args.rows} rows", end="\r", flush=True)
            ingest[name] = args.rows / (time.perf_counter() - started)
            print()
        mmap = _Mmap(folder)
        started = time.perf_counter()
        mmap.put_all(rows)
        ingest["npy-mmap"] = args.rows / (time.perf_counter() - started)
        times: dict[str, list[float]] = {name: [] for name in STORES}
        moved: dict[str, int] = {}
        for _ in range(args.repeats):
            positions = rng.choice(args.rows, size=min(args.fetch, args.rows), replace=False)
            wanted = [ids[p] for p in positions]
            for name, store in stores.items():
                started = time.perf_counter()
                records = store.get(wanted)
                times[name].append(1e3 * (time.perf_counter() - started))
                moved[name] = sum(v.nbytes for r in records for v in r.values())
            started = time.perf_counter()
            moved["npy-mmap"] = mmap.fetch(positions)
            times["npy-mmap"].append(1e3 * (time.perf_counter() - started))
        for store in stores.values():
            store.close()
    finally:
        if args.out is None:
            shutil.rmtree(folder, ignore_errors=True)
    medians = {n: statistics.median(t) for n, t in times.items()}
    best_fetch, best_ingest = min(medians.values()), max(ingest.values())
    print(f"{args.rows} rows of {row_bytes / 1024:.1f} KB ({args.dtype} scorer inputs + float32 source frames); "
          f"fetch of {args.fetch} random rows, {args.repeats} times, stores taking turns")
    print(f"{'store':10s} {'ingest rows/s':>14s} {'x best':>7s} {'fetch median ms':>16s} {'p95 ms':>8s} "
          f"{'x best':>7s} {'MB/fetch':>9s}")
    for name in STORES:
        p95 = float(np.percentile(times[name], 95))
        print(f"{name:10s} {ingest[name]:14.0f} {best_ingest / ingest[name]:7.2f} {medians[name]:16.2f} {p95:8.2f} "
              f"{medians[name] / best_fetch:7.2f} {moved[name] / 1e6:9.2f}")
    return 0
