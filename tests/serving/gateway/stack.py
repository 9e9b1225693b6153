"""The real local stack the gateway and client tests query: an exported HGR (fast, random weights), Milvus Lite's
server, tritonserver and the gateway, each started as `strata up` starts them, on free ports; a corpus larger than
the candidate depths the tests ask for. The session's fixtures (``stack``, ``client``) are in tests/conftest.py."""
from __future__ import annotations

from contextlib import contextmanager

from common.settings import Settings
from tests.serving.gateway.corpus import VIDEOS, corpus_videos, sample_captions


def export_hgr(settings: Settings, seed: int) -> None:
    """A freshly initialised HGR (fast) as the next version of hgr_fast; ``seed`` sets its weights."""
    from clients.cli import main

    assert main(["export", "--model", "hgr", "--preset", "fast", "--random-init", "--seed", str(seed),
                 "--repo", str(settings.repository)]) == 0


@contextmanager
def running_stack(settings: Settings):
    """Export version 1, bring the stack up in the current STRATA_HOME, index the corpus; down at the end."""
    from clients.client import StrataClient, Video
    from deploy.stack import down, up

    export_hgr(settings, seed=3)
    try:
        state = up(settings, log=lambda *_: None)
        with StrataClient(state.gateway) as client:
            client.index_videos([Video(i, f, source="synthetic", duration=len(f) / 2) for i, f in corpus_videos()],
                                batch=32)
            client.index_captions([(f"cap{i:04d}", text, f"vid{i % VIDEOS:04d}")
                                   for i, text in enumerate(sample_captions(VIDEOS))])
        yield state
    finally:
        down(log=lambda *_: None)


@contextmanager
def side_gateway(settings: Settings, **changes):
    """A second gateway in this process on the running stack's Milvus and Triton, with ``changes`` to the settings
    (any free ports): yields (gateway, url). Its counters (:mod:`serving.gateway.metrics`) are this process's."""
    from dataclasses import replace

    from common.connect import service_settings
    from serving.gateway.server import Gateway

    settings = replace(service_settings(settings), gateway_port=0, gateway_metrics_port=0, **changes)
    gateway = Gateway(settings)
    gateway.start()
    try:
        yield gateway, f"{settings.gateway_address}:{gateway.port}"
    finally:
        gateway.stop()


@contextmanager
def gateway_process_beside(settings: Settings, state, tmp_path):
    """A second gateway process on the running stack's Milvus and Triton (``state``: ``up``'s), started as ``strata
    up`` starts its own, on free ports: yields its URL; stopped (SIGTERM) at the end."""
    import json
    import subprocess
    import sys
    import time

    from clients.client import StrataClient
    from deploy.stack import service_env

    ready = tmp_path / "second-gateway.json"
    env = service_env(settings, state.milvus, int(state.triton.rsplit(":", 1)[1]))
    process = subprocess.Popen([sys.executable, "-m", "serving.gateway", "--port", "0", "--metrics-port", "0",
                                "--ready-file", str(ready)], env=env, stdout=subprocess.DEVNULL,
                               stderr=open(tmp_path / "second-gateway.log", "w"))
    try:
        deadline = time.monotonic() + 120
        while not ready.is_file():
            assert process.poll() is None, (tmp_path / "second-gateway.log").read_text()
            assert time.monotonic() < deadline, "the second gateway did not bind its port in 120 s"
            time.sleep(0.2)
        url = f"{settings.gateway_address}:{json.loads(ready.read_text())['port']}"
        with StrataClient(url, timeout_s=10) as client:
            while client.health() != "SERVING":
                assert time.monotonic() < deadline, "the second gateway did not serve in 120 s"
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=60)
