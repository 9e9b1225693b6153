"""The local Milvus Lite server as its own process (torch-free).

``python -m serving.index.milvus_server --db PATH --address 127.0.0.1 --port N`` runs milvus_lite's
``Server(db_file, address="ADDRESS:PORT")``, ``.init()``, ``.start()`` and blocks until SIGTERM or SIGINT.

What milvus_lite 2.5.1's ``Server`` does (read from its source, and tried):

- ``start()`` spawns the real engine, the binary ``milvus_lite/lib/milvus DB ADDRESS LOG_LEVEL``, as a child of
  this process (same process group), takes an exclusive lock on ``.<db name>.lock`` beside the db file (a second
  server on the same db file is refused), and reports success if the child is still alive after 0.5 s.
- With an address the child is not told about the lock file, so releasing the lock does not stop it:
  ``Server.stop()`` waits 2 s, then SIGKILLs it. The binary exits at once on SIGTERM, and every write it
  acknowledged is already in the db file. So on SIGTERM this wrapper SIGTERMs the child first, then calls
  ``stop()`` (lock released, lock file removed): the db file can be reopened by the next start.
- The engine is a gRPC server that binds with ``SO_REUSEPORT``: a second one on a port already served by another
  gRPC process starts without error and silently shares the port (clients land on either). A port held by a
  non-gRPC listener makes the binary log "Address already in use" and crash. :class:`MilvusLiteServer` refuses a
  taken fixed port up front and checks, once up, that no other process listens on its port.
- The db file name must match ``^[a-zA-Z0-9.\\-_]+$`` and be at most 36 characters.

:class:`MilvusLiteServer` runs this module as a :class:`serving.process.ManagedProcess` in ``$STRATA_HOME/milvus``
(record ``milvus.json``, log ``milvus.log``); the default db file is ``$STRATA_HOME/milvus/strata.db``.
If the wrapper itself is SIGKILLed, its engine child is left running; ``ManagedProcess.stop`` kills the whole
process group after its grace period, so it is not left behind.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
import warnings
from pathlib import Path

from common.connect import http_uri
from common.errors import ConfigError
from common.records import MILVUS, ProcessState
from common.settings import Settings
from serving.index.milvus_index import MilvusIndex
from serving.process import ManagedProcess

DB_FILE = "strata.db"
DB_NAME = re.compile(r"^[a-zA-Z0-9.\-_]{1,36}$")
SETTINGS_HINT = "STRATA_MILVUS_PORT, settings.yaml or --milvus-port"


def default_db() -> Path:
    return MILVUS.run_dir() / DB_FILE


def check_db_path(db: str | Path) -> Path:
    path = Path(db).expanduser().resolve()
    if not DB_NAME.match(path.name):
        raise ConfigError(f"Milvus Lite db file name {path.name!r} must be 1-36 characters of letters, digits, "
                          f"'.', '-' or '_' ({path})")
    return path


def check_local_settings(settings: Settings) -> None:
    """Refuse to serve ``settings`` (``strata up`` without ``milvus_uri``) from the local server when they name a
    database or a TLS CA: its clients would be given them (every Milvus client gets the settings' credentials) and
    Milvus Lite 2.5.1 has neither: it ignores a request's database (so the collections would not land where
    ``milvus_db`` says) and cannot answer a TLS handshake."""
    given = " and ".join(key for key in ("milvus_db", "milvus_tls_ca") if getattr(settings, key))
    if given:
        raise ConfigError(f"{given} set, but the local Milvus Lite server has no databases and no TLS: set milvus_uri "
                          f"to the Milvus they are meant for, or unset {given}")


def _milvus_ready(state: ProcessState) -> bool:
    """Ready = a fresh index client can list collections (:meth:`MilvusIndex.ping`, which connects over TCP first:
    a gRPC connect refused before the server listens puts the channel's target into reconnect back-off, shared by
    every channel to it in this process, and delays readiness). Its client is made as every Milvus client is, with
    the settings' credentials."""
    index = MilvusIndex(http_uri(state.address, state.port("milvus_port")), timeout_s=2)
    try:
        return index.ping(timeout_s=2)
    finally:
        index.close()


class MilvusLiteServer:
    """The local Milvus Lite server process: start, state, stop."""

    def __init__(self, runs: str | Path | None = None):
        self.process = ManagedProcess.of(MILVUS, runs)

    def start(self, db_path: str | Path | None = None, port: int = 0, address: str = "127.0.0.1",
              timeout: float = 60.0) -> ProcessState:
        """Start the server on ``db_path`` (default ``$STRATA_HOME/milvus/strata.db``); ``port`` 0: any free one.

        Returns the state; its URI is ``http_uri(state.address, state.port())``.
        """
        db = check_db_path(db_path if db_path is not None else self.process.runs / DB_FILE)
        db.parent.mkdir(parents=True, exist_ok=True)

        def command(ports: dict[str, int]) -> list[str]:
            return [sys.executable, "-m", MILVUS.marker, "--db", str(db), "--address", address,
                    "--port", str(ports["milvus_port"])]

        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(__file__).resolve().parents[2]),
                                                         env.get("PYTHONPATH", "")) if p)
        return self.process.start(command, {"milvus_port": port}, _milvus_ready, address=address, timeout=timeout,
                                  serves={"db": str(db)}, env=env, settings_hint=SETTINGS_HINT)

    def state(self) -> ProcessState | None:
        return self.process.state()

    def uri(self) -> str | None:
        state = self.state()
        return None if state is None else http_uri(state.address, state.port())

    def stop(self, grace: float = 10.0) -> str:
        return self.process.stop(grace)


# -- the server process itself ------------------------------------------------------------------------------------
def serve(db: Path, address: str, port: int) -> int:
    """Run Milvus Lite on ``db`` at ``address:port`` until SIGTERM/SIGINT; the exit code."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # milvus_lite imports pkg_resources, which warns on import
        from milvus_lite.server import Server

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = Server(str(db), address=f"{address}:{port}")
    if not server.init() or not server.start():
        print(f"milvus_server: Milvus Lite did not start on {db} at {address}:{port} "
              f"(is the db file open in another server?)", flush=True)
        return 1
    engine = server._p  # the engine binary (milvus_lite has no public handle to it)
    print(f"milvus_server: serving {db} at {address}:{port} (engine pid {engine.pid})", flush=True)
    code = 0
    while not stop.wait(0.5):
        if engine.poll() is not None:
            print(f"milvus_server: the Milvus Lite engine exited with code {engine.returncode}", flush=True)
            code = 1
            break
    if engine.poll() is None:
        engine.terminate()
        try:
            engine.wait(timeout=10)
        except Exception:  # noqa: BLE001 - Server.stop() kills it
            pass
    server.stop()
    print("milvus_server: stopped", flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.index.milvus_server",
                                     description="Run the local Milvus Lite server until SIGTERM.")
    parser.add_argument("--db", required=True, help="Milvus Lite db file (created if missing)")
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        db = check_db_path(args.db)
    except ConfigError as err:
        print(f"milvus_server: {err}", flush=True)
        return 2
    return serve(db, args.address, args.port)


if __name__ == "__main__":
    sys.exit(main())
