"""The Locust user that the load tools share (``strata bench e2e`` and the soak, tests/soak): one gRPC client of the
gateway at Locust's ``--host``; every call reported to Locust with its time and outcome. Import it only inside a
Locust run: it makes gRPC cooperate with Locust's greenlets."""
from __future__ import annotations

import time

import grpc.experimental.gevent as grpc_gevent
from locust import User

from clients.client import StrataClient

grpc_gevent.init_gevent()   # gRPC's completion queue cooperates with Locust's greenlets


class GatewayUser(User):
    abstract = True          # Locust runs the concrete users of a locustfile, not this one

    def on_start(self) -> None:
        self.client = StrataClient(self.host, timeout_s=30)

    def on_stop(self) -> None:
        self.client.close()

    def timed(self, name: str, call):
        """(``call()``'s result or None when it failed, its wall time in ms), reported to Locust as the request
        ``name``."""
        start = time.perf_counter()
        result, failure = None, None
        try:
            result = call()
        except Exception as err:  # noqa: BLE001 - every failure is counted by Locust, none ends the user
            failure = err
        ms = (time.perf_counter() - start) * 1000.0
        self.environment.events.request.fire(request_type="grpc", name=name, response_length=0, exception=failure,
                                             response_time=ms, context={})
        return result, ms
