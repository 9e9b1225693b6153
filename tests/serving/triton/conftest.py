"""Fixtures: a model repository with real exported versions, and a real tritonserver on free loopback ports."""
from __future__ import annotations

import pytest

from export.exporter import ParityData, export_version, load_source
from serving.triton.server import TritonServer

BASE = "vsepp_fast"


def export_vsepp(repo, version: int, seed: int) -> None:
    """A freshly initialised VSE++ (fast preset) as ``version`` of ``vsepp_fast``; ``seed`` sets its weights."""
    model, source = load_source(None, "vsepp", "fast", seed)
    export_version(model, source, repo, version, parity=ParityData(random_queries=32), log=lambda *_: None)


@pytest.fixture(scope="session")
def repo_v1(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    export_vsepp(repo, 1, seed=0)
    return repo


@pytest.fixture()
def start_server(tmp_path):
    """Start a server (its own run dir, free ports); stopped at teardown."""
    servers = []

    def start(repo, models=None):
        server = TritonServer(tmp_path / f"run{len(servers)}")
        servers.append(server)
        return server, server.start(repo, models, ports=None)

    yield start
    for server in servers:
        server.stop()
