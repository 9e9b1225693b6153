"""A gateway in the test process with TLS and an access file (on the running stack's Milvus and Triton), and the
HTTP API in front of it serving HTTPS with the same certificate: what a deployment with tokens runs."""
from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from common.settings import Settings

READ_TOKEN, WRITE_TOKEN = secrets.token_hex(16), secrets.token_hex(16)


@dataclass(frozen=True)
class SecuredAPI:
    url: str      # https://127.0.0.1:PORT
    ca: Path      # the CA that signed its certificate


@contextmanager
def serving(server) -> Iterator[int]:
    """Run a uvicorn ``server`` in a thread until the block ends; yields its port."""
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the HTTP API did not start"
        time.sleep(0.05)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def secured_api(stack_settings: Settings, folder: Path) -> Iterator[SecuredAPI]:
    """The gateway (tokens READ_TOKEN and WRITE_TOKEN) and its HTTPS API, certificates made in ``folder``."""
    import uvicorn

    from common.connect import service_settings
    from serving.gateway.server import Gateway
    from serving.http_api.server import config
    from tests.certs import TestCA

    ca = TestCA(folder)
    cert, key = ca.issue("gateway", server=True)
    access = folder / "access"
    access.write_text(f"read {READ_TOKEN}\nwrite {WRITE_TOKEN}\n")
    settings = replace(service_settings(stack_settings), gateway_address="127.0.0.1", gateway_port=0,
                       gateway_metrics_address="127.0.0.1", gateway_metrics_port=0, http_address="127.0.0.1",
                       gateway_tls_cert=str(cert), gateway_tls_key=str(key), gateway_access_file=str(access),
                       gateway_tls_ca=str(ca.pem))
    gateway = Gateway(settings)
    gateway.start()
    try:
        with serving(uvicorn.Server(config(settings, f"127.0.0.1:{gateway.port}", 0))) as port:
            yield SecuredAPI(f"https://127.0.0.1:{port}", ca.pem)
    finally:
        gateway.stop(grace=0)
