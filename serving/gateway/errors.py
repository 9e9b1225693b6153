"""Errors of the retrieval core and the one table that maps every error to the status a caller gets (no gRPC here:
a :class:`Failure` becomes a ``google.rpc.Status``, which the servicer sends as a gRPC status and the HTTP API as
its error body).

A :class:`GatewayError` names its status code (``code``, the name of a ``grpc.StatusCode``) and may carry what
google.rpc's error details say: the request field at fault (``BadRequest``), a reason with metadata
(``ErrorInfo``, domain :data:`DOMAIN`) and when to retry (``RetryInfo``). :func:`failure` maps everything else:
a backend that failed becomes the status that tells the caller what to do (retry, fix the request, ask the
operator), its reply naming the backend but never its address or its own words (the log has those).
"""
from __future__ import annotations

import errno
from collections.abc import Mapping
import dataclasses
from dataclasses import dataclass

from common.deadline import DeadlineExpired
from common.errors import ConfigError, DataError, StrataError

DOMAIN = "strata.v1"          # ErrorInfo's domain
LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
MALFORMED_REQUEST = "MALFORMED_REQUEST"
BACKEND_UNAVAILABLE = "BACKEND_UNAVAILABLE"
BACKEND_OVERLOADED = "BACKEND_OVERLOADED"
MODEL_NOT_LOADED = "MODEL_NOT_LOADED"
BACKEND_TIMEOUT = "BACKEND_TIMEOUT"
GATEWAY_OVERLOADED = "GATEWAY_OVERLOADED"
WRITE_FAILED = "WRITE_FAILED"
RETRY_AFTER_S = 1.0           # RetryInfo's delay for a backend that is down or overloaded


class GatewayError(StrataError):
    """Base: ``code`` is the name of the ``grpc.StatusCode`` a servicer answers with; ``field`` the request field
    at fault, ``reason`` and ``metadata`` an ``ErrorInfo``, ``retry_after_s`` a ``RetryInfo`` (each optional)."""

    code = "INTERNAL"

    def __init__(self, message: str, field: str = "", reason: str = "", metadata: Mapping[str, str] | None = None,
                 retry_after_s: float | None = None):
        super().__init__(message)
        self.field, self.reason, self.retry_after_s = field, reason, retry_after_s
        self.metadata = dict(metadata or {})


class InvalidArgument(GatewayError):
    code = "INVALID_ARGUMENT"


class NotFound(GatewayError):
    code = "NOT_FOUND"


class FailedPrecondition(GatewayError):
    code = "FAILED_PRECONDITION"


class Unavailable(GatewayError):
    code = "UNAVAILABLE"


class LimitExceeded(GatewayError):
    """A request over one of the size caps, each a setting (``common.settings.LIMITS``). The message, the
    ``BadRequest`` field violation and the ``ErrorInfo`` (reason ``LIMIT_EXCEEDED``, metadata ``limit``, ``max``,
    ``got``) name it. INVALID_ARGUMENT for what the request says (text, ids, frames, pixels), RESOURCE_EXHAUSTED
    for the bytes it sends (``max_file_bytes``, ``max_message_bytes``)."""

    def __init__(self, field: str, what: str, got: int, limit: str, maximum: int, fix: str,
                 code: str = "INVALID_ARGUMENT"):
        super().__init__(f"{field}: {got:,} {what}, over the limit of {maximum:,} (setting {limit}); {fix}",
                         field=field, reason=LIMIT_EXCEEDED,
                         metadata={"limit": limit, "max": str(maximum), "got": str(got)})
        self.code = code


class Overloaded(GatewayError):
    """The gateway runs ``max_concurrent_calls`` calls already: refused at once, before any work, with when to retry
    (the caller's gRPC channel honours it: the pushback of Strata's retry policy)."""

    code = "RESOURCE_EXHAUSTED"

    def __init__(self, running: int):
        super().__init__(f"the gateway is running its limit of {running} calls at once (setting max_concurrent_calls); "
                         f"retry shortly", reason=GATEWAY_OVERLOADED,
                         metadata={"limit": "max_concurrent_calls", "max": str(running)}, retry_after_s=RETRY_AFTER_S / 10)


class WriteFailed(StrataError):
    """A write call failed at its item ``failed_id``: ``committed`` items before it (in the order sent) are written,
    that one and the rest are not (a half-written batch is undone); ``cause`` is the error."""

    def __init__(self, cause: BaseException, committed: int, failed_id: str):
        super().__init__(str(cause))
        self.cause, self.committed, self.failed_id = cause, committed, failed_id

    def after(self, earlier: int) -> "WriteFailed":
        """The same failure in a stream that had committed ``earlier`` items in messages before this one."""
        return WriteFailed(self.cause, earlier + self.committed, self.failed_id)


def check_limit(got: int, maximum: int, limit: str, field: str, what: str, fix: str,
                code: str = "INVALID_ARGUMENT") -> None:
    """Refuse ``got`` over ``maximum`` (the setting ``limit``) with :class:`LimitExceeded`."""
    if got > maximum:
        raise LimitExceeded(field, what, got, limit, maximum, fix, code)


@dataclass(frozen=True)
class Failure:
    """What a caller is told about an error: the status code's name, the message, and the google.rpc details."""

    code: str
    message: str
    field: str = ""
    reason: str = ""
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)
    retry_after_s: float | None = None

    @property
    def logged(self) -> bool:
        """A failure of the gateway itself, logged with its traceback."""
        return self.code == "INTERNAL"

    def rpc_status(self):
        """This failure as a ``google.rpc.Status``: the code, the message and the details (``BadRequest`` for the
        field, ``ErrorInfo`` for the reason, ``RetryInfo`` for the delay), as the gRPC trailer and the HTTP API's
        error body carry it."""
        from google.protobuf import any_pb2, duration_pb2
        from google.rpc import code_pb2, error_details_pb2, status_pb2

        details = []
        if self.field:
            details.append(error_details_pb2.BadRequest(field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=self.field, description=self.message)]))
        if self.reason:
            details.append(error_details_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN, metadata=self.metadata))
        if self.retry_after_s is not None:
            delay = duration_pb2.Duration()
            delay.FromNanoseconds(int(self.retry_after_s * 1e9))
            details.append(error_details_pb2.RetryInfo(retry_delay=delay))
        packed = []
        for detail in details:
            item = any_pb2.Any()
            item.Pack(detail)
            packed.append(item)
        return status_pb2.Status(code=code_pb2.Code.Value(self.code), message=self.message, details=packed)


# Triton's gRPC status -> (code, reason, what the caller should do)
_TRITON = {
    "StatusCode.UNAVAILABLE": ("UNAVAILABLE", BACKEND_UNAVAILABLE, "Triton is unavailable; retry later"),
    "StatusCode.DEADLINE_EXCEEDED": ("DEADLINE_EXCEEDED", BACKEND_TIMEOUT,
                                     "Triton did not answer within the request timeout (request_timeout_s); retry, "
                                     "or send less per call"),
    "StatusCode.NOT_FOUND": ("FAILED_PRECONDITION", MODEL_NOT_LOADED,
                             "Triton does not have the served model version loaded; the operator must load it "
                             "(strata up, or strata swap)"),
    "StatusCode.RESOURCE_EXHAUSTED": ("RESOURCE_EXHAUSTED", BACKEND_OVERLOADED, "Triton is overloaded; retry later"),
}

# Milvus's error code -> (code, reason, what the caller should do)
_MILVUS = {
    8: ("RESOURCE_EXHAUSTED", BACKEND_OVERLOADED, "Milvus is rate-limiting requests; retry later"),
    9: ("RESOURCE_EXHAUSTED", BACKEND_OVERLOADED, "Milvus denies writes (a quota, e.g. its disk or memory); the "
                                                  "operator must free space or raise the quota"),
    100: ("FAILED_PRECONDITION", MODEL_NOT_LOADED, "the served version's Milvus collection is gone (retired?); the "
                                                  "operator must activate a version with an index (strata swap)"),
}


def _backend(code: str, reason: str, backend: str, message: str) -> Failure:
    retry = RETRY_AFTER_S if code in ("UNAVAILABLE", "RESOURCE_EXHAUSTED") else None
    return Failure(code, message, reason=reason, metadata={"backend": backend}, retry_after_s=retry)


def failure(err: BaseException) -> Failure:
    """The status and details a caller gets for ``err``: the one place errors map to statuses."""
    from serving.index.milvus_index import IndexRefused, IndexUnavailable
    from serving.store.base import StoreUnavailable
    from serving.triton.client import TritonRequestError

    if isinstance(err, WriteFailed):
        cause = failure(err.cause)
        return dataclasses.replace(
            cause, message=f"{cause.message} [{err.committed} item(s) of this call were committed before "
                           f"{err.failed_id!r}; it and the items after it were not: send those again]",
            reason=cause.reason or WRITE_FAILED,
            metadata={**cause.metadata, "committed": str(err.committed), "failed_id": err.failed_id})
    if isinstance(err, GatewayError):
        return Failure(err.code, str(err) or type(err).__name__, err.field, err.reason, err.metadata, err.retry_after_s)
    if isinstance(err, DeadlineExpired):
        return Failure("DEADLINE_EXCEEDED", str(err))
    if isinstance(err, IndexUnavailable):
        return _backend("UNAVAILABLE", BACKEND_UNAVAILABLE, "milvus", "Milvus did not answer; retry later")
    if isinstance(err, StoreUnavailable):
        return _backend("UNAVAILABLE", BACKEND_UNAVAILABLE, "store", "the tensor store failed; retry later (the "
                                                                     "gateway's log has the details)")
    if isinstance(err, IndexRefused):
        # the gateway checks every request before Milvus sees it: any other refusal is the gateway's own failure
        code, reason, message = _MILVUS.get(err.milvus_code, ("INTERNAL", "BACKEND_REFUSED",
                                                              "Milvus refused the gateway's request; the gateway's "
                                                              "log has the details"))
        return _backend(code, reason, "milvus", message)
    if isinstance(err, TritonRequestError):
        if err.status is None:   # nothing answered
            return _backend("UNAVAILABLE", BACKEND_UNAVAILABLE, "triton", "Triton did not answer; retry later")
        code, reason, message = _TRITON.get(err.status, ("INTERNAL", "BACKEND_REFUSED",
                                                         "Triton refused the gateway's request; the gateway's log "
                                                         "has the details"))
        return _backend(code, reason, "triton", message)
    if isinstance(err, (DataError, ConfigError)):
        return Failure("INVALID_ARGUMENT", str(err) or type(err).__name__)
    if isinstance(err, MemoryError) or (isinstance(err, OSError) and err.errno == errno.ENOSPC):
        return Failure("RESOURCE_EXHAUSTED", "the gateway ran out of memory or disk for this request; send less per "
                                             "call, or retry later", retry_after_s=RETRY_AFTER_S)
    return Failure("INTERNAL", f"internal error ({type(err).__name__}); the gateway's log has the details")
