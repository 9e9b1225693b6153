"""The real Triton Inference Server from the ``nvidia-pytriton`` wheel: start, status, stop (torch-free).

The wheel ships ``tritonserver`` with the python backend. To run it (STACK.md): a backend folder holding a copy
of ``backends/python`` plus the stub for this Python next to ``libtriton_python.so``; ``LD_LIBRARY_PATH`` with the
wheel's bundled libraries; this environment's ``bin/`` first on ``PATH`` (the stub's Python takes its packages
from the first ``python3`` there). The server runs with explicit model control, on loopback, writing its output
to ``<run dir>/server.log``; ``server.json`` in the run dir records its pid, ports and repository.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from serving.ports import PortInUse, start_on_free_ports
from serving.process import alive
from serving.triton.repository import model_names
from training.errors import ConfigError, StrataError
from training.home import strata_home

STATE_FILE = "server.json"
LOG_FILE = "server.log"
DEFAULT_PORTS = (8000, 8001, 8002)  # http, grpc, metrics


class ServerError(StrataError):
    """The server did not start, or is not in the state asked for."""


@dataclass(frozen=True)
class ServerState:
    pid: int
    repo: str
    http_port: int
    grpc_port: int
    metrics_port: int
    address: str
    models: tuple[str, ...]
    log: str

    @property
    def grpc_url(self) -> str:
        return f"{self.address}:{self.grpc_port}"


def run_dir() -> Path:
    return strata_home() / "triton"


def _wheel() -> tuple[Path, Path]:
    """(the wheel's tritonserver folder, its bundled shared libraries)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or spec.origin is None:
        raise ServerError("the Triton server comes from the nvidia-pytriton wheel, which is not installed (pip install nvidia-pytriton)")
    package = Path(spec.origin).parent
    root = package / "tritonserver"
    if not (root / "bin" / "tritonserver").is_file():
        raise ServerError(f"no tritonserver binary under {root}/bin")
    return root, package.parent / "nvidia_pytriton.libs"


def _backend_dir(runs: Path, root: Path) -> Path:
    """A backends folder: ``python/`` = the wheel's python backend plus the stub for this interpreter."""
    folder = runs / "backends"
    python = folder / "python"
    stub = root / "python_backend_stubs" / f"{sys.version_info.major}.{sys.version_info.minor}" / "triton_python_backend_stub"
    if not stub.is_file():
        raise ServerError(f"the Triton wheel has no python backend stub for Python {sys.version_info.major}.{sys.version_info.minor} ({stub})")
    if not (python / stub.name).is_file():
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(root / "backends" / "python", python, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy2(stub, python / stub.name)
    return folder


def _alive(pid: int) -> bool:
    """The process exists, is not a zombie, and is a tritonserver (a reused pid is not ours)."""
    return alive(pid, "tritonserver")


def _check_port(address: str, port: int) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError:
            raise PortInUse(f"port {port} on {address} is in use (another Triton server? see `strata triton status`)") from None


class TritonServer:
    """One server per run dir (default ``$STRATA_HOME/triton``)."""

    def __init__(self, runs: str | Path | None = None):
        self.runs = Path(runs) if runs is not None else run_dir()
        self.runs.mkdir(parents=True, exist_ok=True)
        self.state_file = self.runs / STATE_FILE
        self.log_file = self.runs / LOG_FILE
        self._process: subprocess.Popen | None = None

    # -- state --------------------------------------------------------------------------------------------
    def state(self) -> ServerState | None:
        """The running server's record; a record left by a dead process is removed (stale pid)."""
        if not self.state_file.is_file():
            return None
        data = json.loads(self.state_file.read_text())
        state = ServerState(**{**data, "models": tuple(data["models"])})
        if not _alive(state.pid):
            self.state_file.unlink(missing_ok=True)
            return None
        return state

    # -- start --------------------------------------------------------------------------------------------
    def start(self, repo: str | Path, models: list[str] | tuple[str, ...] | None = None,
              ports: tuple[int, int, int] | None = DEFAULT_PORTS, address: str = "127.0.0.1",
              timeout: float = 180.0, python_shm_bytes: int = 0) -> ServerState:
        """Start serving ``models`` (default: all) of ``repo`` on (http, grpc, metrics) ``ports``; None: ports
        picked free, and picked again if another process takes one before Triton binds it."""
        if ports is None:
            return start_on_free_ports(lambda free: self.start(repo, models, free, address, timeout, python_shm_bytes),
                                       3, address)
        repo = Path(repo).resolve()
        running = self.state()
        if running is not None:
            raise ServerError(f"a Triton server is already running from {self.runs} (pid {running.pid}, gRPC "
                              f"{running.grpc_url}); `strata triton stop` first")
        available = model_names(repo)
        if not available:
            raise ConfigError(f"model repository {repo} holds no models (no <model>/config.pbtxt); "
                              f"export one first: strata export CHECKPOINT --repo {repo}")
        models = tuple(models) if models else tuple(available)
        unknown = [m for m in models if m not in available]
        if unknown:
            raise ConfigError(f"model repository {repo} has no model(s) {', '.join(unknown)}; it holds {', '.join(available)}")
        for port in ports:
            _check_port(address, port)
        root, libs = _wheel()
        backends = _backend_dir(self.runs, root)
        http_port, grpc_port, metrics_port = ports
        command = [
            str(root / "bin" / "tritonserver"),
            f"--model-repository={repo}",
            f"--backend-directory={backends}",
            "--model-control-mode=explicit",
            *(f"--load-model={m}" for m in models),
            f"--http-address={address}", f"--grpc-address={address}", f"--metrics-address={address}",
            f"--http-port={http_port}", f"--grpc-port={grpc_port}", f"--metrics-port={metrics_port}",
            "--allow-gpu-metrics=false",
            "--exit-timeout-secs=10",
        ]
        if python_shm_bytes:
            command.append(f"--backend-config=python,shm-default-byte-size={python_shm_bytes}")
        env = dict(os.environ)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(libs), env.get("LD_LIBRARY_PATH", "")) if p)
        with open(self.log_file, "ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n".encode())
            log.flush()
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             env=env, start_new_session=True)
        state = ServerState(self._process.pid, str(repo), http_port, grpc_port, metrics_port, address, models,
                            str(self.log_file))
        self.state_file.write_text(json.dumps(asdict(state), indent=2))
        try:
            self._wait_ready(state, timeout)
        except BaseException:
            self.stop()
            raise
        return state

    def _wait_ready(self, state: ServerState, timeout: float) -> None:
        import tritonclient.grpc as grpcclient

        client = grpcclient.InferenceServerClient(state.grpc_url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(state.pid):
                tail = self.log_tail()
                error = PortInUse if "address already in use" in tail.lower() else ServerError
                raise error(f"tritonserver exited during start-up; last lines of {self.log_file}:\n{tail}")
            try:
                if client.is_server_ready() and all(client.is_model_ready(m) for m in state.models):
                    return
            except Exception:  # noqa: BLE001 - not listening yet
                pass
            time.sleep(0.25)
        raise ServerError(f"tritonserver not ready after {timeout:.0f} s; last lines of {self.log_file}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        if not self.log_file.is_file():
            return ""
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    # -- stop ---------------------------------------------------------------------------------------------
    def stop(self, timeout: float = 30.0) -> str:
        """End the server; returns what happened (for the CLI)."""
        had_record = self.state_file.is_file()
        state = self.state()
        if state is None:
            self._reap()
            return "stale server record removed (the process had already exited)" if had_record else "no Triton server running"
        os.kill(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(state.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        forced = _alive(state.pid)
        if forced:
            os.killpg(state.pid, signal.SIGKILL)
        self._reap()
        self.state_file.unlink(missing_ok=True)
        return f"stopped Triton server pid {state.pid}" + (" (killed after the grace period)" if forced else "")

    def _reap(self) -> None:
        if self._process is not None:
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            self._process = None

    # -- status -------------------------------------------------------------------------------------------
    def models(self) -> list[dict]:
        """Models of the running server's repository with their versions and states."""
        state = self.state()
        if state is None:
            raise ServerError(f"no Triton server running from {self.runs}; `strata triton start` first")
        import tritonclient.grpc as grpcclient

        index = grpcclient.InferenceServerClient(state.grpc_url).get_model_repository_index(as_json=True)
        return [{"name": m["name"], "version": m.get("version", ""), "state": m.get("state", "UNAVAILABLE"),
                 "reason": m.get("reason", "")} for m in index.get("models", [])]
