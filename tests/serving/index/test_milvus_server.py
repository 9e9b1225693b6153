"""The Milvus Lite server process: restart keeps data and state, clean stop (no orphans), port handling."""
from __future__ import annotations

import json
import os
import signal
import socket
import time

import numpy as np
import pytest

from common.connect import http_uri
from serving.index.milvus_index import MilvusIndex
from serving.index.milvus_server import MilvusLiteServer
from serving.process import PortInUse, alive, free_port

from .conftest import engine_processes


def test_restart_keeps_data_and_state(tmp_path):
    server = MilvusLiteServer(tmp_path / "runs")
    db = tmp_path / "data" / "strata.db"
    state = server.start(db, port=0)
    record = json.loads((tmp_path / "runs" / "milvus.json").read_text())
    assert record["pid"] == state.pid and record["serves"]["db"] == str(db.resolve())
    assert record["ports"]["milvus_port"] == state.port() and record["log"].endswith("milvus.log")
    assert len(engine_processes(db)) == 1
    try:
        ix = MilvusIndex(http_uri(state.address, state.port()), timeout_s=20)
        rng = np.random.default_rng(5)
        vectors = rng.standard_normal((100, 16)).astype(np.float32)
        ix.ensure_collection("videos_v1", 16, "videos")
        ix.upsert("videos_v1", [{"id": f"v{i}", "vector": v, "duration": i} for i, v in enumerate(vectors)])
        ix.delete("videos_v1", ["v0"])
        ix.set_state("active", {"version": 1, "collection": "videos_v1"})
        before = ix.search("videos_v1", vectors[:3], limit=10)
        assert ix.ping() is True
    finally:
        message = server.stop()
    assert message.startswith("stopped milvus")
    assert not (tmp_path / "runs" / "milvus.json").exists()
    assert server.state() is None and not alive(state.pid, "serving.index.milvus_server")
    assert engine_processes(db) == []
    started = time.monotonic()
    assert ix.ping() is False
    assert time.monotonic() - started < 2

    again = server.start(db, port=0)                       # the same db file, reopened
    try:
        ix2 = MilvusIndex(http_uri(again.address, again.port()), timeout_s=20)
        ix2.ensure_collection("videos_v1", 16, "videos")
        assert ix2.count("videos_v1") == 99
        assert ix2.search("videos_v1", vectors[:3], limit=10) == before
        assert ix2.get_state("active") == {"version": 1, "collection": "videos_v1"}
        ix2.close()
    finally:
        server.stop()
    assert engine_processes(db) == []


def test_fixed_port_in_use_is_refused(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = MilvusLiteServer(tmp_path)
        with pytest.raises(PortInUse, match=rf"port {port} .*milvus_port"):
            server.start(tmp_path / "a.db", port=port)
    assert server.state() is None


def test_a_second_server_on_the_same_db_is_refused(tmp_path):
    first, second = MilvusLiteServer(tmp_path / "one"), MilvusLiteServer(tmp_path / "two")
    first.start(tmp_path / "shared.db")
    try:
        with pytest.raises(Exception, match="exited during start-up"):
            second.start(tmp_path / "shared.db", timeout=20)
        assert second.state() is None
    finally:
        first.stop()
    assert engine_processes(tmp_path / "shared.db") == []


def test_hung_wrapper_leaves_no_engine_behind(tmp_path):
    """A wrapper that ignores SIGTERM is killed with its engine child (the whole process group)."""
    server = MilvusLiteServer(tmp_path)
    state = server.start(tmp_path / "k.db")
    os.kill(state.pid, signal.SIGSTOP)                     # a hung wrapper: SIGTERM does nothing
    message = server.stop(grace=0.5)
    assert "killed" in message
    assert engine_processes(tmp_path / "k.db") == [] and server.state() is None


def test_stopped_server_answers_ping_false_quickly():
    ix = MilvusIndex(f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    assert ix.ping() is False and time.monotonic() - started < 1


def test_sigkilled_wrapper_leaves_no_engine_behind(tmp_path):
    """A wrapper that died by SIGKILL leaves its engine running; the stale record's clean-up ends it."""
    server = MilvusLiteServer(tmp_path)
    state = server.start(tmp_path / "k9.db")
    os.kill(state.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while alive(state.pid, "serving.index.milvus_server") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(engine_processes(tmp_path / "k9.db")) == 1        # the orphan, still serving
    assert server.state() is None
    assert engine_processes(tmp_path / "k9.db") == []
    again = server.start(tmp_path / "k9.db")                     # its db lock and port are free again
    server.stop()
    assert again.pid != state.pid
