"""A managed background process: start detached, record, check alive, wait until ready, stop (torch-free).

Any Strata server that runs as its own process (the local Milvus Lite server, the gateway, the Triton server)
is one :class:`ManagedProcess`, kept in a run folder:

- ``<name>.log``   its stdout and stderr (appended; each start writes a header line);
- ``<name>.json``  its :class:`ProcessState` record: pid, address, ports, what it serves, log path.

The process runs in its own session (``start_new_session``), so its pid is also its process-group id and
:meth:`ManagedProcess.stop` can end the children it spawned with it. A record is trusted only while the pid is
alive, not a zombie, and its ``/proc/<pid>/cmdline`` holds the caller's ``marker`` (a reused pid is not ours);
otherwise it is stale and removed. The record is written whole (a temporary file renamed over it). Every process
started also carries ``STRATA_MANAGED=<its record's path>`` in its environment: a record that cannot be read (cut
short, edited, overwritten) is removed and the process it described, found by that mark, is stopped, since
nothing could reach it any more.

Ports. ``ports`` maps each setting name to a port (``{"milvus_port": 19530}``). A fixed port that something
already listens on is refused before starting, naming the port and the setting to change. A port of ``0`` means
"any free one": a free port is picked, the process started, and if it then dies with an address-in-use error
in its log, does not come up in time, or turns out to share its port with another process (gRPC servers bind
with ``SO_REUSEPORT``, so a second one on a taken port starts "fine" and silently splits the traffic), it is
stopped and started again on another free port, up to ``attempts`` times.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

from common.errors import StrataError
from common.files import write_atomic
from common.records import Part, ProcessState, alive, parse_record, running

MANAGED_ENV = "STRATA_MANAGED"   # in a managed process's environment: the path of its record
ADDRESS_IN_USE = ("Address already in use", "address already in use", "EADDRINUSE", "errno 98", "errno:98")


class ProcessError(StrataError):
    """A managed process did not start, or is not in the state asked for."""


class PortInUse(ProcessError):
    """A fixed port that the caller asked for is taken."""


def live_processes() -> Iterator[tuple[Path, list[str]]]:
    """(/proc/PID, the fields of its stat after the command name) of every process that has not exited."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] not in ("Z", "X"):
            yield entry, fields


def group_members(pgid: int) -> list[int]:
    """Live pids whose process group is ``pgid`` (a managed process and the children it spawned)."""
    return [int(entry.name) for entry, fields in live_processes() if int(fields[2]) == pgid]


def listening_inodes(port: int) -> set[int]:
    """Socket inodes of every TCP listener on ``port`` (IPv4 and IPv6, this network namespace)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(int(parts[9]))
    return inodes


def socket_inodes(pids: Sequence[int]) -> set[int]:
    inodes = set()
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return inodes


def foreign_listeners(port: int, pgid: int) -> int:
    """How many listeners on ``port`` belong to processes outside the group ``pgid``."""
    return len(listening_inodes(port) - socket_inodes(group_members(pgid)))


def marked_leaders(mark: str) -> list[int]:
    """Live session leaders (a managed process, not the children it spawned) whose environment holds
    ``STRATA_MANAGED=<mark>``."""
    needle = f"{MANAGED_ENV}={mark}".encode()
    found = []
    for entry, fields in live_processes():
        if int(fields[3]) != int(entry.name):   # field 6 of stat: the session id
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def free_port(address: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (another process may take it before we do: callers retry)."""
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def port_taken(address: str, port: int) -> bool:
    """True if binding ``address:port`` fails (a listener is there; TIME_WAIT leftovers do not count)."""
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError:
            return True
    return False


# -- the managed process ----------------------------------------------------------------------------------------
class _Retry(Exception):
    """This start attempt failed in a way another port may fix."""


class ManagedProcess:
    """One background process per run folder and name."""

    def __init__(self, name: str, run_dir: str | Path, marker: str, label: str = ""):
        self.name = name
        self.label = label or name    # how messages call it
        self.marker = marker
        self.runs = Path(run_dir)
        self.runs.mkdir(parents=True, exist_ok=True)
        self.state_file = self.runs / f"{name}.json"
        self.log_file = self.runs / f"{name}.log"
        self._process: subprocess.Popen | None = None
        self._log_offset = 0
        self.unreadable: list[int] = []   # pids stopped when this record was last found unreadable

    @classmethod
    def of(cls, part: Part, runs: str | Path | None = None, label: str = "") -> "ManagedProcess":
        """The process of one of Strata's local servers, in ``runs`` (default: its folder under the home)."""
        return cls(part.name, runs if runs is not None else part.run_dir(), part.marker, label)

    # -- state ----------------------------------------------------------------------------------------------
    def state(self) -> ProcessState | None:
        """The running process's record, or None.

        A record left by a dead or foreign pid is stale and removed. If the recorded process died but children
        it spawned live on in its process group (it was SIGKILLed), they are killed too: once the record is gone
        nothing could find them, and they may still hold its port or files.
        """
        if not self.state_file.is_file():
            return None
        try:
            state = parse_record(json.loads(self.state_file.read_text()))
        except (ValueError, KeyError, TypeError):
            self.unreadable = self._stop_marked()
            self.state_file.unlink(missing_ok=True)
            return None
        if not alive(state.pid, state.marker):
            if not running(state.pid):  # a live pid that is not ours was reused: its group is not ours either
                self._kill_group(state.pid)
            self.state_file.unlink(missing_ok=True)
            self._reap()
            return None
        return state

    def _stop_marked(self, grace: float = 10.0) -> list[int]:
        """Stop the processes started with this record's mark (its record unreadable): SIGTERM, then SIGKILL of
        their groups after ``grace`` seconds; returns their pids."""
        pids = marked_leaders(str(self.state_file.resolve()))
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while any(running(pid) for pid in pids) and time.monotonic() < deadline:
            self._poll()
            time.sleep(0.05)
        for pid in pids:
            self._kill_group(pid)
        self._reap()
        return pids

    def _kill_group(self, pgid: int) -> bool:
        """SIGKILL what is left of process group ``pgid``; True if anything was."""
        if not group_members(pgid):
            return False
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return False
        end = time.monotonic() + 5
        while group_members(pgid) and time.monotonic() < end:
            self._poll()
            time.sleep(0.05)
        return True

    def log_tail(self, lines: int = 20) -> str:
        """The last lines this process wrote since its latest start."""
        if not self.log_file.is_file():
            return ""
        with open(self.log_file, "rb") as handle:
            handle.seek(self._log_offset if self._log_offset <= self.log_file.stat().st_size else 0)
            text = handle.read().decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    # -- start ----------------------------------------------------------------------------------------------
    def start(self, command: Callable[[dict[str, int]], list[str]], ports: Mapping[str, int],
              ready: Callable[[ProcessState], bool], *, address: str = "127.0.0.1", timeout: float = 60.0,
              serves: Mapping[str, str] | None = None, env: Mapping[str, str] | None = None,
              attempts: int = 4, settings_hint: str = "") -> ProcessState:
        """Start ``command(ports)`` and wait until ``ready(state)`` is true; returns the recorded state.

        ``ports``: setting name -> port, ``0`` for any free one (retried on a clash, see the module docstring).
        ``ready`` is called repeatedly and must be quick; exceptions from it count as "not yet".
        ``settings_hint`` is added to a port-in-use error (how to change the setting).
        """
        running = self.state()
        if running is not None:
            raise ProcessError(f"{self.label} is already running from {self.runs} (pid {running.pid}, "
                               f"{address} ports {running.ports}); stop it first")
        fixed = {key: port for key, port in ports.items() if port}
        for key, port in fixed.items():
            if port_taken(address, port):
                hint = f" ({settings_hint})" if settings_hint else ""
                raise PortInUse(f"port {port} on {address} is in use by another process: set {key} to a free "
                                f"port, or 0 for any free one{hint}")
        auto = len(fixed) < len(ports)
        tries = max(1, attempts) if auto else 1
        errors = []
        for attempt in range(tries):
            chosen = {key: port or free_port(address) for key, port in ports.items()}
            try:
                return self._attempt(command(chosen), chosen, ready, address, timeout, dict(serves or {}), env)
            except _Retry as err:
                errors.append(f"attempt {attempt + 1} on ports {chosen}: {err}")
        raise ProcessError(f"{self.name} did not start after {tries} attempt(s):\n" + "\n".join(errors))

    def _attempt(self, command: list[str], ports: dict[str, int], ready: Callable[[ProcessState], bool],
                 address: str, timeout: float, serves: dict[str, str], env: Mapping[str, str] | None) -> ProcessState:
        self._log_offset = self.log_file.stat().st_size if self.log_file.is_file() else 0
        with open(self.log_file, "ab") as log:
            log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n".encode())
            log.flush()
            marked = {**(env if env is not None else os.environ), MANAGED_ENV: str(self.state_file.resolve())}
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             env=marked, start_new_session=True)
        state = ProcessState(self._process.pid, self.name, self.marker, address, ports, serves, list(command),
                             str(self.log_file), time.time())
        write_atomic(self.state_file, json.dumps(asdict(state), indent=2))
        try:
            self._wait_ready(state, ready, timeout)
        except BaseException:  # a retry, an error or an interrupt: leave nothing running
            self.stop()
            raise
        return state

    def _wait_ready(self, state: ProcessState, ready: Callable[[ProcessState], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if not alive(state.pid, state.marker):
                tail = self.log_tail()
                if any(word in tail for word in ADDRESS_IN_USE):
                    raise _Retry(f"address in use; last lines of {self.log_file}:\n{tail}")
                code = self._process.poll() if self._process is not None else None
                raise ProcessError(f"{self.name} exited during start-up (exit code {code}); last lines of "
                                   f"{self.log_file}:\n{tail}")
            try:
                up = ready(state)
            except Exception:  # noqa: BLE001 - not answering yet
                up = False
            if up:
                shared = {key: port for key, port in state.ports.items() if foreign_listeners(port, state.pid)}
                if shared:
                    raise _Retry(f"port(s) {shared} also served by another process (SO_REUSEPORT)")
                return
            if time.monotonic() >= deadline:
                raise _Retry(f"not ready after {timeout:.0f} s; last lines of {self.log_file}:\n{self.log_tail()}")
            time.sleep(0.2)

    # -- stop -----------------------------------------------------------------------------------------------
    def stop(self, grace: float = 10.0) -> str:
        """SIGTERM the process, SIGKILL its whole group after ``grace`` seconds; returns what happened."""
        had_record = self.state_file.is_file()
        self.unreadable = []
        state = self.state()
        if state is None:
            if self.unreadable:
                return (f"unreadable {self.label} record removed; stopped the process it described "
                        f"(pid {', '.join(map(str, self.unreadable))})")
            return f"stale {self.label} record removed (the process had already exited)" if had_record \
                else f"no {self.label} running"
        try:
            os.kill(state.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace
        while alive(state.pid, state.marker) and time.monotonic() < deadline:
            self._poll()
            time.sleep(0.05)
        forced = alive(state.pid, state.marker)
        leftovers = self._kill_group(state.pid) and not forced
        self._reap()
        self.state_file.unlink(missing_ok=True)
        how = " (killed after the grace period)" if forced else " (its leftover children killed)" if leftovers else ""
        return f"stopped {self.label} pid {state.pid}{how}"

    def _poll(self) -> None:
        if self._process is not None:
            self._process.poll()

    def _reap(self) -> None:
        if self._process is not None:
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self._process = None
