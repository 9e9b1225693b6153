"""``strata bench agreement``: do the running service's answers agree with exhaustive scoring of all it holds?

For ``--queries`` text queries (the shipped MSR-VTT captions) and as many video queries (indexed videos by id, in
id order), at each ``--depths`` (0: the service's default depth): the gateway's top ``--top-k`` through gRPC, as
users get it, against the top ``--top-k`` of the same version's scorer over every committed item of the other
kind, computed in this process from the tensor store records the gateway re-ranks (ties broken by id on both
sides). Agreement@k is the mean share of the exhaustive top k that the service returned.

Exhaustive scoring is timed with the service's scorer (ONNX Runtime, one thread, as the gateway runs it) at the
best of a few batch shapes, tried on the first block of items; the time per query counts the scoring only, with
the records already read (their reading is reported beside it), so the speed-up of the service over it is a lower
bound. Run it on a quiet machine, against the corpus ``strata bench e2e`` filled.
"""
from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from common.conventions import add_json_flag, emit_json, non_negative_int, positive_int, say, standalone_parser
from common.serving_tables import CAPTIONS, VIDEOS
from evaluation.bench.rerank import top_ids

DIRECTIONS = {"text_to_video": VIDEOS, "video_to_text": CAPTIONS}   # direction -> the kind it ranks
SHAPES = ((1, 500), (50, 100), (50, 500), (50, 2_000))               # (queries, items) per scorer call, tried
TARGET_AGREEMENT, TARGET_SPEEDUP = 0.99, 100.0                       # the service's targets (2 cores)


def run(argv: list[str]) -> int:
    parser = standalone_parser("strata bench agreement", __doc__,
                               ["strata bench agreement --json agreement.json",
                                "strata bench agreement --queries 50 --depths 0 200 500"])
    parser.add_argument("--queries", type=positive_int, default=200, help="queries per direction")
    parser.add_argument("--top-k", type=positive_int, default=10, help="hits compared per query")
    parser.add_argument("--depths", type=non_negative_int, nargs="+", default=[0],
                        help="first-stage depths the service is asked at (0: its default)")
    parser.add_argument("--url", help="gateway address (default: the running one's record, else the settings)")
    add_json_flag(parser, "the settings of the run and every row")
    args = parser.parse_args(argv)
    tell = say(args)
    rows = measure(args, tell)
    tell("\n" + table(rows))
    emit_json(args, {"queries": args.queries, "top_k": args.top_k, "rows": rows})
    return 0


def measure(args, tell) -> list[dict]:
    from clients.client import StrataClient
    from common.connect import gateway_url
    from common.settings import load_settings
    from evaluation.bench.floor import in_process_version
    from training.data.msrvtt_captions import load_msrvtt_captions

    settings = load_settings()
    url = gateway_url(settings, args.url)
    with StrataClient(url, timeout_s=600, settings=settings) as client:
        info = client.describe()
        with in_process_version(settings, info.model.name, info.model.version) as (served, _):
            held = {kind: committed(served, kind) for kind in (VIDEOS, CAPTIONS)}
            tell(f"agreement: {info.model.name} version {info.model.version} at {url}; {len(held[VIDEOS]):,} videos "
                 f"and {len(held[CAPTIONS]):,} captions committed; {args.queries} queries per direction")
            queries = {"text_to_video": load_msrvtt_captions()[:args.queries],
                       "video_to_text": held[VIDEOS][:args.queries]}
            rows = []
            for direction, kind in DIRECTIONS.items():
                asked = queries[direction]
                truth, timing = exhaustive_tops(served, direction, asked, held[kind], args.top_k, tell)
                for depth in args.depths:
                    answers, walls, candidates = service_tops(client, direction, asked, args.top_k, depth)
                    shares = [len(set(a) & set(t)) / args.top_k for a, t in zip(answers, truth)]
                    p50 = float(np.percentile(walls, 50))
                    rows.append({"direction": direction, "items": len(held[kind]), "queries": len(asked),
                                 "depth": candidates, "agreement": float(np.mean(shares)),
                                 "exact": float(np.mean([s == 1.0 for s in shares])), "service_p50_ms": p50,
                                 **timing, "speedup": timing["exhaustive_ms"] / p50})
                    tell(line(rows[-1]))
    return rows


def committed(served, kind: str) -> list[str]:
    """Ids of ``kind`` the service can answer with: stored, and with their main row in Milvus."""
    stored = sorted(served.stores[kind].ids())
    found: set[str] = set()
    for start in range(0, len(stored), 5_000):
        found |= served.index.exists(served.collections[kind], stored[start:start + 5_000])
    return [item for item in stored if item in found]


def service_tops(client, direction: str, queries: Sequence[str], top_k: int, depth: int
                 ) -> tuple[list[list[str]], list[float], int]:
    """The service's answers, one call per query: (ids per query, ms per call, the candidates it re-ranked)."""
    answers, walls, candidates = [], [], 0
    for query in queries:
        started = time.perf_counter()
        if direction == "text_to_video":
            reply = client.search_videos(query, top_k=top_k, candidate_depth=depth)
        else:
            reply = client.search_captions(video_id=query, top_k=top_k, candidate_depth=depth)
        walls.append((time.perf_counter() - started) * 1e3)
        answers.append([hit.id for hit in reply.hits])
        candidates = reply.candidates
    return answers, walls, candidates


def exhaustive_tops(served, direction: str, queries: Sequence[str], items: list[str], top_k: int, tell
                    ) -> tuple[list[list[str]], dict]:
    """Every query against every item with the version's scorer: (the top ``top_k`` ids per query, ties by id;
    the timing: scoring and reading ms per query, and the batch shape used)."""
    kind = DIRECTIONS[direction]
    if direction == "text_to_video":
        query_records = [item for start in range(0, len(queries), 64)
                         for item in served.model.embed_texts(queries[start:start + 64]).items]
    else:
        query_records = served.stores[VIDEOS].get(list(queries), served.fetched[VIDEOS])

    def score(asked, block):
        return (served.model.score(asked, block).fused if direction == "text_to_video"
                else served.model.score(block, asked).fused.T)

    def read(ids):
        return served.stores[kind].get(list(ids), served.fetched[kind])

    shape = best_shape(score, query_records, read(items[:max(n for _, n in SHAPES)]))
    per_call, block_size = shape
    scores = np.empty((len(queries), len(items)), np.float32)
    reading = scoring = 0.0
    for start in range(0, len(items), block_size):
        began = time.perf_counter()
        block = read(items[start:start + block_size])
        reading += time.perf_counter() - began
        began = time.perf_counter()
        for q0 in range(0, len(queries), per_call):
            scores[q0:q0 + per_call, start:start + len(block)] = score(query_records[q0:q0 + per_call], block)
        scoring += time.perf_counter() - began
        if (start // block_size) % 20 == 0:
            tell(f"  {direction} exhaustive: {start + len(block):,} / {len(items):,} items")
    tops = [top_ids(items, row, top_k) for row in scores]
    return tops, {"exhaustive_ms": scoring * 1e3 / len(queries), "read_ms": reading * 1e3 / len(queries),
                  "batch": list(shape)}


def best_shape(score, query_records: list, block: list) -> tuple[int, int]:
    """The (queries, items) per scorer call of :data:`SHAPES` with the least time per pair on this block."""
    def per_pair(shape: tuple[int, int]) -> float:
        asked, items = query_records[:shape[0]], block[:shape[1]]
        score(asked, items)   # warm: ONNX Runtime plans each new shape once
        began = time.perf_counter()
        score(asked, items)
        return (time.perf_counter() - began) / (len(asked) * len(items))
    return min(SHAPES, key=per_pair)


def line(row: dict) -> str:
    return (f"{row['direction']:13s} {row['items']:9,d} {row['depth']:6d} {row['queries']:6d} {row['agreement']:9.3f} "
            f"{row['exact']:6.2f} {row['service_p50_ms']:9.1f} {row['exhaustive_ms']:11.1f} {row['read_ms']:8.1f} "
            f"{row['speedup']:8.1f}")


def table(rows: list[dict]) -> str:
    lines = [f"{'direction':13s} {'items':>9s} {'depth':>6s} {'asked':>6s} {'agree@k':>9s} {'exact':>6s} "
             f"{'p50 ms':>9s} {'exhaust ms':>11s} {'read ms':>8s} {'speedup':>8s}",
             *map(line, rows),
             f"targets: agreement@k >= {TARGET_AGREEMENT}, the service >= {TARGET_SPEEDUP:g}x faster than exhaustive "
             f"scoring ('exact': the share of queries whose top k is the exhaustive top k)"]
    for row in rows:
        met = row["agreement"] >= TARGET_AGREEMENT and row["speedup"] >= TARGET_SPEEDUP
        lines.append(f"  {row['direction']} depth {row['depth']}: agreement {row['agreement']:.3f}, "
                     f"{row['speedup']:.0f}x: {'met' if met else 'missed'}")
    return "\n".join(lines)
