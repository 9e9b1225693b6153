"""The records of Strata's background servers, read side (torch-free).

Each server that runs as its own process (the local Milvus Lite server, Triton, the gateway, the HTTP API) keeps a record
``<run dir>/<name>.json`` (:class:`ProcessState`) while it runs; :class:`serving.process.ManagedProcess` starts
and stops it and writes the record. Anything that only needs to know *where* a local server runs (the connection
factory, ``strata info``) reads the record here, and trusts it only while its pid is alive and ours
(:func:`alive`).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import StrataError
from common.home import strata_home


@dataclass(frozen=True)
class ProcessState:
    pid: int
    name: str                      # what this process is ("milvus", "gateway", ...)
    marker: str                    # a string in its command line: how a live pid is known to be ours
    address: str
    ports: dict[str, int]          # setting name -> port it listens on
    serves: dict[str, str]         # what it serves (db file, model repository, ...), for status lines
    command: list[str]
    log: str
    started: float = field(default=0.0)   # time.time() at start

    def port(self, key: str | None = None) -> int:
        """The port named ``key`` (the only one when ``key`` is None)."""
        if key is None:
            if len(self.ports) != 1:
                raise StrataError(f"{self.name} listens on {len(self.ports)} ports ({', '.join(self.ports)}); name one")
            return next(iter(self.ports.values()))
        return self.ports[key]


# -- /proc helpers (Linux) ------------------------------------------------------------------------------------
def alive(pid: int, marker: str) -> bool:
    """The process exists, is not a zombie, and its command line contains ``marker``.

    Right after ``Popen`` returns, the child may still be inside ``exec``: for a few milliseconds (longer on a
    loaded machine) its ``/proc/<pid>/cmdline`` reads empty. An empty command line is read again for up to a
    second before the pid is judged not ours (kernel threads have an empty one for good).
    """
    deadline = time.monotonic() + 1.0
    while True:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
        if cmdline or time.monotonic() >= deadline:
            return marker.encode() in cmdline
        time.sleep(0.005)


def running(pid: int) -> bool:
    """The pid exists and is not a zombie (whatever it runs)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


@dataclass(frozen=True)
class Part:
    """One local server: its run folder under ``$STRATA_HOME``, its record's name, and the marker its command
    line carries."""
    folder: str
    name: str
    marker: str

    def run_dir(self) -> Path:
        return strata_home() / self.folder

    def record_file(self) -> Path:
        return self.run_dir() / f"{self.name}.json"


MILVUS = Part("milvus", "milvus", "serving.index.milvus_server")
TRITON = Part("triton", "server", "tritonserver")
GATEWAY = Part("gateway", "gateway", "serving.gateway")
HTTP_API = Part("http_api", "http_api", "serving.http_api")


def parse_record(data: dict) -> ProcessState:
    """A record as written; a Triton record of the older layout (``grpc_port``, ``repo``, ``models`` at the top
    level) is read as the same record in this layout. Raises ``ValueError`` for anything else."""
    if "grpc_port" in data and "ports" not in data:
        data = {"pid": data["pid"], "name": TRITON.name, "marker": TRITON.marker, "address": data["address"],
                "ports": {"triton_http_port": data["http_port"], "triton_grpc_port": data["grpc_port"],
                          "triton_metrics_port": data["metrics_port"]},
                "serves": {"repo": data["repo"], "models": ",".join(data.get("models", []))},
                "command": [], "log": data.get("log", "")}
    try:
        return ProcessState(**data)
    except TypeError as err:
        raise ValueError(f"not a process record: {err}") from None


def read_record(path: str | Path) -> ProcessState | None:
    """The record at ``path`` if its process is alive and ours; None otherwise (nothing is removed here)."""
    try:
        state = parse_record(json.loads(Path(path).read_text()))
    except (OSError, ValueError, KeyError):
        return None
    return state if alive(state.pid, state.marker) else None


def running_part(part: Part) -> ProcessState | None:
    """The record of ``part`` running from its default run folder, or None."""
    return read_record(part.record_file())
