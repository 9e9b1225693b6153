"""The real local stack for the gateway tests: an exported HGR (fast, random weights), Milvus Lite's server,
tritonserver and the gateway, each started as `strata up` starts them, on free ports; a corpus larger than the
candidate depths the tests ask for."""
from __future__ import annotations

from contextlib import contextmanager

import pytest

from common.settings import Settings
from tests.serving.gateway.corpus import BINDS, FREE_PORTS, VIDEOS, corpus_videos, sample_captions


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


@pytest.fixture(scope="session")
def stack(strata_home):
    """The running stack with the corpus indexed: yields (settings, StackState)."""
    settings = Settings(**FREE_PORTS, **BINDS, candidate_depth=40)
    with running_stack(settings) as state:
        yield settings, state


@pytest.fixture()
def client(stack):
    from clients.client import StrataClient
    from common.connect import gateway_url

    with StrataClient(gateway_url(stack[0]), timeout_s=60) as c:   # the record: a restart may move the port
        yield c
