"""The one place Strata makes connections: Triton clients, Milvus clients and the gateway's gRPC channel.

Every client of a backend in Strata comes from here (a test in the suite holds the product code to that), so what a
connection needs beyond an address (deadlines, retries, TLS and credentials) is decided once, from the settings:
the gateway's CA, client certificate and bearer token (``gateway_*``), Milvus's token, database and CA
(``milvus_*``).

Where each part runs is resolved here too, in one order: an address given explicitly (a ``--url`` flag), else the
record of the part running locally (``strata up`` / ``strata triton start``, :mod:`common.records`), else the
settings. :func:`service_settings` gives the settings with the local stack's recorded addresses filled in.

Torch-free; tritonclient, pymilvus and grpc are imported only by the call that needs them.
"""
from __future__ import annotations

import itertools
import json
import os
from dataclasses import replace
from typing import Any

from common.records import GATEWAY, HTTP_API, MILVUS, TRITON, Part, running_part
from common.errors import ConfigError
from common.settings import GATEWAY_TOKEN_ENV, MILVUS_TOKEN_ENV, Settings, http_base, load_settings, reach

# The gateway channel: messages up to the setting max_message_bytes (uploaded features), and gRPC's own retries of
# the calls that are safe to repeat (they change nothing, or upsert), on the statuses that say "try again": at
# most 4 attempts, backed off exponentially with jitter, or after the delay the gateway asks for (its pushback,
# which also says "never" for a request over a byte limit). The throttle stops retries while most calls of the
# channel fail (each failure takes a token, each success gives back 0.1; retries only above 5 of 10), so a
# client never multiplies an outage by its attempts.
GATEWAY_SERVICE = "strata.v1.Strata"
GATEWAY_RETRIED = ("SearchVideos", "SearchCaptions", "ScoreVideos", "Describe", "IndexCaptions")
GATEWAY_RETRY_POLICY = {
    "methodConfig": [{
        "name": [{"service": GATEWAY_SERVICE, "method": m} for m in GATEWAY_RETRIED],
        "retryPolicy": {"maxAttempts": 4, "initialBackoff": "0.2s", "maxBackoff": "2s", "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE", "RESOURCE_EXHAUSTED"]},
    }],
    "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
}
# Triton's channel: reconnect within a second or two of a restart (gRPC's default backs off for up to 2 minutes)
TRITON_CHANNEL = [("grpc.max_send_message_length", 2**31 - 1), ("grpc.max_receive_message_length", 2**31 - 1),
                  ("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                  ("grpc.max_reconnect_backoff_ms", 1000)]


_MILVUS_ALIASES = itertools.count()


# -- where each part runs ---------------------------------------------------------------------------------------
def http_uri(address: str, port: int) -> str:
    """A Milvus URI for a server bound to ``address:port``."""
    return f"http://{reach(address)}:{port}"


def public_uri(uri: str) -> str:
    """``uri`` without what may be a credential: its user and password, path, query and fragment."""
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if not parts.hostname:
        return parts.scheme + ":" if parts.scheme else "(a local file)"
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def service_settings(settings: Settings | None = None) -> Settings:
    """``settings`` (default: those in force) with the running local Triton's address, gRPC port and repository, and the
    local Milvus's URI when the ``milvus_uri`` setting names none."""
    settings = settings if settings is not None else load_settings()
    triton = running_part(TRITON)
    if triton is not None:
        settings = replace(settings, triton_address=triton.address, triton_grpc_port=triton.port("triton_grpc_port"),
                           model_repository=triton.serves["repo"])
    if not settings.milvus_uri:
        milvus = running_part(MILVUS)
        if milvus is not None:
            settings = replace(settings, milvus_uri=http_uri(milvus.address, milvus.port("milvus_port")))
    return settings


def _running_address(part: Part, port_key: str) -> str | None:
    """``host:port`` of ``part`` running locally (its record), or None."""
    state = running_part(part)
    return None if state is None else f"{reach(state.address)}:{state.port(port_key)}"


def triton_url(settings: Settings | None = None, url: str | None = None) -> str:
    """``url`` as given; else the gRPC address of the running local Triton; else the settings'."""
    return url or _running_address(TRITON, "triton_grpc_port") or (settings or load_settings()).triton_url


def gateway_url(settings: Settings | None = None, url: str | None = None) -> str:
    """``url`` as given; else the running local gateway's address (its record); else the settings'."""
    return url or _running_address(GATEWAY, "gateway_port") or (settings or load_settings()).gateway_url


def http_api_url(settings: Settings | None = None, url: str | None = None) -> str:
    """``url`` as given; else the running local HTTP API's base URL (its record); else the settings'."""
    if url:
        return url
    settings = settings or load_settings()
    state = running_part(HTTP_API)
    if state is None:
        return settings.http_url
    return http_base(reach(state.address), state.port("http_port"), bool(settings.gateway_tls_cert))


# -- clients ------------------------------------------------------------------------------------------------------
def triton_client(url: str):
    """A Triton gRPC client of the server at ``url`` (``host:grpc_port``) that reconnects promptly after a restart."""
    import tritonclient.grpc as grpcclient

    return grpcclient.InferenceServerClient(url, channel_args=TRITON_CHANNEL)


def milvus_client(uri: str, timeout_s: float, settings: Settings | None = None):
    """A pymilvus client of the Milvus at ``uri``, on a connection of its own, with the credentials of ``settings``
    (default: those in force): :func:`milvus_options`.

    pymilvus keeps connections in a process-wide table by alias, and a client whose alias is already there reuses
    that connection whatever its ``uri``: a reused alias (one made from ``id()`` of a collected object, say) would
    keep talking to the server it first reached. So every client gets an alias never given before in this process.
    """
    from pymilvus import MilvusClient

    options = milvus_options(settings if settings is not None else load_settings())
    return MilvusClient(uri=uri, timeout=timeout_s, alias=f"strata-{os.getpid()}-{next(_MILVUS_ALIASES)}", **options)


def milvus_options(settings: Settings) -> dict[str, Any]:
    """What every Milvus client is given beyond its URI: the token (``milvus_token_file`` or $STRATA_MILVUS_TOKEN;
    ``user:password`` is a token too), the database (``milvus_db``) and the CA of an https:// Milvus
    (``milvus_tls_ca``)."""
    options: dict[str, Any] = {}
    token = settings.secret("milvus_token_file", MILVUS_TOKEN_ENV)
    if token is not None:
        options["token"] = token.decode().strip()
    if settings.milvus_db:
        options["db_name"] = settings.milvus_db
    if settings.secret("milvus_tls_ca") is not None:   # read here so that an unreadable file is named now
        options.update(secure=True, server_pem_path=str(settings.secret_file("milvus_tls_ca")))
    return options


def gateway_channel(url: str, retries: bool = True, settings: Settings | None = None, forwarding: bool = False) -> Any:
    """A gRPC channel to the gateway at ``url`` with the credentials and message size (``max_message_bytes``) of
    ``settings`` (default: those in force); ``retries``: gRPC retries the calls safe to repeat.

    ``forwarding``: the channel of a proxy that passes each caller's own token on with the call (the HTTP API): TLS
    with ``gateway_tls_ca`` only, never the settings' token or client certificate, which would lend their role to
    every caller (:func:`forwarding_credentials`)."""
    import grpc

    settings = settings if settings is not None else load_settings()
    options = [("grpc.max_receive_message_length", settings.max_message_bytes),
               ("grpc.max_send_message_length", settings.max_message_bytes)]
    if retries:
        options += [("grpc.enable_retries", 1), ("grpc.service_config", json.dumps(GATEWAY_RETRY_POLICY))]
    credentials = forwarding_credentials(settings) if forwarding else gateway_credentials(settings)
    if credentials is None:
        return grpc.insecure_channel(url, options=options)
    return grpc.secure_channel(url, credentials, options=options)


def gateway_credentials(settings: Settings) -> Any:
    """TLS channel credentials for the gateway (the ``gateway_tls_ca`` it is checked against; mTLS with
    ``gateway_client_cert`` and ``gateway_client_key``), with the bearer token (``gateway_token_file`` or
    $STRATA_GATEWAY_TOKEN) on every call; None when no CA is set (plain text, no credentials)."""
    import grpc

    ca = settings.secret("gateway_tls_ca")
    token = settings.secret("gateway_token_file", GATEWAY_TOKEN_ENV)
    if ca is None:
        if token is not None or settings.gateway_client_cert:
            raise ConfigError("a gateway token or client certificate is set but gateway_tls_ca is not: credentials "
                              "travel only over TLS, so set gateway_tls_ca to the CA that signed the gateway's "
                              "certificate")
        return None
    tls = grpc.ssl_channel_credentials(root_certificates=ca, private_key=settings.secret("gateway_client_key"),
                                       certificate_chain=settings.secret("gateway_client_cert"))
    if token is None:
        return tls
    return grpc.composite_channel_credentials(tls, grpc.access_token_call_credentials(token.decode().strip()))


def forwarding_credentials(settings: Settings) -> Any:
    """TLS channel credentials that check the gateway against ``gateway_tls_ca`` and carry nothing of their own;
    None for a gateway without TLS. A gateway with TLS needs the CA; one that requires client certificates
    (``gateway_client_ca``) cannot be reached this way: a shared certificate would give its role to every caller."""
    import grpc

    if settings.gateway_client_ca:
        raise ConfigError("the gateway requires client certificates (gateway_client_ca), and the HTTP API passes on "
                          "only its callers' bearer tokens: unset gateway_client_ca to serve HTTP, or call over gRPC")
    ca = settings.secret("gateway_tls_ca")
    if ca is None:
        if settings.gateway_tls_cert:
            raise ConfigError("the gateway has TLS (gateway_tls_cert) but gateway_tls_ca is not set: the HTTP API "
                              "checks the gateway's certificate against it; set it to the CA that signed that certificate")
        return None
    return grpc.ssl_channel_credentials(root_certificates=ca)
