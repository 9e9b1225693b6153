"""Who may call the gateway: TLS or mTLS server credentials, and one server interceptor that checks every call.

The access file (the ``gateway_access_file`` setting) lists who may call, one grant a line (``#`` starts a comment)::

    read  3b1f...        # a bearer token that may search and describe
    write 9c4e...        # a bearer token that may also index and delete
    write CN=ingest-job  # a client certificate (mTLS) with this common name

A call carries a token as ``authorization: Bearer TOKEN`` metadata, or a client certificate signed by the
``gateway_client_ca``; with both, the stronger role wins. A call without a valid credential gets UNAUTHENTICATED,
a read credential on a write method PERMISSION_DENIED. Health is open (probes); reflection needs a read credential.
Tokens are kept only as their sha256, and no credential is ever logged or put in a reply.
"""
from __future__ import annotations

import hashlib
import logging

import grpc

from common.errors import ConfigError
from common.settings import Settings
from serving.gateway import metrics

log = logging.getLogger("strata.gateway")

ROLES = ("read", "write")                     # each role may do what the ones before it may
WRITE_METHODS = frozenset({"IndexVideos", "IndexVideoFiles", "IndexCaptions", "Delete"})
OPEN_SERVICES = frozenset({"grpc.health.v1.Health"})
CERT_PREFIX = "CN="


class Access:
    """The grants of an access file: sha256 of each token, and certificate common names, each with its role."""

    def __init__(self, text: str, where: str):
        self.tokens: dict[str, str] = {}
        self.names: dict[str, str] = {}
        for number, line in enumerate(text.splitlines(), 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            if len(words) != 2 or words[0] not in ROLES:
                raise ConfigError(f"{where} line {number}: expected 'read TOKEN', 'write TOKEN' or 'read CN=NAME' "
                                  f"(a role of {', '.join(ROLES)} and one credential)")
            role, credential = words
            if credential.startswith(CERT_PREFIX):
                self.names[credential[len(CERT_PREFIX):]] = role
            else:
                self.tokens[_digest(credential)] = role
        if not self.tokens and not self.names:
            raise ConfigError(f"{where} grants nothing: add lines 'read TOKEN' or 'write TOKEN'")

    def role(self, context: grpc.ServicerContext) -> str | None:
        """The strongest role the call's credentials carry, or None."""
        found = []
        for key, value in context.invocation_metadata():
            if key == "authorization" and value.startswith("Bearer "):
                found.append(self.tokens.get(_digest(value[len("Bearer "):].strip())))
        for name in context.auth_context().get("x509_common_name", []):   # present only for a verified certificate
            found.append(self.names.get(name.decode()))
        granted = [ROLES.index(role) for role in found if role is not None]
        return ROLES[max(granted)] if granted else None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AuthInterceptor(grpc.ServerInterceptor):
    """Checks the credentials of every call to a service outside :data:`OPEN_SERVICES` before it runs."""

    def __init__(self, access: Access):
        self.access = access

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        service, _, method = handler_call_details.method.strip("/").partition("/")
        if handler is None or service in OPEN_SERVICES:
            return handler
        need = "write" if method in WRITE_METHODS else "read"
        kind = f"{'stream' if handler.request_streaming else 'unary'}_{'stream' if handler.response_streaming else 'unary'}"
        behaviour = getattr(handler, kind)

        def checked(request, context):
            self._check(context, method, need)
            return behaviour(request, context)

        return getattr(grpc, f"{kind}_rpc_method_handler")(checked, request_deserializer=handler.request_deserializer,
                                                           response_serializer=handler.response_serializer)

    def _check(self, context: grpc.ServicerContext, method: str, need: str) -> None:
        role = self.access.role(context)
        if role is None:
            code, message = grpc.StatusCode.UNAUTHENTICATED, (
                f"{method} needs a credential: a bearer token (the gateway_token_file setting or $STRATA_GATEWAY_TOKEN) "
                "or a client certificate the gateway's CA signed, listed in its access file")
        elif ROLES.index(role) < ROLES.index(need):
            code, message = grpc.StatusCode.PERMISSION_DENIED, (
                f"{method} changes the index and needs a {need} credential; this one may only {role}")
        else:
            return
        log.info("%s: %s (peer %s)", method, code.name, context.peer())
        metrics.observe_call(method, code.name, 0.0)
        context.abort(code, message)


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS credentials from the settings (mTLS with ``gateway_client_ca``), or None for plain text."""
    cert, key = settings.secret("gateway_tls_cert"), settings.secret("gateway_tls_key")
    if cert is None:
        return None
    client_ca = settings.secret("gateway_client_ca")
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=client_ca,
                                       require_client_auth=client_ca is not None)


def interceptors(settings: Settings) -> list[grpc.ServerInterceptor]:
    """The auth interceptor when ``gateway_access_file`` is set (which needs TLS: tokens never travel in plain
    text); no interceptor otherwise."""
    text = settings.secret("gateway_access_file")
    if text is None:
        if settings.gateway_client_ca:
            raise ConfigError("gateway_client_ca (mTLS) needs gateway_access_file: list each client certificate as "
                              "'read CN=NAME' or 'write CN=NAME'")
        return []
    if not settings.gateway_tls_cert:
        raise ConfigError("gateway_access_file is set but the gateway has no TLS, so tokens would travel in plain "
                          "text: set gateway_tls_cert and gateway_tls_key")
    return [AuthInterceptor(Access(text.decode(), f"gateway_access_file {settings.gateway_access_file}"))]
