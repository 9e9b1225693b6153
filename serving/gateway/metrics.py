"""The gateway's Prometheus metrics: calls by name and status code, calls in flight, latency per call and per query
stage, corpus sizes, and the backend calls started (Triton, Milvus, the tensor store). Served over HTTP on the
``gateway_metrics_port`` setting."""
from __future__ import annotations

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily

from common import deadline

REQUESTS = Counter("strata_requests", "gRPC calls by method and status code", ["call", "code"])
LATENCY = Histogram("strata_request_seconds", "gRPC call latency", ["call"],
                    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30))
STAGES = Histogram("strata_stage_seconds",
                   "query latency by stage (parse, backbone, tower, search, fetch, rerank, evidence)", ["stage"],
                   buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1))
IN_FLIGHT = Gauge("strata_calls_in_flight", "gRPC calls running (at most the max_concurrent_calls setting)")
CORPUS = Gauge("strata_corpus_items", "items indexed for the active model version", ["kind"])
# What a query costs whatever the machine (the regression alarm of `strata bench --quick` reads these):
SCORED = Counter("strata_scored_pairs", "text-video pairs scored by the re-rank")
FETCHED = Counter("strata_fetched_bytes", "tensor bytes read from the tensor store by queries", ["kind"])

class _BackendCalls:
    """``strata_backend_calls_total{backend,origin}``: read from :func:`common.deadline.started` at each scrape;
    ``origin`` is ``call`` (serving a gRPC call) or ``background`` (heartbeats, health checks)."""

    def collect(self):
        family = CounterMetricFamily("strata_backend_calls", "backend calls started, by backend and origin",
                                     labels=["backend", "origin"])
        for origin in deadline.ORIGINS:
            for backend, count in deadline.started(origin).items():
                family.add_metric([backend, origin], count)
        yield family


REGISTRY.register(_BackendCalls())


def observe_call(call: str, code: str, seconds: float) -> None:
    REQUESTS.labels(call, code).inc()
    LATENCY.labels(call).observe(seconds)


def observe_stages(timings_ms: dict[str, float]) -> None:
    for stage, ms in timings_ms.items():
        STAGES.labels(stage).observe(ms / 1e3)


def count_scored(pairs: int) -> None:
    SCORED.inc(pairs)


def count_fetched(kind: str, records) -> None:
    """Adds the bytes of the fetched ``records`` (dicts of arrays; None for a missing one)."""
    FETCHED.labels(kind).inc(sum(a.nbytes for r in records if r is not None for a in r.values()))


def set_corpus(kind: str, count: int) -> None:
    CORPUS.labels(kind).set(count)


def serve_metrics(address: str, port: int):
    """Start the metrics HTTP server (a daemon thread); returns (server, thread)."""
    return start_http_server(port, addr=address)
