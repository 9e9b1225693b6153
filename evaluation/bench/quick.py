"""``strata bench --quick``: the regression alarm, in well under two minutes, run by CI after the tests.

Brings up a stack of its own (a scratch STRATA_HOME, free ports, a randomly initialised HGR fast exported: what
is counted does not depend on the weights), indexes a small streamed corpus, asks both directions and reads the
gateway's counters (its Prometheus metrics) around each: Triton round trips, Milvus and tensor-store calls, pairs
scored and tensor bytes fetched, per query. It fails only when one of these counts goes over its budget below:
they are the same on every machine. Latencies are printed and written, never judged.
"""
from __future__ import annotations

import time
import urllib.request

import numpy as np

from common.conventions import add_json_flag, emit_json, say, standalone_parser
from common.errors import StrataError

ITEMS = 300          # videos indexed, and as many captions
QUERIES = 40         # per direction
DEPTH = 50           # first-stage candidates, asked explicitly so the counts are exact
TOP_K = 10
# Per query, at most (reason):
BUDGET = {
    "text_to_video": {
        "triton": 2,                # the text backbone, then the text tower: two round trips
        "milvus": 2,                # the first-stage search, the hits' metadata
        "store": 1,                 # the candidates' tensors, in one read
        "scored_pairs": DEPTH,      # the re-rank scores the candidates, nothing else
        "fetched_bytes": 1_400_000,  # the candidates' video records: 0.96 MB today (HGR fast, the corpus's 8-40
                                     # frames; the candidates, and so the bytes, move a little with the numerics)
    },
    "video_to_text": {
        "triton": 0,                # the query video is indexed: its tower outputs are read, not recomputed
        "milvus": 2,
        "store": 2,                 # the query video's record, then the candidates'
        "scored_pairs": DEPTH,
        "fetched_bytes": 350_000,   # the query video's record and the candidate captions': 0.23 MB today
    },
}


def run(argv: list[str]) -> int:
    parser = standalone_parser("strata bench --quick", __doc__, ["strata bench --quick --json quick.json"])
    add_json_flag(parser, "the counts, budgets and latencies")
    args = parser.parse_args(argv)
    tell = say(args)
    started = time.perf_counter()
    report = _measure(tell)
    report["seconds"] = time.perf_counter() - started
    over = over_budget(report["per_query"], BUDGET)
    report["over_budget"] = over
    tell(f"{'per query':14s} " + " ".join(f"{c:>14s}" for c in BUDGET["text_to_video"]) + f" {'p50 ms':>8s}")
    for direction, counts in report["per_query"].items():
        tell(f"{direction:14s} " + " ".join(f"{counts[c]:>14g}" for c in BUDGET[direction])
             + f" {report['p50_ms'][direction]:8.1f}")
        tell(f"{'  budget':14s} " + " ".join(f"{BUDGET[direction][c]:>14g}" for c in BUDGET[direction]))
    tell(f"quick bench: {report['seconds']:.0f} s; " + ("all counts within budget" if not over else
                                                        "OVER BUDGET: " + "; ".join(over)))
    emit_json(args, report)
    return 1 if over else 0


def over_budget(per_query: dict[str, dict[str, float]], budget: dict[str, dict[str, float]]) -> list[str]:
    """One line per count over its budget (none: all within)."""
    return [f"{direction}: {count} {per_query[direction][count]:g} per query, budget {limit:g}"
            for direction, limits in budget.items() for count, limit in limits.items()
            if per_query[direction][count] > limit]


def _measure(tell) -> dict:
    from clients.client import StrataClient
    from evaluation.bench.corpus import corpus_captions, corpus_videos, video_id
    from evaluation.bench.private import private_stack
    from training.data.msrvtt_captions import load_msrvtt_captions

    with private_stack("strata-bench-quick-", ["--model", "hgr", "--preset", "fast", "--random-init", "--seed", "0"],
                       "strata bench --quick (a random HGR fast)") as (settings, state):
        metrics = _metrics_url(settings)
        with StrataClient(state.gateway, timeout_s=120) as client:
            info = client.describe()
            client.index_videos(corpus_videos(info, ITEMS), batch=100)
            client.index_captions(list(corpus_captions(ITEMS)))
            texts = load_msrvtt_captions()[:QUERIES]
            videos = [video_id(i) for i in range(QUERIES)]
            asks = {"text_to_video": [lambda t=t: client.search_videos(t, TOP_K, DEPTH) for t in texts],
                    "video_to_text": [lambda v=v: client.search_captions(video_id=v, top_k=TOP_K,
                                                                         candidate_depth=DEPTH) for v in videos]}
            per_query, p50 = {}, {}
            for direction, calls in asks.items():
                calls[0]()                      # warm-up, outside the counts
                before = _counters(metrics)
                walls = []
                for call in calls:
                    begun = time.perf_counter()
                    answer = call()
                    walls.append(1e3 * (time.perf_counter() - begun))
                    if answer.candidates != DEPTH:
                        raise StrataError(f"strata bench --quick: {direction} scored {answer.candidates} "
                                          f"candidates, asked for {DEPTH}")
                after = _counters(metrics)
                per_query[direction] = {name: (after.get(name, 0.0) - before.get(name, 0.0)) / len(calls)
                                        for name in BUDGET[direction]}
                p50[direction] = float(np.median(walls))
                tell(f"{direction}: {len(calls)} queries, p50 {p50[direction]:.1f} ms")
    return {"items": ITEMS, "queries": QUERIES, "depth": DEPTH, "budget": BUDGET, "per_query": per_query,
            "p50_ms": p50, "model": "hgr_fast (random weights)"}


def _metrics_url(settings) -> str:
    from common.records import GATEWAY, running_part

    state = running_part(GATEWAY)
    return f"http://{settings.gateway_metrics_address}:{state.port('gateway_metrics_port')}/metrics"


def _counters(url: str) -> dict[str, float]:
    """The gateway's cost counters: backend calls made serving calls, per backend (not the background's), pairs
    scored, bytes fetched."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=30) as response:
        text = response.read().decode()
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "strata_backend_calls_total" and sample.labels["origin"] == "call":
                counts[sample.labels["backend"]] = sample.value
            elif sample.name == "strata_scored_pairs_total":
                counts["scored_pairs"] = sample.value
            elif sample.name == "strata_fetched_bytes_total":
                counts["fetched_bytes"] = counts.get("fetched_bytes", 0.0) + sample.value
    return counts
