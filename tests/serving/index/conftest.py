"""Fixtures: one real Milvus Lite server process for the session (its own run folder, any free port)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from common.connect import http_uri
from serving.index.milvus_index import MilvusIndex
from serving.index.milvus_server import MilvusLiteServer

ENGINE = "milvus_lite/lib/milvus"


def engine_processes(db: str | Path) -> list[int]:
    """Pids of Milvus Lite engine binaries serving ``db`` (the check for orphans)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if ENGINE in cmdline and str(db) in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="session")
def milvus(tmp_path_factory):
    """(server, uri) of a Milvus Lite server shared by the index tests; stopped at the end of the session."""
    runs = tmp_path_factory.mktemp("milvus")
    server = MilvusLiteServer(runs)
    state = server.start(runs / "index.db", port=0)
    yield server, http_uri(state.address, state.port())
    server.stop()
    assert engine_processes(runs / "index.db") == []


@pytest.fixture()
def index(milvus, request):
    """A MilvusIndex on the session server, and a collection name of this test's own (dropped after)."""
    ix = MilvusIndex(milvus[1], timeout_s=20)
    name = "t_" + re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:60]
    if ix.has(name):
        ix.drop(name)
    yield ix, name
    for collection in ix.collections():
        if collection.startswith(name):
            ix.drop(collection)
    ix.close()
