"""The real Triton Inference Server from the ``nvidia-pytriton`` wheel: start, status, stop (torch-free).

The wheel ships ``tritonserver`` with the python backend. To run it (STACK.md): a backend folder holding a copy
of ``backends/python`` plus the stub for this Python next to ``libtriton_python.so``; ``LD_LIBRARY_PATH`` with the
wheel's bundled libraries; this environment's ``bin/`` first on ``PATH`` (the stub's Python takes its packages
from the first ``python3`` there). The server runs with explicit model control, on loopback, writing its output
to ``<run dir>/server.log``; ``server.json`` in the run dir records its pid, ports and repository. It runs as a
:class:`serving.process.ManagedProcess`, like the local Milvus and the gateway (start, record, stop, reap).
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from common.connect import triton_client
from common.errors import ConfigError
from common.records import TRITON, ProcessState
from common.repository import model_names, verify_version, versions
from serving.process import ManagedProcess, ProcessError

STATE_FILE = f"{TRITON.name}.json"   # in the run dir, as ManagedProcess names its record
DEFAULT_PORTS = (8000, 8001, 8002)  # http, grpc, metrics
PORT_KEYS = ("triton_http_port", "triton_grpc_port", "triton_metrics_port")
SETTINGS_HINT = "STRATA_TRITON_<HTTP|GRPC|METRICS>_PORT, settings.yaml or --http-port/--grpc-port/--metrics-port"


class ServerError(ProcessError):
    """The server did not start, or is not in the state asked for."""


@dataclass(frozen=True)
class ServerState:
    """The running server's record, as its callers read it."""
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

    @classmethod
    def of(cls, state: ProcessState) -> "ServerState":
        models = state.serves.get("models", "")
        return cls(state.pid, state.serves["repo"], *(state.ports[key] for key in PORT_KEYS), state.address,
                   tuple(models.split(",")) if models else (), state.log)


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


class TritonServer:
    """One server per run dir (default ``$STRATA_HOME/triton``), a :class:`serving.process.ManagedProcess`."""

    def __init__(self, runs: str | Path | None = None):
        self.process = ManagedProcess.of(TRITON, runs, label="Triton server")
        self.runs, self.state_file, self.log_file = self.process.runs, self.process.state_file, self.process.log_file

    def state(self) -> ServerState | None:
        """The running server's record; a record left by a dead process is removed (stale pid)."""
        state = self.process.state()
        return None if state is None else ServerState.of(state)

    # -- start --------------------------------------------------------------------------------------------
    def start(self, repo: str | Path, models: list[str] | tuple[str, ...] | None = None,
              ports: tuple[int, int, int] | None = DEFAULT_PORTS, address: str = "127.0.0.1",
              timeout: float = 180.0, python_shm_bytes: int = 0) -> ServerState:
        """Start serving ``models`` (default: all) of ``repo`` on (http, grpc, metrics) ``ports``; None: free
        ports, picked again if another process takes one before Triton binds it."""
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
        for model in models:   # every version it may load: a version folder is code
            for version in versions(repo, model):
                verify_version(repo, model, version)
        root, libs = _wheel()
        backends = _backend_dir(self.runs, root)

        def command(chosen: dict[str, int]) -> list[str]:
            http_port, grpc_port, metrics_port = (chosen[key] for key in PORT_KEYS)
            line = [
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
                line.append(f"--backend-config=python,shm-default-byte-size={python_shm_bytes}")
            return line

        def ready(state: ProcessState) -> bool:
            client = triton_client(f"{state.address}:{state.port('triton_grpc_port')}")
            try:
                return client.is_server_ready() and all(client.is_model_ready(m) for m in models)
            finally:
                client.close()

        env = dict(os.environ)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(libs), env.get("LD_LIBRARY_PATH", "")) if p)
        chosen = dict(zip(PORT_KEYS, ports if ports is not None else (0, 0, 0)))
        state = self.process.start(command, chosen, ready, address=address, timeout=timeout,
                                   serves={"repo": str(repo), "models": ",".join(models)}, env=env,
                                   settings_hint=SETTINGS_HINT)
        return ServerState.of(state)

    def log_tail(self, lines: int = 15) -> str:
        return self.process.log_tail(lines)

    # -- stop ---------------------------------------------------------------------------------------------
    def stop(self, timeout: float = 30.0) -> str:
        """End the server; returns what happened (for the CLI)."""
        return self.process.stop(timeout)

    # -- status -------------------------------------------------------------------------------------------
    def models(self) -> list[dict]:
        """Models of the running server's repository with their versions and states."""
        state = self.state()
        if state is None:
            raise ServerError(f"no Triton server running from {self.runs}; `strata triton start` first")
        client = triton_client(state.grpc_url)
        try:
            index = client.get_model_repository_index(as_json=True)
        finally:
            client.close()
        return [{"name": m["name"], "version": m.get("version", ""), "state": m.get("state", "UNAVAILABLE"),
                 "reason": m.get("reason", "")} for m in index.get("models", [])]
