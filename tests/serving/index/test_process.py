"""serving.process.ManagedProcess with small stand-in servers: records, stale pids, retries, stop."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from serving.process import ManagedProcess, PortInUse, ProcessError, alive, foreign_listeners, group_members

MARKER = "strata-test-listener"
# Listens on argv[1] (after an optional "fail" that imitates a server losing a port race), ignoring SIGTERM if asked.
LISTENER = """
import signal, socket, sys, time, subprocess
if sys.argv[2] == "fail":
    print("bind: Address already in use", flush=True); sys.exit(1)
if sys.argv[2] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "child-of-" + sys.argv[4]])
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
while True: time.sleep(1)
"""


def tcp_ready(state) -> bool:
    with socket.create_connection((state.address, state.port()), timeout=0.5):
        return True


def listener(mode: str = "ok", fails: int = 0, tag: str = ""):
    calls = []

    def command(ports):
        calls.append(ports["test_port"])
        how = "fail" if len(calls) <= fails else mode
        return [sys.executable, "-c", LISTENER, str(ports["test_port"]), how, MARKER, tag or MARKER]
    return command, calls


def test_start_record_stop(tmp_path):
    proc = ManagedProcess("demo", tmp_path, MARKER)
    command, _ = listener()
    state = proc.start(command, {"test_port": 0}, tcp_ready, serves={"what": "a test"}, timeout=20)
    record = json.loads((tmp_path / "demo.json").read_text())
    assert record["pid"] == state.pid and record["ports"] == {"test_port": state.port()}
    assert record["serves"] == {"what": "a test"} and record["log"] == str(tmp_path / "demo.log")
    assert proc.state() == state
    with pytest.raises(ProcessError, match="already running"):
        proc.start(command, {"test_port": 0}, tcp_ready)
    assert proc.stop().startswith("stopped demo")
    assert proc.state() is None and not (tmp_path / "demo.json").exists()
    assert proc.stop() == "no demo running"


def test_auto_port_is_retried_after_an_address_clash(tmp_path):
    proc = ManagedProcess("demo", tmp_path, MARKER)
    command, calls = listener(fails=2)
    state = proc.start(command, {"test_port": 0}, tcp_ready, timeout=20, attempts=4)
    try:
        assert len(calls) == 3 and state.port() == calls[-1]
    finally:
        proc.stop()


def test_fixed_port_fails_at_once(tmp_path):
    proc = ManagedProcess("demo", tmp_path, MARKER)
    command, calls = listener(fails=5)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ProcessError, match="1 attempt"):
        proc.start(command, {"test_port": port}, tcp_ready, timeout=20)
    assert len(calls) == 1 and proc.state() is None
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        with pytest.raises(PortInUse, match=rf"port {busy}.*test_port.*STRATA_TEST_PORT"):
            proc.start(command, {"test_port": busy}, tcp_ready, settings_hint="STRATA_TEST_PORT")


def test_exit_during_start_shows_the_log(tmp_path):
    proc = ManagedProcess("demo", tmp_path, MARKER)
    command = lambda ports: [sys.executable, "-c", f"print('no model repository here'); exit(3)  # {MARKER}"]
    with pytest.raises(ProcessError, match="(?s)exit code 3.*no model repository here"):
        proc.start(command, {"test_port": 0}, tcp_ready, timeout=20)


def test_stale_and_foreign_records_are_removed(tmp_path):
    proc = ManagedProcess("demo", tmp_path, MARKER)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for pid in (dead.pid, os.getpid()):      # an exited pid; a live pid that is not ours (no marker)
        (tmp_path / "demo.json").write_text(json.dumps(
            {"pid": pid, "name": "demo", "marker": MARKER, "address": "127.0.0.1", "ports": {"test_port": 1},
             "serves": {}, "command": [], "log": "", "started": 0.0}))
        assert proc.state() is None and not (tmp_path / "demo.json").exists()
    assert proc.stop() == "no demo running"


def test_stubborn_process_and_its_children_are_killed(tmp_path):
    proc = ManagedProcess("demo", tmp_path, MARKER)
    tag = f"{os.getpid()}-{time.monotonic_ns()}"
    command, _ = listener(mode="stubborn", tag=tag)
    state = proc.start(command, {"test_port": 0}, tcp_ready, timeout=20)
    deadline = time.monotonic() + 5
    while not [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p, f"child-of-{tag}")]:
        assert time.monotonic() < deadline, "the stand-in server's child never started"
        time.sleep(0.02)
    assert "killed after the grace period" in proc.stop(grace=0.5)
    assert not alive(state.pid, MARKER) and group_members(state.pid) == []
    assert not [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p, f"child-of-{tag}")]


def test_a_port_shared_through_reuseport_is_seen(tmp_path):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert foreign_listeners(port, os.getpgid(0)) == 0      # our own group's listener
        assert foreign_listeners(port, 999999999) == 1          # another group: someone else holds it


def _cmdline(pid: str, marker: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return marker.encode() in handle.read()
    except OSError:
        return False


def test_an_unreadable_record_stops_the_process_it_described(tmp_path):
    proc = ManagedProcess("demo", tmp_path, MARKER)
    tag = f"{os.getpid()}-{time.monotonic_ns()}"
    for damage in ('{"pid": ', "[1, 2]", "7", '{"pid": 1}'):    # cut short, not a record, a record missing fields
        state = proc.start(listener(tag=tag)[0], {"test_port": 0}, tcp_ready, timeout=20)
        (tmp_path / "demo.json").write_text(damage)
        said = proc.stop(grace=5)
        assert said == f"unreadable demo record removed; stopped the process it described (pid {state.pid})"
        assert not alive(state.pid, MARKER) and group_members(state.pid) == []
        assert not (tmp_path / "demo.json").exists()


def test_down_stops_every_part_when_a_record_is_corrupt_or_a_process_has_exited(tmp_path, monkeypatch):
    """The real Milvus Lite server with its record cut short, a gateway stand-in that exited by itself (its record
    left behind) and a Triton stand-in: `strata down` stops every one of them."""
    from common.records import GATEWAY, MILVUS, TRITON
    from deploy.stack import down
    from serving.index.milvus_server import MilvusLiteServer
    from tests.serving.index.conftest import engine_processes

    monkeypatch.setenv("STRATA_HOME", str(tmp_path))
    milvus = MilvusLiteServer().start(port=0)
    stand_ins = {part.name: ManagedProcess.of(part).start(listener(tag=part.marker)[0], {"test_port": 0}, tcp_ready,
                                                          timeout=20) for part in (GATEWAY, TRITON)}
    try:
        MILVUS.record_file().write_text(MILVUS.record_file().read_text()[:20])
        os.kill(stand_ins[GATEWAY.name].pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while alive(stand_ins[GATEWAY.name].pid, GATEWAY.marker):
            assert time.monotonic() < deadline, "the gateway stand-in did not exit"
            time.sleep(0.02)
        lines: list[str] = []
        down(log=lines.append)
        assert lines[0] == "no HTTP API running", lines
        assert lines[1] == "stale gateway record removed (the process had already exited)", lines
        assert lines[2].startswith(f"stopped Triton server pid {stand_ins[TRITON.name].pid}"), lines
        assert lines[3] == f"unreadable milvus record removed; stopped the process it described (pid {milvus.pid})", lines
        assert not alive(milvus.pid, MILVUS.marker) and group_members(milvus.pid) == []
        assert engine_processes(milvus.serves["db"]) == []
        assert not alive(stand_ins[TRITON.name].pid, TRITON.marker)
        assert not [part for part in (GATEWAY, TRITON, MILVUS) if part.record_file().exists()]
    finally:
        for pid in [milvus.pid] + [s.pid for s in stand_ins.values()]:
            if group_members(pid):
                os.killpg(pid, signal.SIGKILL)
