"""The real local stack for the gateway tests: an exported HGR (fast, random weights), Milvus Lite's server,
tritonserver and the gateway, each started as `strata up` starts them, on free ports, in the session's STRATA_HOME;
a corpus larger than the candidate depths the tests ask for."""
from __future__ import annotations

import pytest

from tests.serving.gateway.corpus import FREE_PORTS, VIDEOS, corpus_videos, sample_captions
from training.settings import Settings


@pytest.fixture(scope="session")
def stack(strata_home):
    """The running stack with the corpus indexed: yields (settings, StackState)."""
    from clients.cli import main
    from clients.client import StrataClient, Video
    from deploy.stack import down, up

    settings = Settings(**FREE_PORTS, candidate_depth=40)
    assert main(["export", "--model", "hgr", "--preset", "fast", "--random-init", "--seed", "3",
                 "--repo", str(settings.repository)]) == 0
    try:
        state = up(settings, log=lambda *_: None)
        with StrataClient(state.gateway) as client:
            client.index_videos([Video(i, f, source="synthetic", duration=len(f) / 2) for i, f in corpus_videos()],
                                batch=32)
            client.index_captions([(f"cap{i:04d}", text, f"vid{i % VIDEOS:04d}")
                                   for i, text in enumerate(sample_captions(VIDEOS))])
        yield settings, state
    finally:
        down(log=lambda *_: None)


@pytest.fixture()
def client(stack):
    from clients.client import StrataClient
    from deploy.stack import gateway_url

    with StrataClient(gateway_url(stack[0]), timeout_s=60) as c:   # the record: a restart may move the port
        yield c
