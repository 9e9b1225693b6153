"""Load, deadlines and faults on the running stack: the admission limit refuses one call more at once while health
answers; no backend call starts after a caller gave up; retries stay bounded through an outage; a Triton stopped
under load fails calls with UNAVAILABLE within their deadlines, and they succeed again by themselves once it is back.

A second gateway runs in this process on the stack's Milvus and Triton with a limit of two calls, so its counters
(:mod:`serving.gateway.metrics`) are read directly.
"""
from __future__ import annotations

import threading
import time

import grpc
import pytest

from clients.client import StrataCallError, StrataClient
from common import deadline
from serving.gateway import metrics
from serving.proto.strata.v1 import strata_pb2_grpc as pb_grpc
from tests.serving.gateway.corpus import sample_captions
from tests.serving.gateway.stack import side_gateway

pytestmark = pytest.mark.slow

QUERY = "a man is slicing bread in a kitchen"
LIMIT = 2


@pytest.fixture(scope="module")
def small(stack):
    """A gateway in this process with ``max_concurrent_calls`` = :data:`LIMIT`, writing in batches of 8."""
    with side_gateway(stack[0], max_concurrent_calls=LIMIT, index_batch=8) as running:
        yield running


def wait_for(condition, seconds: float = 60.0) -> bool:
    """Poll ``condition`` until it holds or ``seconds`` pass; whether it held."""
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


def in_flight() -> int:
    return int(metrics.IN_FLIGHT._value.get())


def attempts(call: str, code: str) -> int:
    """Calls the gateways of this process answered with ``code``."""
    return int(metrics.REQUESTS.labels(call, code)._value.get())


def test_past_the_limit_a_call_is_refused_at_once_while_health_answers_and_retries_are_bounded(small):
    _, url = small
    release = threading.Event()
    held = []

    def hold(channel):
        def nothing_until_released():   # an IndexVideos stream that sends nothing: its call holds a slot
            release.wait(60)
            return
            yield
        try:
            pb_grpc.StrataStub(channel).IndexVideos(nothing_until_released(), timeout=90)
        except grpc.RpcError as err:
            held.append(err.code())

    channels = [grpc.insecure_channel(url) for _ in range(LIMIT)]
    threads = [threading.Thread(target=hold, args=(c,)) for c in channels]
    for thread in threads:
        thread.start()
    try:
        assert wait_for(lambda: in_flight() == LIMIT), "the held calls never started"
        before = attempts("SearchVideos", "RESOURCE_EXHAUSTED")
        with StrataClient(url, timeout_s=30) as client:
            assert client.health() == "SERVING"      # every call slot is busy, health has a thread of its own
            with pytest.raises(StrataCallError) as refused:
                client.search_videos(QUERY)
            # Refused, not queued: a queued call would wait for a slot, and the slots are held until released.
            assert in_flight() == LIMIT and not release.is_set()
            assert (refused.value.code, refused.value.reason, refused.value.limit) == (
                grpc.StatusCode.RESOURCE_EXHAUSTED, "GATEWAY_OVERLOADED", "max_concurrent_calls")
            assert refused.value.retry_after_s is not None
            first = attempts("SearchVideos", "RESOURCE_EXHAUSTED") - before
            for _ in range(10):
                with pytest.raises(StrataCallError):
                    client.search_videos(QUERY)
            more = attempts("SearchVideos", "RESOURCE_EXHAUSTED") - before - first
    finally:
        release.set()
        for thread in threads:
            thread.join(60)
        for channel in channels:
            channel.close()
    # gRPC retried the refused call (the gateway's pushback allows it) up to the policy's 4 attempts; then the
    # channel's retry throttle, its tokens spent, let each further call make one attempt (one more at most).
    print(f"\nrefused: the first call made {first} attempts, the 10 after it {more} in all")
    assert first == 4
    assert 10 <= more <= 11
    # the held calls ran to their end: a stream without videos is refused as such
    assert held == [grpc.StatusCode.INVALID_ARGUMENT] * LIMIT
    with StrataClient(url, timeout_s=30) as client:
        assert client.search_videos(QUERY, top_k=3).hits


def test_no_backend_call_starts_after_the_caller_gave_up(small):
    _, url = small
    captions = [(f"deadline-{i:04d}", text, "") for i, text in enumerate(sample_captions(400))]
    ids = [c[0] for c in captions]
    with StrataClient(url, timeout_s=300) as client:
        start, counted = time.monotonic(), deadline.started("call")
        client.index_captions(captions, batch=len(captions))
        whole, full = time.monotonic() - start, _since(counted)
        client.delete("captions", ids)

        counted = deadline.started("call")
        with pytest.raises(StrataCallError) as late:
            client.index_captions(captions, batch=len(captions), timeout_s=whole / 4)
        when_it_gave_up = _since(counted)
        assert wait_for(lambda: in_flight() == 0), "the gateway's call never ended"
        assert late.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert _since(counted) == when_it_gave_up          # nothing started after the caller gave up
        assert when_it_gave_up["triton"] < full["triton"]  # and the work was cut short
        assert client.index_captions(captions[:1]).indexed == 1   # the gateway serves on
        print(f"\nIndexCaptions of {len(captions)}: {whole:.2f} s and backend calls {full} in full; with a "
              f"deadline of {whole / 4:.2f} s: {late.value.code.name}, backend calls {when_it_gave_up}, none after")
        client.delete("captions", ids)


def _since(counted: dict[str, int]) -> dict[str, int]:
    """Backend calls started serving calls since ``counted`` (not the heartbeats and health checks beside them)."""
    now = deadline.started("call")
    return {backend: now[backend] - counted[backend] for backend in now}


def test_triton_stopped_under_load_fails_calls_in_time_and_they_recover_by_themselves(stack, small, monkeypatch):
    from clients.cli import main
    from common.connect import gateway_url
    from serving.triton.server import TritonServer

    _, url = small
    timeout_s = 8.0
    outcomes: list[tuple[float, str, float]] = []   # (when, status, seconds the call took)
    stop = threading.Event()

    def load():
        with StrataClient(url, timeout_s=timeout_s) as client:
            while not stop.is_set():
                start = time.monotonic()
                try:
                    client.search_videos(QUERY, top_k=3)
                    status = "OK"
                except StrataCallError as err:
                    status = err.code.name
                outcomes.append((start, status, time.monotonic() - start))

    before = TritonServer().state()
    workers = [threading.Thread(target=load) for _ in range(LIMIT)]
    for worker in workers:
        worker.start()
    try:
        assert wait_for(lambda: any(s == "OK" for _, s, _ in outcomes))
        assert main(["triton", "stop"]) == 0
        stopped = time.monotonic()
        assert wait_for(lambda: any(s != "OK" and t > stopped for t, s, _ in outcomes))
        monkeypatch.setenv("STRATA_TRITON_ADDRESS", before.address)    # back where it was, as an operator would
        assert main(["triton", "start", "--http-port", str(before.http_port), "--grpc-port", str(before.grpc_port),
                     "--metrics-port", str(before.metrics_port)]) == 0
        back = time.monotonic()
        assert wait_for(lambda: any(s == "OK" and t > back for t, s, _ in outcomes), 60)
    finally:
        stop.set()
        for worker in workers:
            worker.join(60)
    during = [(s, took) for t, s, took in outcomes if stopped < t < back]
    assert {s for s, _ in during} <= {"OK", "UNAVAILABLE"}, during   # calls begun before the stop may still end OK
    assert "UNAVAILABLE" in {s for s, _ in during}
    assert all(took < timeout_s for _, took in during)               # each within its deadline
    recovered = min(t + took for t, s, took in outcomes if s == "OK" and t > back) - back
    print(f"\nTriton stopped under load: {len(during)} calls while it was down, "
          f"{sum(s == 'UNAVAILABLE' for s, _ in during)} UNAVAILABLE, the slowest answered in "
          f"{max(took for _, took in during):.2f} s (deadline {timeout_s:.0f} s); the first call after the restart "
          f"succeeded {recovered:.2f} s after Triton was ready")
    with StrataClient(gateway_url(stack[0]), timeout_s=30) as client:   # the stack's own gateway healed too
        assert wait_for(lambda: client.health() == "SERVING")
        assert client.search_videos(QUERY, top_k=3).hits
