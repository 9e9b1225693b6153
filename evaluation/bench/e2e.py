"""``strata bench e2e``: both query directions through the running gateway (``strata up``), driven by Locust.

For each corpus size (the corpus grows, so sizes are taken in rising order): fills the index with the streamed
SynthVTR benchmark corpus (:mod:`evaluation.bench.corpus`: videos the demo's checkpoint never trained on, one
caption each), then asks, per direction, every query once at concurrency 1 (latency percentiles, time per stage)
and for ``--seconds`` at each ``--concurrency`` (throughput: answered calls per second; a call the gateway refuses
past its ``max_concurrent_calls``, after the client's retries, counts as failed). Text queries are the real MSR-VTT captions shipped
with Strata; video queries are indexed corpus videos asked by id. The gateway keeps no result cache. The load
tool's own CPU use and each local part's (gateway, tritonserver, Milvus) are reported beside the figures: on a
small machine they share the cores.
"""
from __future__ import annotations

import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common.conventions import (
    add_depth_flag,
    add_json_flag,
    emit_json,
    non_negative_int,
    positive_int,
    say,
    standalone_parser,
)
from common.errors import ConfigError
from evaluation.bench.parts import cpu_seconds, footprint, local_parts

DIRECTIONS = ("text_to_video", "video_to_text")
LOCUSTFILE = Path(__file__).with_name("e2e_locustfile.py")
ROOT = Path(__file__).resolve().parents[2]
HEADER = (f"{'items':>8} {'direction':13s} {'users':>5} {'calls':>6} {'failed':>6} {'QPS':>6} {'p50 ms':>7} "
          f"{'p95 ms':>7} {'p99 ms':>7}  cores: {'load':>4} {'gatew':>5} {'trit':>4} {'milv':>4}")
STAGES = ("parse", "backbone", "tower", "search", "fetch", "rerank", "evidence")   # the gateway's, in a query's order


def run(argv: list[str]) -> int:
    parser = standalone_parser("strata bench e2e", __doc__,
                               ["strata bench e2e --items 1000 10000 100000 --json e2e.json --out e2e.png",
                                "strata bench e2e --items 1000 --queries 200 --seconds 10"])
    add_size_flags(parser)
    parser.add_argument("--concurrency", type=positive_int, nargs="+", default=[8, 32],
                        help="Locust users of the throughput runs (each a closed loop)")
    parser.add_argument("--seconds", type=positive_int, default=20, help="length of each throughput run")
    parser.add_argument("--out", default="e2e.png", help="the figure (PNG)")
    add_json_flag(parser, "the settings of the run and every row")
    args = parser.parse_args(argv)
    require_locust("strata bench e2e")
    tell = say(args)
    info, rows, footprints = measure_sizes("e2e", args, args.concurrency, tell)
    tell("\n" + HEADER)
    for row in rows:
        tell(line(row))
    tell(stage_table(rows))
    tell(target_table(rows))
    for entry in footprints:
        tell(footprint_line(entry))
    plot(rows, Path(args.out))
    tell(f"figure: {args.out}")
    emit_json(args, {"model": {"name": info.model.name, "version": info.model.version}, "url": rows[0]["url"],
                     "queries": args.queries, "top_k": args.top_k, "depth": args.depth or 0,
                     "seconds": args.seconds, "load_average": os.getloadavg()[0], "cores": os.cpu_count(),
                     "rows": rows, "footprint": footprints})
    return 0


def add_size_flags(parser) -> None:
    """The flags of :func:`measure_sizes`: corpus sizes, queries, hits, depth and the gateway's address."""
    parser.add_argument("--items", type=positive_int, nargs="+", default=[1_000, 10_000],
                        help="corpus sizes: corpus videos indexed, each with a caption (other items the gateway "
                             "holds stay and are reported)")
    parser.add_argument("--queries", type=positive_int, default=1_000,
                        help="distinct queries per direction (at most 1,000 texts: the MSR-VTT captions shipped)")
    parser.add_argument("--top-k", type=positive_int, default=10, help="hits per query")
    add_depth_flag(parser)
    parser.add_argument("--evidence", action="store_true",
                        help="ask every query for its hits' temporal evidence (its cost: compare a run without)")
    add_floor_flag(parser)
    parser.add_argument("--url", help="gateway address (default: the running one's record, else the settings)")


def add_floor_flag(parser) -> None:
    parser.add_argument("--floor-queries", type=non_negative_int, default=200,
                        help="queries per direction of the floor run at each size: the gateway's query code in this "
                             "process, towers in ONNX Runtime here, no gRPC or Triton (0: none)")


def measure_sizes(bench: str, args, concurrency: list[int], tell, settings=None) -> tuple:
    """At each of ``args.items`` (rising): fill the corpus, record the footprint, and measure both directions at
    1 user and at each of ``concurrency``, and the floor (:mod:`evaluation.bench.floor`, in each 1-user row's
    ``floor``). ``settings``: the stack's (default: those in force). -> (the gateway's describe(), rows,
    footprints)."""
    from clients.client import StrataClient
    from common.connect import gateway_url
    from common.settings import load_settings
    from evaluation.bench.corpus import fill, video_id
    from evaluation.bench.floor import measure_floor
    from training.data.msrvtt_captions import load_msrvtt_captions

    settings = settings or load_settings()
    url = args.url or gateway_url(settings)
    texts = load_msrvtt_captions()[:args.queries]
    rows: list[dict] = []
    footprints: list[dict] = []
    with StrataClient(url, timeout_s=600, settings=settings) as client:
        info = client.describe()
        tell(f"{bench}: {info.model.name} version {info.model.version} at {url}; sizes "
             f"{', '.join(f'{s:,}' for s in sorted(args.items))}; {len(texts)} text and up to {args.queries} video "
             f"queries; users 1 (every query once)"
             + (f" and {', '.join(map(str, concurrency))} ({args.seconds} s)" if concurrency else "")
             + f"; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        for size in sorted(args.items):
            fill(client, size, tell)
            indexed = client.describe()
            footprints.append({"items": size, "videos": indexed.videos, "captions": indexed.captions,
                               **footprint(settings)})
            tell(footprint_line(footprints[-1]))
            videos = [video_id(i) for i in range(min(args.queries, size))]
            plans = {"text_to_video": texts, "video_to_text": videos}
            measured = []
            for direction in DIRECTIONS:
                for users in (1, *concurrency):
                    row = measure(url, direction, plans[direction], users, args)
                    row.update(items=size, videos=indexed.videos, captions=indexed.captions, url=url)
                    measured.append(row)
                    tell(line(row))
            if args.floor_queries:
                depths = {"text_to_video": client.search_videos(texts[0], args.top_k, args.depth or 0).candidates,
                          "video_to_text": client.search_captions(videos[0], top_k=args.top_k,
                                                                  candidate_depth=args.depth or 0).candidates}
                floors = measure_floor(settings, info.model.name, info.model.version,
                                       {d: q[:args.floor_queries] for d, q in plans.items()}, args.top_k, depths,
                                       args.evidence)
                for row in measured:
                    if row["users"] == 1:
                        row["floor"] = floors[row["direction"]]
                        tell(floor_line(row))
            rows.extend(measured)
    return info, rows, footprints


def require_locust(command: str) -> None:
    """Refuse ``command`` where Locust, which :func:`measure` runs as its own process, is not installed."""
    if importlib.util.find_spec("locust") is None:
        raise ConfigError(f"{command} drives the gateway with Locust, which is not installed: "
                          "pip install -e '.[load]' (or: pip install 'strata[load]')")


def measure(url: str, direction: str, queries: list[str], users: int, args) -> dict:
    """One Locust run: every query once (one user) or ``args.seconds`` of load (more users); the row of figures."""
    once = users == 1
    with tempfile.TemporaryDirectory(prefix="strata-bench-e2e-") as scratch:
        plan, out = Path(scratch) / "plan.json", Path(scratch) / "calls.json"
        plan.write_text(json.dumps({"direction": direction, "queries": queries, "top_k": args.top_k,
                                    "depth": args.depth or 0, "evidence": args.evidence,
                                    "limit": len(queries) if once else 0, "out": str(out)}))
        env = {**os.environ, "STRATA_BENCH_PLAN": str(plan),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        run_time = 3_600 if once else args.seconds   # one user stops itself after the last query
        command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--users", str(users),
                   "--spawn-rate", str(users), "--run-time", f"{run_time}s", "--host", url, "--only-summary",
                   "--stop-timeout", "30", "--exit-code-on-error", "0", "--loglevel", "WARNING"]
        parts = local_parts()
        before = cpu_seconds(parts), resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        after = cpu_seconds(parts), resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0 or not out.is_file():
            raise ConfigError(f"Locust failed ({' '.join(command[:6])} ...): {done.stderr[-2000:]}")
        calls = json.loads(out.read_text())
    walls = np.array(calls["walls_ms"])
    count = len(walls) + len(calls["failed"])
    load_cpu = (after[1].ru_utime + after[1].ru_stime) - (before[1].ru_utime + before[1].ru_stime)
    cores = {name: (after[0][name] - before[0][name]) / wall for name in before[0]}
    return {
        "direction": direction, "users": users, "calls": count, "failed": len(calls["failed"]),
        "qps": len(walls) / calls["seconds"] if calls["seconds"] else 0.0,   # answered calls only
        "p50_ms": _pct(walls, 50), "p95_ms": _pct(walls, 95), "p99_ms": _pct(walls, 99),
        "stages_p50_ms": {stage: _pct(np.array(ms), 50) for stage, ms in calls["stages_ms"].items()},
        "cores": {"load_tool": load_cpu / wall, **cores}, "wall_s": wall,
    }


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def footprint_line(entry: dict) -> str:
    items = entry["videos"] + entry["captions"]
    memory = ", ".join(f"{name} {entry['private_mib'][name]:,.0f} MiB ({mib:,.0f} with shared pages)"
                       for name, mib in entry["rss_mib"].items())
    disk = "; ".join(f"{label} {value / 2**20:,.0f} MiB ({value / items:,.0f} bytes per item)"
                     for label, value in (("Milvus", entry["milvus_bytes"]), ("tensor store", entry["store_bytes"]))
                     if value is not None)
    return (f"{entry['items']:,} corpus items ({entry['videos']:,} videos, {entry['captions']:,} captions held): "
            f"private resident memory {memory}; on disk {disk or 'elsewhere'}")


def line(row: dict) -> str:
    cores = row["cores"]
    shares = " ".join(f"{cores.get(name, float('nan')):{width}.2f}"
                      for name, width in (("load_tool", 4), ("gateway", 5), ("tritonserver", 4), ("milvus", 4)))
    return (f"{row['items']:8,d} {row['direction']:13s} {row['users']:5d} {row['calls']:6d} {row['failed']:6d} "
            f"{row['qps']:6.1f} {row['p50_ms']:7.1f} {row['p95_ms']:7.1f} {row['p99_ms']:7.1f}         {shares}")


def floor_line(row: dict) -> str:
    floor = row["floor"]
    stages = ", ".join(f"{stage} {ms:.2f}" for stage, ms in floor["stages_p50_ms"].items())
    return (f"{'':8s} {row['direction']:13s} floor ({floor['queries']} queries in this process): p50 "
            f"{floor['p50_ms']:.1f} ms, p99 {floor['p99_ms']:.1f} (the service {row['p50_ms']:.1f}, "
            f"{row['p99_ms']:.1f}); stages {stages}; {floor['cpu_ms']:.1f} ms of CPU per query (here and in Milvus): "
            f"at most {floor['qps_ceiling']:.0f} QPS on {os.cpu_count()} cores")


def stage_table(rows: list[dict]) -> str:
    """Median time per gateway stage at concurrency 1, per size and direction, beside the client's p50; under each,
    the same stages' floor (:mod:`evaluation.bench.floor`) where it was measured."""
    single = [r for r in rows if r["users"] == 1]
    stages = sorted({s for r in single for s in r["stages_p50_ms"]}, key=STAGES.index)
    lines = ["\nstage medians at 1 user (ms): " + "  ".join(stages) + "  | client p50; floor: the same in this process",
             f"{'items':>8} {'direction':13s} {'':7s}" + " ".join(f"{s:>8s}" for s in stages) + f" {'client':>8s}"]
    for r in single:
        for label, figures in (("service", r), ("floor", r.get("floor"))):
            if figures is not None:
                lines.append(f"{r['items']:8,d} {r['direction']:13s} {label:7s}"
                             + " ".join(f"{figures['stages_p50_ms'][s]:8.2f}" if s in figures["stages_p50_ms"]
                                        else f"{'-':>8s}" for s in stages) + f" {figures['p50_ms']:8.2f}")
    return "\n".join(lines)


# The performance targets of one machine (2 cores), each: (what, direction, figure, at most / at least, bound)
TARGETS = (("p50 ms, 1 user", "text_to_video", "p50_ms", "<=", 15.0),
           ("p99 ms, 1 user", "text_to_video", "p99_ms", "<=", 50.0),
           ("p50 ms, 1 user", "video_to_text", "p50_ms", "<=", 15.0),
           ("QPS, 8 users, 0 failed", "text_to_video", "qps", ">=", 100.0),
           ("QPS, 8 users, 0 failed", "video_to_text", "qps", ">=", 100.0),
           ("p50 largest / smallest size", "text_to_video", "growth", "<=", 1.5),
           ("p50 largest / smallest size", "video_to_text", "growth", "<=", 1.5))


def target_table(rows: list[dict]) -> str:
    """Each target at the largest size measured, met or missed, beside its floor: the same figure of the floor
    run (the most QPS the cores allow, for throughput)."""
    largest, smallest = max(r["items"] for r in rows), min(r["items"] for r in rows)
    growth = f"growth: against {smallest:,}" if smallest < largest else "growth: needs two sizes"
    lines = [f"\ntargets at {largest:,} items ({growth}); floor: the same figure in this process",
             f"{'figure':30s} {'direction':13s} {'target':>8s} {'measured':>9s} {'floor':>8s}  verdict"]
    for what, direction, figure, sense, bound in TARGETS:
        failed = 0
        single = {r["items"]: r for r in rows if r["direction"] == direction and r["users"] == 1}
        if figure == "growth":
            if largest == smallest:
                continue
            value = single[largest]["p50_ms"] / single[smallest]["p50_ms"]
            floors = [single[n].get("floor") for n in (largest, smallest)]
            floor = floors[0]["p50_ms"] / floors[1]["p50_ms"] if all(floors) else None
        elif figure == "qps":
            loaded = [r for r in rows if r["direction"] == direction and r["users"] == 8 and r["items"] == largest]
            if not loaded:
                continue
            value, failed = loaded[0]["qps"], loaded[0]["failed"]
            floor = (single[largest].get("floor") or {}).get("qps_ceiling")
        else:
            value = single[largest][figure]
            floor = (single[largest].get("floor") or {}).get(figure)
        met = value <= bound if sense == "<=" else value >= bound and failed == 0
        lines.append(f"{what:30s} {direction:13s} {sense}{bound:6g} {value:9.2f} "
                     + (f"{floor:8.2f}" if floor is not None else f"{'-':>8s}") + f"  {'met' if met else 'missed'}")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    """Left: p50 and p99 at 1 user against corpus size; right: QPS against users, one line per size and direction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (latency, throughput) = plt.subplots(1, 2, figsize=(10, 3.8))
    for direction, color in zip(DIRECTIONS, ("C0", "C1")):
        single = sorted((r for r in rows if r["direction"] == direction and r["users"] == 1), key=lambda r: r["items"])
        latency.plot([r["items"] for r in single], [r["p50_ms"] for r in single], marker="o", color=color,
                     label=f"{direction} p50")
        latency.plot([r["items"] for r in single], [r["p99_ms"] for r in single], marker="^", ls="--", color=color,
                     label=f"{direction} p99")
        for size in sorted({r["items"] for r in rows}):
            mine = sorted((r for r in rows if r["direction"] == direction and r["items"] == size),
                          key=lambda r: r["users"])
            throughput.plot([r["users"] for r in mine], [r["qps"] for r in mine], marker="o", color=color,
                            alpha=0.4 + 0.6 * size / max(r["items"] for r in rows), label=f"{direction} {size:,}")
    latency.set_xscale("log")
    latency.set_xlabel("items indexed", fontsize=8)
    latency.set_ylabel("ms per query (client)", fontsize=8)
    latency.legend(fontsize=6)
    throughput.set_xscale("log", base=2)
    throughput.set_xlabel("Locust users (closed loops)", fontsize=8)
    throughput.set_ylabel("queries per second", fontsize=8)
    throughput.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
