"""Errors of the retrieval core, each naming the gRPC status it maps to (the core itself knows no gRPC)."""
from __future__ import annotations

from common.errors import StrataError


class GatewayError(StrataError):
    """Base: ``code`` is the name of the ``grpc.StatusCode`` a servicer answers with."""

    code = "INTERNAL"


class InvalidArgument(GatewayError):
    code = "INVALID_ARGUMENT"


class NotFound(GatewayError):
    code = "NOT_FOUND"


class FailedPrecondition(GatewayError):
    code = "FAILED_PRECONDITION"


class Unavailable(GatewayError):
    code = "UNAVAILABLE"
