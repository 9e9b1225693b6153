"""``strata bench store``: tensor-store ingest rate and fetch latency, LMDB and Lance beside a memory-mapped .npy.

One run, methods taking turns: each batch of rows is put into every store in turn, then each repetition fetches the
same random ids from every store in turn (warm cache: every store is read through once first). Rows have the
hgr-fast layout: scorer inputs in the chosen dtype plus float32 source frame features.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from serving.store import open_store

FRAMES, DIM = 20, 256
SCORER_LAYOUT = {"video_event": (DIM,), "video_actions": (FRAMES, DIM), "video_entities": (FRAMES, DIM),
                 "video_frame_mask": (FRAMES,), "video_index": (DIM,)}
SOURCE_LAYOUT = {"frame_feats": (FRAMES, DIM)}  # always float32
DTYPES = ("float16", "float32")
EPILOG = "example: strata bench store --rows 20000 --fetch 200 --repeats 50 --dtype float16 --out /tmp/stores"


def row_bytes(dtype: str) -> tuple[int, int]:
    """Raw bytes of one row: (scorer inputs in ``dtype``, float32 source features)."""
    scorer = sum(math.prod(shape) for shape in SCORER_LAYOUT.values()) * np.dtype(dtype).itemsize
    return scorer, sum(math.prod(shape) for shape in SOURCE_LAYOUT.values()) * 4


def make_rows(start: int, count: int, dtype: str) -> list[tuple[str, dict[str, np.ndarray]]]:
    """Rows ``start .. start+count-1`` (ids ``item<N>``), random but the same for every store."""
    rng = np.random.default_rng(start)
    rows = []
    for i in range(start, start + count):
        record = {name: rng.standard_normal(shape, np.float32).astype(dtype) for name, shape in SCORER_LAYOUT.items()}
        record.update({name: rng.standard_normal(shape, np.float32) for name, shape in SOURCE_LAYOUT.items()})
        rows.append((f"item{i}", record))
    return rows


class NpyReference:
    """Reference point: one preallocated, memory-mapped .npy per array, row ``N`` for id ``item<N>``."""

    def __init__(self, folder: Path, rows: int, dtype: str):
        folder.mkdir(parents=True)
        layout = {**{n: (s, dtype) for n, s in SCORER_LAYOUT.items()}, **{n: (s, "float32") for n, s in SOURCE_LAYOUT.items()}}
        self.arrays = {name: np.lib.format.open_memmap(folder / f"{name}.npy", mode="w+", dtype=dt, shape=(rows, *shape))
                       for name, (shape, dt) in layout.items()}

    def put(self, items: Sequence[tuple[str, Mapping[str, np.ndarray]]]) -> None:
        rows = [int(item_id[4:]) for item_id, _ in items]
        for name, array in self.arrays.items():
            array[rows] = np.stack([record[name] for _, record in items])
            array.flush()

    def get(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        rows = [int(item_id[4:]) for item_id in ids]
        return {name: array[rows] for name, array in self.arrays.items()}

    def close(self) -> None:
        self.arrays.clear()


FOLDERS = {"lmdb": "lmdb", "lance": "store.lance", "npy memmap": "npy"}


def open_methods(folder: Path, rows: int, dtype: str) -> dict[str, object]:
    return {"lmdb": open_store(f"lmdb:{folder / FOLDERS['lmdb']}"), "lance": open_store(folder / FOLDERS["lance"]),
            "npy memmap": NpyReference(folder / FOLDERS["npy memmap"], rows, dtype)}


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def progress(label: str, done: int, total: int, state: dict) -> None:
    """One line on stderr at each tenth of the work."""
    tenth = done * 10 // total
    if tenth > state.get(label, 0):
        state[label] = tenth
        print(f"  {label}: {done}/{total}", file=sys.stderr, flush=True)


def timed(job: Callable[[], object]) -> float:
    start = time.perf_counter()
    job()
    return time.perf_counter() - start


def bench_dtype(folder: Path, dtype: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Ingest then fetch for every method, taking turns; figures per method."""
    methods = open_methods(folder, args.rows, dtype)
    put_s = dict.fromkeys(methods, 0.0)
    shown: dict = {}
    for start in range(0, args.rows, args.batch):
        rows = make_rows(start, min(args.batch, args.rows - start), dtype)
        for name, method in methods.items():
            put_s[name] += timed(lambda: method.put(rows))
        progress(f"{dtype} ingest rows", start + len(rows), args.rows, shown)
    all_ids = [f"item{i}" for i in range(args.rows)]
    for method in methods.values():  # warm the cache: read everything once
        for start in range(0, args.rows, args.batch):
            method.get(all_ids[start:start + args.batch])
    rng = np.random.default_rng(0)
    fetch_ms: dict[str, list[float]] = {name: [] for name in methods}
    for repeat in range(args.repeats):
        ids = [all_ids[i] for i in rng.choice(args.rows, size=min(args.fetch, args.rows), replace=False)]
        for name, method in methods.items():
            fetch_ms[name].append(timed(lambda: method.get(ids)) * 1e3)
        progress(f"{dtype} fetch repeats", repeat + 1, args.repeats, shown)
    for method in methods.values():
        method.close()
    return {name: {"rows_s": args.rows / put_s[name], "median_ms": statistics.median(fetch_ms[name]),
                   "p95_ms": float(np.percentile(fetch_ms[name], 95)), "disk_mb": disk_bytes(folder / FOLDERS[name]) / 1e6}
            for name in methods}


def print_table(results: dict[str, dict[str, dict[str, float]]]) -> None:
    print(f"{'dtype':8s} {'store':11s} {'ingest rows/s':>13s} {'x fastest':>9s} {'fetch median ms':>15s} "
          f"{'p95 ms':>7s} {'x fastest':>9s} {'disk MB':>8s}")
    for dtype, figures in results.items():
        best_rate = max(f["rows_s"] for f in figures.values())
        best_ms = min(f["median_ms"] for f in figures.values())
        for name, f in figures.items():
            print(f"{dtype:8s} {name:11s} {f['rows_s']:13,.0f} {best_rate / f['rows_s']:8.2f}x {f['median_ms']:15.2f} "
                  f"{f['p95_ms']:7.2f} {f['median_ms'] / best_ms:8.2f}x {f['disk_mb']:8.1f}")


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="strata bench store", description=__doc__, epilog=EPILOG,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000, help="rows ingested into each store")
    parser.add_argument("--batch", type=int, default=1_000, help="rows per put")
    parser.add_argument("--fetch", type=int, default=200, help="random ids per fetch")
    parser.add_argument("--repeats", type=int, default=50, help="timed fetches per store (median and p95 reported)")
    parser.add_argument("--dtype", choices=(*DTYPES, "both"), default="both", help="dtype of the scorer inputs")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for the stores, kept afterwards (None: a temporary folder, removed)")
    args = parser.parse_args(argv)
    if min(args.rows, args.batch, args.fetch, args.repeats) < 1:
        parser.error("--rows, --batch, --fetch and --repeats must be >= 1")
    if args.out is not None and args.out.exists() and any(args.out.iterdir()):
        parser.error(f"--out {args.out} is not empty")
    dtypes = DTYPES if args.dtype == "both" else (args.dtype,)
    for dtype in dtypes:
        scorer, source = row_bytes(dtype)
        print(f"store: {dtype} row = {scorer:,} B scorer inputs + {source:,} B float32 frame_feats = {scorer + source:,} B; "
              f"a fetch of {args.fetch} moves {(scorer + source) * args.fetch / 1e6:.1f} MB", flush=True)
    print(f"store: {args.rows:,} rows in puts of {args.batch:,}; fetch {args.fetch} random ids x {args.repeats}, warm cache; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory(prefix="strata-bench-store-") as scratch:
        root = args.out or Path(scratch)
        results = {dtype: bench_dtype(root / dtype, dtype, args) for dtype in dtypes}
    print_table(results)
    return 0
