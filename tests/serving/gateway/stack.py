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
