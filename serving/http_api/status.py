"""gRPC status codes as HTTP status codes, and the JSON error body that carries a ``google.rpc.Status``.

The mapping is google.api's (``google/rpc/code.proto``), as grpc-gateway and Google's HTTP APIs use it. The body is
Google's JSON error format: ``{"error": {"code": HTTP, "status": NAME, "message": ..., "details": [...]}}``, each
detail a google.rpc message (``BadRequest``, ``ErrorInfo``, ``RetryInfo``) with its ``@type``.
"""
from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from google.rpc import code_pb2, error_details_pb2, status_pb2

HTTP_STATUS = {
    "OK": 200, "CANCELLED": 499, "UNKNOWN": 500, "INVALID_ARGUMENT": 400, "DEADLINE_EXCEEDED": 504, "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409, "PERMISSION_DENIED": 403, "UNAUTHENTICATED": 401, "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400, "ABORTED": 409, "OUT_OF_RANGE": 400, "UNIMPLEMENTED": 501, "INTERNAL": 500,
    "UNAVAILABLE": 503, "DATA_LOSS": 500,
}
DETAIL_TYPES = (error_details_pb2.BadRequest, error_details_pb2.ErrorInfo, error_details_pb2.RetryInfo)   # loaded for @type


def error_body(status: status_pb2.Status, http_status: int | None = None) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) of ``status``; ``http_status`` overrides the mapped code (a body over the size cap
    is 413 however its gRPC status maps)."""
    name = code_pb2.Code.Name(status.code)
    http = http_status or HTTP_STATUS[name]
    return http, {"error": {"code": http, "status": name, "message": status.message,
                            "details": [json_format.MessageToDict(detail) for detail in status.details]}}
