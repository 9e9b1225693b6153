"""Session fixtures: a private STRATA_HOME, one tiny SynthVTR dataset shared by the engine tests, and the running
stack that the gateway and client tests query."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the MiniLM weights ship in a package; never reach for a hub

TINY_SYNTH = {"videos": 80, "captions_per_video": 3, "seed": 1, "frame_dim": 32, "region_dim": 24,
              "regions_per_frame": 6, "frames": [6, 12]}


@pytest.fixture(scope="module")
def one_thread():
    """torch on one thread for a module's tests (and its module fixtures), restored after: the thread count is
    process-wide, so a module that set it and left it would change every test that runs after it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def strata_home(tmp_path_factory):
    """Every test session gets its own STRATA_HOME (datasets, caches, runs, server state)."""
    home = tmp_path_factory.mktemp("strata_home")
    previous = os.environ.get("STRATA_HOME")
    os.environ["STRATA_HOME"] = str(home)
    yield home
    if previous is None:
        os.environ.pop("STRATA_HOME", None)
    else:
        os.environ["STRATA_HOME"] = previous


@pytest.fixture(scope="session")
def tiny_data_config(strata_home):
    """A DataConfig of a tiny SynthVTR set (generated on first use under the session's home)."""
    from training.engine.config import DataConfig

    return DataConfig(path="tiny-synthvtr", synth=dict(TINY_SYNTH), test_splits=("tst", "tst_unseen"))


@pytest.fixture(scope="session")
def stack(strata_home):
    """The running stack (tests/serving/gateway/stack.py) with the corpus indexed: yields (settings, StackState)."""
    from common.settings import Settings
    from tests.serving.gateway.corpus import BINDS, FREE_PORTS
    from tests.serving.gateway.stack import running_stack

    settings = Settings(**FREE_PORTS, **BINDS, candidate_depth=40)
    with running_stack(settings) as state:
        yield settings, state


@pytest.fixture()
def client(stack):
    from clients.client import StrataClient
    from common.connect import gateway_url

    with StrataClient(gateway_url(stack[0]), timeout_s=60) as c:   # the record: a restart may move the port
        yield c
