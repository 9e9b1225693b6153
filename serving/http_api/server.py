"""The HTTP API's server: uvicorn on the ``http_address`` setting, serving HTTPS with the gateway's certificate
(``gateway_tls_cert``, ``gateway_tls_key``) when the gateway has TLS, so a token never travels in plain text on one
side and not the other."""
from __future__ import annotations

import uvicorn

from common.settings import Settings
from serving.http_api.app import create_app


def config(settings: Settings, gateway: str, port: int) -> uvicorn.Config:
    """The server of the HTTP API in front of the gateway at ``gateway`` (``host:port``), on ``port``."""
    tls = {}
    if settings.gateway_tls_cert:
        tls = dict(ssl_certfile=str(settings.secret_file("gateway_tls_cert")),
                   ssl_keyfile=str(settings.secret_file("gateway_tls_key")))
    return uvicorn.Config(create_app(settings, gateway), host=settings.http_address, port=port, lifespan="on",
                          log_level="info", **tls)
