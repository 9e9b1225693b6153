"""The real tritonserver: start on loopback with explicit model control, status, stop, stale pid, clear errors."""
from __future__ import annotations

import json
import socket
import subprocess

import pytest
import tritonclient.grpc as grpcclient

from common.errors import ConfigError
from serving.process import PortInUse
from serving.triton.server import STATE_FILE, ServerError, TritonServer

pytestmark = pytest.mark.slow


def test_start_loads_only_the_named_models_and_stop_ends_it(repo_v1, start_server):
    server, state = start_server(repo_v1, ["vsepp_fast_text"])
    client = grpcclient.InferenceServerClient(state.grpc_url)
    assert state.address == "127.0.0.1" and client.is_server_ready()
    listed = {(m["name"], m["version"], m["state"]) for m in server.models()}
    assert ("vsepp_fast_text", "1", "READY") in listed
    assert not client.is_model_ready("vsepp_fast_video")          # in the repository, not loaded
    assert "vsepp_fast_video" in {m["name"] for m in server.models()}
    with pytest.raises(ServerError, match="already running"):
        server.start(repo_v1, ports=None)
    assert server.stop().startswith(f"stopped Triton server pid {state.pid}")
    assert server.state() is None and not (server.runs / STATE_FILE).exists()
    assert "successfully unloaded 'vsepp_fast_text'" in server.log_file.read_text()


def test_stale_pid_record_is_removed(tmp_path):
    server = TritonServer(tmp_path)
    finished = subprocess.Popen(["true"])  # a pid that no longer runs a tritonserver
    finished.wait()
    record = {"pid": finished.pid, "repo": str(tmp_path), "http_port": 1, "grpc_port": 2,
              "metrics_port": 3, "address": "127.0.0.1", "models": [], "log": ""}
    (tmp_path / STATE_FILE).write_text(json.dumps(record))
    assert server.stop() == "stale Triton server record removed (the process had already exited)"
    assert not (tmp_path / STATE_FILE).exists()
    assert server.stop() == "no Triton server running"


def test_empty_repository_and_unknown_model_are_clear_errors(tmp_path, repo_v1):
    server = TritonServer(tmp_path / "run")
    with pytest.raises(ConfigError, match="holds no models"):
        server.start(tmp_path / "empty")
    with pytest.raises(ConfigError, match="no model.*hgr_fast_text.*it holds vsepp_fast_scorer"):
        server.start(repo_v1, ["hgr_fast_text"])


def test_port_in_use_is_refused(tmp_path, repo_v1):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(PortInUse, match=f"port {port} .* in use"):  # checked first, before any other
            TritonServer(tmp_path).start(repo_v1, ports=(port, port + 1, port + 2))
