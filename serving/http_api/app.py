"""The ASGI app: one route per method of ``strata.v1.Strata``, built from the service descriptor, over the gateway's
stub, ``GET /openapi.json``, and the search page that calls them (:mod:`serving.http_api.search_page`).

A request's body is the method's request message as JSON (protobuf's JSON mapping); for a client-streaming method
(``IndexVideos``, ``IndexVideoFiles``, ``SearchCaptionsByClip``) a JSON list of them, one object being a stream of
one; an empty body is the empty message. A body is held to ``max_message_bytes``. The caller's ``Authorization``
header goes on to the gateway with the call, which checks it as it checks a gRPC caller's (the app's own channel
carries no credential: :func:`common.connect.forwarding_credentials`). The answer is the response message as JSON,
every field present; an error is its gRPC status mapped to HTTP with its google.rpc details
(:mod:`serving.http_api.status`), the same for what this app refuses itself. Calls get the client library's
deadlines: ``request_timeout_s``, and at least :data:`STREAM_TIMEOUT_S` for a stream.
"""
from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from google.protobuf import json_format
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.rpc import code_pb2, status_pb2
from grpc_status import rpc_status
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from common.connect import gateway_channel
from common.settings import Settings
from serving.gateway.errors import LIMIT_EXCEEDED, MALFORMED_REQUEST, Failure
from serving.http_api import openapi, search_page
from serving.http_api.status import error_body
from serving.proto.strata.v1 import strata_pb2 as pb
from serving.proto.strata.v1 import strata_pb2_grpc as pb_grpc

SERVICE = pb.DESCRIPTOR.services_by_name["Strata"]
STREAM_TIMEOUT_S = 600.0      # a streamed upload's deadline at least, as the client library gives it
OPENAPI_PATH = "/openapi.json"
HTTP_ERRORS = {404: "NOT_FOUND", 405: "UNIMPLEMENTED"}   # what Starlette's router answers, as gRPC statuses


class Refused(Exception):
    """A request this app answers itself, before the gateway sees it: ``failure`` with ``http_status`` if given."""

    def __init__(self, failure: Failure, http_status: int | None = None):
        super().__init__(failure.message)
        self.failure, self.http_status = failure, http_status


def _error(status: status_pb2.Status, http_status: int | None = None) -> JSONResponse:
    code, body = error_body(status, http_status)
    return JSONResponse(body, status_code=code)


def _malformed(method: MethodDescriptor, what: str) -> Refused:
    name = method.input_type.full_name
    shape = f"a JSON list of {name} messages (or one)" if method.client_streaming else f"a {name} message as JSON"
    return Refused(Failure("INVALID_ARGUMENT", f"the request body is not {shape}: {what}; see {OPENAPI_PATH}",
                           reason=MALFORMED_REQUEST, metadata={"message": name}))


def parse(method: MethodDescriptor, body: bytes) -> list[Message]:
    """The request messages ``body`` holds (one for a unary method)."""
    try:
        data = json.loads(body) if body.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _malformed(method, f"not JSON ({err})") from None
    items = data if method.client_streaming and isinstance(data, list) else [data]
    if not all(isinstance(item, dict) for item in items):
        raise _malformed(method, "a message is a JSON object")
    message_class = GetMessageClass(method.input_type)
    try:
        return [json_format.ParseDict(item, message_class()) for item in items]
    except json_format.ParseError as err:
        raise _malformed(method, str(err)) from None


async def _read(request: Request, cap: int) -> bytes:
    """The body, refused (413) past ``cap`` bytes without reading the rest."""
    too_large = Refused(Failure("RESOURCE_EXHAUSTED", f"the request body is over the limit of {cap:,} bytes (setting "
                                "max_message_bytes); send less per request, or stream it over gRPC",
                                reason=LIMIT_EXCEEDED, metadata={"limit": "max_message_bytes", "max": str(cap)}), 413)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            raise too_large
    return bytes(body)


def _forwarded(request: Request) -> tuple[tuple[str, str], ...]:
    """The caller's credential as gRPC metadata (a header gRPC could not carry is left out: no credential)."""
    value = request.headers.get("authorization", "")
    return (("authorization", value),) if value and value.isascii() and value.isprintable() else ()


def create_app(settings: Settings, gateway: str) -> Starlette:
    """The HTTP API of the gateway at ``gateway`` (``host:port``), with the limits and TLS of ``settings``."""
    channel = gateway_channel(gateway, settings=settings, forwarding=True)
    stub = pb_grpc.StrataStub(channel)
    description = openapi.document(SERVICE, "Strata", SERVICE.file.package)

    def call(method: MethodDescriptor, messages: list[Message], metadata) -> Message:
        streaming = method.client_streaming
        timeout = max(settings.request_timeout_s, STREAM_TIMEOUT_S) if streaming else settings.request_timeout_s
        return getattr(stub, method.name)(iter(messages) if streaming else messages[0], timeout=timeout,
                                          metadata=metadata)

    def endpoint(method: MethodDescriptor):
        async def handle(request: Request) -> JSONResponse:
            try:
                messages = parse(method, await _read(request, settings.max_message_bytes))
                answer = await run_in_threadpool(call, method, messages, _forwarded(request))
            except Refused as refused:
                return _error(refused.failure.rpc_status(), refused.http_status)
            except grpc.RpcError as err:
                status = rpc_status.from_call(err) or status_pb2.Status(code=err.code().value[0],
                                                                        message=err.details() or "")
                return _error(status)
            return JSONResponse(json_format.MessageToDict(answer, always_print_fields_with_no_presence=True))
        return handle

    async def describe_api(request: Request) -> JSONResponse:
        return JSONResponse(description)

    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        name = HTTP_ERRORS.get(exc.status_code, "UNKNOWN")
        return _error(status_pb2.Status(code=code_pb2.Code.Value(name), message=f"{request.method} {request.url.path}: "
                                        f"{exc.detail}; the methods are the POST paths of {OPENAPI_PATH}"),
                      exc.status_code)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        channel.close()

    for method in SERVICE.methods:
        if method.server_streaming:
            raise NotImplementedError(f"{method.full_name} streams its answers, which this API cannot send as JSON")
    routes = [Route(openapi.path(SERVICE, m), endpoint(m), methods=["POST"]) for m in SERVICE.methods]
    routes.append(Route(OPENAPI_PATH, describe_api, methods=["GET"]))
    routes += search_page.routes()
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error}, lifespan=lifespan)
