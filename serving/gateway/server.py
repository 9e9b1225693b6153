"""The gateway process: the ``strata.v1.Strata`` service with ``grpc.health.v1`` health and server reflection, and
Prometheus metrics over HTTP.

Health is SERVING only while Milvus and Triton answer and a model version is active; a background loop re-checks
it (and picks up a newly exported or activated version, and loads the active version back into a Triton that was
restarted without it) every ``HEALTH_PERIOD_S``. Port 0 binds a free port;
the bound ports are written to ``ready_file`` (JSON), which is how ``strata up`` and the tests learn them.

Load: at most ``max_concurrent_calls`` Strata calls run at once, and one more is refused at once with
RESOURCE_EXHAUSTED (:class:`~serving.gateway.servicer.Admission`); the server's threads are that many and
``SPARE_THREADS`` more, so health answers while every call slot is busy. Each call runs within its caller's deadline
(:mod:`common.deadline`): no backend call starts after the caller gave up.

Credentials (TLS, mTLS, bearer tokens) come from the settings; :mod:`serving.gateway.auth` checks every call in
one interceptor.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import threading
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from common.settings import Settings
from serving.gateway.auth import interceptors, server_credentials
from serving.gateway.metrics import serve_metrics
from serving.gateway.service import RetrievalService
from serving.gateway.servicer import StrataServicer, add_to_server
from serving.proto.strata.v1 import strata_pb2 as pb

log = logging.getLogger("strata.gateway")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Strata"].full_name   # strata.v1.Strata
HEALTH_PERIOD_S = 2.0
SPARE_THREADS = 4   # beyond max_concurrent_calls: health checks, reflection and refusals answer while all calls run


class Gateway:
    def __init__(self, settings: Settings):
        self.settings = settings
        credentials, checks = server_credentials(settings), interceptors(settings)   # refused before any work
        self.service = RetrievalService(settings)
        workers = settings.max_concurrent_calls + SPARE_THREADS
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes)], interceptors=checks)
        add_to_server(StrataServicer(self.service), self.server)
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server)
        bind = f"{settings.gateway_address}:{settings.gateway_port}"
        self.port = (self.server.add_secure_port(bind, credentials) if credentials is not None
                     else self.server.add_insecure_port(bind))
        if self.port == 0:
            raise OSError(f"cannot listen on {bind} (in use? set gateway_port)")
        self.metrics_server, _ = serve_metrics(settings.gateway_metrics_address, settings.gateway_metrics_port)
        self.metrics_port = self.metrics_server.server_port
        self._stopped = threading.Event()
        self._why = ""
        self._health_thread = threading.Thread(target=self._health_loop, name="health", daemon=True)

    def check_health(self) -> bool:
        if self.service.index.ping():   # a refresh against an unreachable Milvus would wait for its timeout
            self.service.refresh()
            self.service.restore()      # a Triton restarted without the active version gets it back
        serving, why = self.service.health()
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE_NAME):
            self.health.set(name, status)
        if why != self._why:   # a change is logged once, not every period
            log.info("not serving: %s", why or "serving again")
            self._why = why
        return serving

    def _health_loop(self) -> None:
        while not self._stopped.wait(HEALTH_PERIOD_S):
            try:
                self.check_health()
            except Exception:  # noqa: BLE001 - the loop must outlive any one failed check
                log.exception("health check failed")

    def start(self) -> None:
        self.check_health()
        self.server.start()
        self._health_thread.start()
        log.info("gateway on %s:%d (metrics on %d)", self.settings.gateway_address, self.port, self.metrics_port)

    def stop(self, grace: float = 5.0) -> None:
        self._stopped.set()
        self.server.stop(grace).wait()
        self.metrics_server.shutdown()
        self.service.close()


def serve(settings: Settings, ready_file: str | Path | None = None) -> None:
    """Run a gateway until SIGTERM or SIGINT; queries in flight get a grace period."""
    gateway = Gateway(settings)
    gateway.start()
    if ready_file:
        record = {"pid": os.getpid(), "address": settings.gateway_address, "port": gateway.port,
                  "metrics_port": gateway.metrics_port}
        tmp = Path(f"{ready_file}.tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(ready_file)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    gateway.stop()
