"""The local stack behind ``strata up`` / ``strata down``: Milvus Lite's server, Triton, the gateway and the HTTP
API, each its own managed process with a record under ``$STRATA_HOME`` (torch-free).

``up`` starts what is not running and reuses what is: Milvus first (unless the ``milvus_uri`` setting names
another Milvus), then Triton with the active version's models (the record in Milvus names it; a first start
records the default), loaded at exactly that version, then the gateway, then the HTTP API in front of it (started
again if it fronts another gateway address). Ports come from the settings; ``0`` picks free ones, and every command
finds them in the records (:mod:`common.connect`).
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from common.errors import StrataError
from common.home import strata_home
from common.records import GATEWAY, HTTP_API, ProcessState
from common.settings import Settings, http_base, reach
from serving.process import ManagedProcess

READY_FILE = "gateway.ready.json"
_RAW_VIDEO_MODELS = ("frame_backbone",)   # loaded when exported: common.frame_backbone.FRAME_BACKBONE
PROJECT_ROOT = Path(__file__).resolve().parents[1]


class StackError(StrataError):
    """A part of the local stack did not come up."""


@dataclass(frozen=True)
class StackState:
    milvus: str
    triton: str
    gateway: str
    model: str
    version: int
    http: str       # the HTTP API's base URL; "" when it could not be started (up's log says why)


def gateway_process() -> ManagedProcess:
    return ManagedProcess.of(GATEWAY)


def http_process() -> ManagedProcess:
    return ManagedProcess.of(HTTP_API, label="HTTP API")


def service_env(settings: Settings, milvus: str, triton_grpc_port: int) -> dict[str, str]:
    """The environment of the gateway and the HTTP API: every setting in force as ``STRATA_<KEY>``, with the
    addresses actually bound."""
    from common.settings import describe

    env = dict(os.environ)
    values = {**describe(settings), "milvus_uri": milvus, "triton_grpc_port": triton_grpc_port,
              "model_repository": str(settings.repository)}
    env.update({f"STRATA_{key.upper()}": str(value) for key, value in values.items()})
    env["STRATA_HOME"] = str(strata_home())
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def up(settings: Settings, log=print, timeout: float = 240.0) -> StackState:
    from common.connect import http_uri
    from common.frame_backbone import check_version
    from common.repository import PARTS, model_name, verify_version
    from serving.gateway.active import active_pin, active_version
    from serving.index.milvus_index import MilvusIndex
    from serving.index.milvus_server import MilvusLiteServer, check_local_settings
    from serving.triton.server import TritonServer
    from serving.triton.swap import ensure_loaded

    # 1. Milvus
    if settings.milvus_uri:
        milvus = settings.milvus_uri
        log(f"milvus: using {milvus} (the milvus_uri setting)")
    else:
        check_local_settings(settings)
        server = MilvusLiteServer()
        state = server.state() or server.start(port=settings.milvus_port, address=settings.milvus_address,
                                               timeout=timeout)
        milvus = http_uri(state.address, state.port("milvus_port"))
        log(f"milvus: {milvus} (Milvus Lite, pid {state.pid}, db {state.serves.get('db')})")
    settings = replace(settings, milvus_uri=milvus)
    index = MilvusIndex.from_settings(settings)
    try:
        active, problem = active_version(settings, index)
        pinned = active_pin(index)
    finally:
        index.close()
    if active is None:
        raise StackError(f"nothing to serve: {problem}")
    base, version = active
    for part in PARTS:   # before Triton starts with them
        verify_version(settings.repository, model_name(base, part), version, pinned)
    check_version(settings.repository, base, version)   # a backbone it cannot read is refused here, not per query

    # 2. Triton, with the active version's models at that version
    triton = TritonServer()
    tstate = triton.state()
    if tstate is None:
        from common.repository import TEXT_BACKBONE

        models = [model_name(base, part) for part in ("text", "video", "scorer")] + [TEXT_BACKBONE]
        models += [name for name in _RAW_VIDEO_MODELS if (settings.repository / name / "config.pbtxt").is_file()]
        ports = None if 0 in settings.triton_ports else settings.triton_ports
        tstate = triton.start(settings.repository, models, ports=ports, address=settings.triton_address,
                             timeout=timeout)
    ensure_loaded(tstate.grpc_url, settings.repository, base, version, None, pinned)   # the record wins over the latest
    log(f"triton: {tstate.grpc_url} (pid {tstate.pid}), serving {base} version {version}")

    # 3. the gateway
    process = gateway_process()
    gstate = process.state()
    if gstate is None:
        ready_file = process.runs / READY_FILE
        ready_file.unlink(missing_ok=True)

        def command(ports: dict[str, int]) -> list[str]:
            return [sys.executable, "-m", GATEWAY.marker, "--port", str(ports["gateway_port"]),
                    "--metrics-port", str(ports["gateway_metrics_port"]), "--ready-file", str(ready_file)]

        gstate = process.start(command, {"gateway_port": settings.gateway_port,
                                         "gateway_metrics_port": settings.gateway_metrics_port},
                               lambda state: _gateway_serving(ready_file, state, settings), address=settings.gateway_address,
                               timeout=timeout, serves={"model": f"{base} v{version}"},
                               env=service_env(settings, milvus, tstate.grpc_port),
                               settings_hint="STRATA_GATEWAY_PORT, settings.yaml or --gateway-port")
    url = f"{reach(gstate.address)}:{gstate.port('gateway_port')}"
    log(f"gateway: {url} (pid {gstate.pid}, metrics on port {gstate.port('gateway_metrics_port')}, "
        f"log {gstate.log})")

    # 4. the HTTP API, in front of that gateway
    http = _http_api(settings, url, service_env(settings, milvus, tstate.grpc_port), timeout, log)
    return StackState(milvus, tstate.grpc_url, url, base, version, http)


def _http_api(settings: Settings, gateway: str, env: dict[str, str], timeout: float, log) -> str:
    """Start the HTTP API in front of ``gateway`` unless it runs there already; its base URL. One that cannot reach
    the gateway with the settings (a gateway that requires client certificates, TLS without a CA) is not started,
    and the log says why: the rest of the stack serves gRPC as before."""
    from common.connect import forwarding_credentials
    from common.errors import ConfigError

    try:
        forwarding_credentials(settings)
    except ConfigError as err:
        log(f"http api: not started: {err}")
        return ""
    process = http_process()
    state = process.state()
    if state is not None and state.serves.get("gateway") != gateway:
        process.stop()   # it fronts a gateway that has moved
        state = None
    if state is None:
        def command(ports: dict[str, int]) -> list[str]:
            return [sys.executable, "-m", HTTP_API.marker, "--port", str(ports["http_port"]), "--gateway", gateway]

        state = process.start(command, {"http_port": settings.http_port}, _listening, address=settings.http_address,
                              timeout=timeout, serves={"gateway": gateway}, env=env,
                              settings_hint="STRATA_HTTP_PORT, settings.yaml or --http-port")
    base = http_base(reach(state.address), state.port("http_port"), bool(settings.gateway_tls_cert))
    log(f"http api: {base} (pid {state.pid}, the search page at {base}/, OpenAPI at {base}/openapi.json, "
        f"log {state.log})")
    return base


def _listening(state: ProcessState) -> bool:
    """Ready once its port accepts connections (uvicorn binds it after the app is built)."""
    import socket

    with socket.create_connection((reach(state.address), state.port("http_port")), timeout=1):
        return True


def _gateway_serving(ready_file: Path, state: ProcessState, settings: Settings) -> bool:
    """Ready once it has bound its ports and its health check (with the settings' credentials) says SERVING."""
    if not ready_file.is_file():
        return False
    port = json.loads(ready_file.read_text())["port"]
    from clients.client import StrataClient

    with StrataClient(f"{reach(state.address)}:{port}", timeout_s=2, settings=settings) as client:
        return client.health() == "SERVING"


def down(log=print) -> None:
    """Stop the HTTP API, the gateway, then Triton, then Milvus (each only if running). A part that cannot be stopped
    does not keep the others running: each is tried, and what failed is raised at the end."""
    from serving.index.milvus_server import MilvusLiteServer
    from serving.triton.server import TritonServer

    failed = []
    for label, stop in (("HTTP API", lambda: http_process().stop()), ("gateway", lambda: gateway_process().stop()), ("Triton", lambda: TritonServer().stop()),
                        ("Milvus", lambda: MilvusLiteServer().stop())):
        try:
            log(stop())
        except (StrataError, OSError) as err:
            failed.append(f"{label}: {err}")
    if failed:
        raise StackError(f"strata down stopped the other parts, but not: {'; '.join(failed)}; see their logs under "
                         f"{strata_home()} and run strata down again")
