"""The ``strata.v1.Strata`` servicer: convert the request, call the core, convert the answer (nothing else).

Errors map to status codes in one place, :func:`serving.gateway.errors.failure`; the :func:`rpc` decorator answers
with that status and its google.rpc details (``BadRequest``, ``ErrorInfo``, ``RetryInfo``) in the standard
``grpc-status-details-bin`` trailer. A failure of the gateway itself is INTERNAL and logged. Every call is counted
and timed for Prometheus.

Requests are parsed by :func:`add_to_server`'s handlers: bytes that are not a valid message (a truncated message, a
string field that is not UTF-8) are the caller's INVALID_ARGUMENT, answered like any other refusal, never
grpc's INTERNAL "Exception deserializing request!". Uploaded files are held to ``max_file_bytes`` as they arrive.
"""
from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import grpc
from google.protobuf.message import Message

from common import deadline
from common.serving_tables import CAPTIONS, VIDEOS
from serving.gateway import metrics
from serving.gateway.convert import answer_to_pb, features_from_pb
from serving.gateway.errors import (
    MALFORMED_REQUEST,
    Failure,
    InvalidArgument,
    LimitExceeded,
    Overloaded,
    WriteFailed,
    failure,
)
from serving.gateway.service import RetrievalService
from serving.gateway.types import CaptionInput, VideoInput
from serving.proto.strata.v1 import strata_pb2 as pb
from serving.proto.strata.v1 import strata_pb2_grpc as pb_grpc

log = logging.getLogger("strata.gateway")

SERVICE = pb.DESCRIPTOR.services_by_name["Strata"]


@dataclass(frozen=True)
class Malformed:
    """What the request deserializer gives for bytes that do not parse (grpc would answer INTERNAL for a raise)."""

    message_type: str
    error: str

    def refuse(self) -> InvalidArgument:
        return InvalidArgument(f"the request is not a valid {self.message_type} message ({self.error}): a string "
                               f"field that is not UTF-8, a truncated message, or bytes that are not protobuf; encode "
                               f"it with a protobuf library from strata.proto", reason=MALFORMED_REQUEST,
                               metadata={"message": self.message_type})


def _parser(message_class):
    def parse(data: bytes):
        from google.protobuf.message import DecodeError

        try:
            return message_class.FromString(data)
        except (DecodeError, UnicodeDecodeError) as err:
            return Malformed(message_class.DESCRIPTOR.full_name, str(err))
    return parse


def _checked(requests: Iterator) -> Iterator:
    for request in requests:
        if isinstance(request, Malformed):
            raise request.refuse()
        yield request


def add_to_server(servicer: "StrataServicer", server: grpc.Server) -> None:
    """Register every method of ``strata.v1.Strata`` with request parsing that refuses malformed messages."""
    from google.protobuf.message_factory import GetMessageClass

    handlers = {}
    for method in SERVICE.methods:
        kind = f"{'stream' if method.client_streaming else 'unary'}_{'stream' if method.server_streaming else 'unary'}"
        handlers[method.name] = getattr(grpc, f"{kind}_rpc_method_handler")(
            getattr(servicer, method.name), request_deserializer=_parser(GetMessageClass(method.input_type)),
            response_serializer=GetMessageClass(method.output_type).SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),))


PUSHBACK = "grpc-retry-pushback-ms"   # gRPC's own retry honours it: when to try again, or (negative) never


def status_of(answer: Failure):
    """``answer`` as a ``grpc.Status`` carrying a google.rpc ``Status`` with its details, and gRPC's retry pushback:
    the ``RetryInfo`` delay, or "do not retry" for a status the caller could retry but should not (a request over
    a byte limit is RESOURCE_EXHAUSTED too)."""
    from grpc_status import rpc_status

    status = rpc_status.to_status(answer.rpc_status())
    pushback = str(round(answer.retry_after_s * 1e3)) if answer.retry_after_s is not None else "-1"
    return _Status(status.code, status.details, (*status.trailing_metadata, (PUSHBACK, pushback)))


@dataclass(frozen=True)
class _Status(grpc.Status):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple


class Admission:
    """At most ``limit`` calls run at once; one more is refused at once (:class:`Overloaded`), never queued. The
    server has spare threads beyond the limit, so health checks and refusals are answered while every slot is busy."""

    def __init__(self, limit: int):
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)

    @contextmanager
    def slot(self) -> Iterator[None]:
        if not self._slots.acquire(blocking=False):
            raise Overloaded(self.limit)
        metrics.IN_FLIGHT.inc()
        try:
            yield
        finally:
            metrics.IN_FLIGHT.dec()
            self._slots.release()


def rpc(method):
    """Run a servicer method within an admission slot and the caller's deadline (:mod:`common.deadline`); answer
    errors with their status and details, and count every call."""
    call = method.__name__

    @functools.wraps(method)
    def wrapper(self, request, context):
        start, code = time.perf_counter(), "OK"
        try:
            if isinstance(request, Malformed):
                raise request.refuse()
            with self.admission.slot(), deadline.serving(context.time_remaining(), context.is_active):
                return method(self, request if isinstance(request, Message) else _checked(request), context)
        except Exception as err:  # noqa: BLE001 - every error becomes a status, the server keeps serving
            answer = failure(err)
            code = answer.code
            if answer.logged:
                log.exception("%s failed", call)
            else:
                log.info("%s: %s: %s", call, code, err)
            context.abort_with_status(status_of(answer))
        finally:
            metrics.observe_call(call, code, time.perf_counter() - start)

    return wrapper


FILES_PER_BATCH = 8   # raw files decoded, embedded and committed together (fewer when they reach max_file_bytes)


@dataclass(frozen=True)
class OversizedFile:
    """A file of a stream that went over ``max_file_bytes``: its chunks were dropped as they came."""

    id: str
    name: str
    error: LimitExceeded


def _over(size: int, max_bytes: int, name: str) -> LimitExceeded:
    return LimitExceeded("data", f"bytes in file {name} (and counting)", size, "max_file_bytes", max_bytes,
                         "send a shorter or more compressed video", code="RESOURCE_EXHAUSTED")


def files_from_chunks(chunks, max_bytes: int):
    """Whole files from a chunk stream: consecutive chunks with the same id (an empty id continues the file). A
    file over ``max_bytes`` is not kept: an :class:`OversizedFile` stands in its place."""
    from serving.ingest.raw import VideoFile

    current, parts, size = None, [], 0

    def whole():
        name = current.filename or current.id
        if size > max_bytes:
            return OversizedFile(current.id, name, _over(size, max_bytes, name))
        return VideoFile(current.id, name, b"".join(parts))

    for chunk in chunks:
        if chunk.id and (current is None or chunk.id != current.id):
            if current is not None:
                yield whole()
            current, parts, size = chunk, [], 0
        elif current is None:
            raise InvalidArgument("the first chunk of a file must carry its id", field="id")
        size += len(chunk.data)
        if size <= max_bytes:
            parts.append(chunk.data)
        else:
            parts = []
    if current is not None:
        yield whole()


class StreamIds:
    """The ids one stream has sent so far: an id in two messages of one stream is refused (not silently upserted);
    and how many of its items are committed, which a write that fails reports (:class:`WriteFailed`)."""

    def __init__(self, what: str):
        self.what, self.seen, self.committed = what, set(), 0

    def write(self, first_id: str, write):
        """``write()`` for the message whose first item is ``first_id``; its failure counts what this stream
        committed before it."""
        try:
            return write()
        except WriteFailed as err:
            raise err.after(self.committed) from err.cause
        except Exception as err:  # noqa: BLE001 - the caller learns what earlier messages committed
            if self.committed:
                raise WriteFailed(err, self.committed, first_id) from err
            raise

    def add(self, ids: list[str]) -> None:
        again = sorted(self.seen.intersection(ids))
        if again:
            raise InvalidArgument(f"{self.what} id(s) {', '.join(map(repr, again[:5]))}"
                                  + (f" and {len(again) - 5} more" if len(again) > 5 else "")
                                  + f" came in an earlier message of this stream; send each id once per call (this "
                                  f"call indexed {self.committed} {self.what}(s) before this message)", field="id")
        self.seen.update(ids)


class StrataServicer(pb_grpc.StrataServicer):
    def __init__(self, service: RetrievalService):
        from serving.ingest.raw import RawVideos

        self.service = service
        self.raw = RawVideos(service)
        self.admission = Admission(service.settings.max_concurrent_calls)

    @rpc
    def SearchVideos(self, request, context):
        answer = self.service.search_videos(request.text, request.top_k, request.candidate_depth, request.evidence)
        metrics.observe_stages(answer.timings)
        return answer_to_pb(answer)

    @rpc
    def SearchCaptions(self, request, context):
        query = request.WhichOneof("query")
        if query is None:
            raise InvalidArgument("give video_id (an indexed video) or features (an uploaded video)")
        frames, regions = features_from_pb(request.features, "uploaded video") if query == "features" else (None, None)
        answer = self.service.search_captions(request.video_id, frames, regions, request.top_k, request.candidate_depth,
                                              request.evidence)
        metrics.observe_stages(answer.timings)
        return answer_to_pb(answer)

    @rpc
    def ScoreVideos(self, request, context):
        answer = self.service.score_videos(request.text, list(request.video_ids), request.evidence)
        metrics.observe_stages(answer.timings)
        return answer_to_pb(answer)

    @rpc
    def IndexVideos(self, request_iterator, context):
        written, last, ids = 0, None, StreamIds("video")
        for batch in request_iterator:
            videos = []
            for k, item in enumerate(batch.videos):
                frames, regions = features_from_pb(item.features, f"video {item.id!r}", f"videos[{k}].features")
                videos.append(VideoInput(item.id, frames, regions, item.source, item.duration))
            if videos:
                ids.add([v.id for v in videos])
                last = ids.write(videos[0].id, lambda: self.service.index_videos(videos))
                written += last.count
                ids.committed = written
        if last is None:
            raise InvalidArgument("the stream held no videos")
        metrics.set_corpus(VIDEOS, last.total)
        return pb.IndexResponse(indexed=written, total=last.total, model=pb.ModelVersion(name=last.model,
                                                                                         version=last.version))

    @rpc
    def IndexVideoFiles(self, request_iterator, context):
        from common.frame_backbone import SAMPLING

        from serving.ingest.raw import FileError

        written, total, errors, ids = 0, None, [], StreamIds("video")
        pending, pending_bytes = [], 0
        limit = self.service.settings.max_file_bytes
        for file in files_from_chunks(request_iterator, limit):
            ids.add([file.id])
            if isinstance(file, OversizedFile):
                errors.append(FileError(file.id, file.name, str(file.error)))
                continue
            pending.append(file)
            pending_bytes += len(file.data)
            if len(pending) >= FILES_PER_BATCH or pending_bytes >= limit:
                count, total, failed = ids.write(pending[0].id, lambda: self.raw.index(pending))
                written, errors, pending, pending_bytes = written + count, errors + failed, [], 0
                ids.committed = written
        if pending:
            count, total, failed = ids.write(pending[0].id, lambda: self.raw.index(pending))
            written, errors = written + count, errors + failed
        version = self.service.active()
        if total is None:
            total = self.service.index.count(version.collections[VIDEOS])
        metrics.set_corpus(VIDEOS, total)
        return pb.IndexFilesResponse(
            indexed=written, total=total, model=pb.ModelVersion(name=version.key[0], version=version.key[1]),
            errors=[pb.FileError(id=e.id, filename=e.name, message=e.message) for e in errors], sampling=SAMPLING,
            frame_backbone_version=self.raw.backbone(version).info.version)

    @rpc
    def SearchCaptionsByClip(self, request_iterator, context):
        first, data, size = None, [], 0
        limit = self.service.settings.max_file_bytes
        for chunk in request_iterator:
            first = first or chunk
            if chunk.id and chunk.id != first.id:
                raise InvalidArgument("SearchCaptionsByClip takes one clip: every chunk carries the same id", field="id")
            size += len(chunk.data)
            if size > limit:
                raise _over(size, limit, first.filename or first.id or "uploaded clip")
            data.append(chunk.data)
        if first is None:
            raise InvalidArgument("send the clip's bytes in at least one chunk")
        frames, regions, times = self.raw.clip(b"".join(data), first.filename or first.id or "uploaded clip")
        answer = self.service.search_captions("", frames, regions, first.top_k, first.candidate_depth,
                                              first.evidence, times)
        metrics.observe_stages(answer.timings)
        return answer_to_pb(answer)

    @rpc
    def IndexCaptions(self, request, context):
        result = self.service.index_captions([CaptionInput(c.id, c.text, c.video_id) for c in request.captions])
        metrics.set_corpus(CAPTIONS, result.total)
        return pb.IndexResponse(indexed=result.count, total=result.total,
                                model=pb.ModelVersion(name=result.model, version=result.version))

    @rpc
    def Delete(self, request, context):
        kinds = {pb.ITEM_KIND_VIDEO: VIDEOS, pb.ITEM_KIND_CAPTION: CAPTIONS}
        if request.kind not in kinds:
            raise InvalidArgument("kind must be ITEM_KIND_VIDEO or ITEM_KIND_CAPTION")
        result = self.service.delete(kinds[request.kind], list(request.ids))
        metrics.set_corpus(kinds[request.kind], result.total)
        return pb.DeleteResponse(deleted=result.count, total=result.total)

    @rpc
    def Describe(self, request, context):
        info = self.service.describe()
        metrics.set_corpus(VIDEOS, info["videos"])
        metrics.set_corpus(CAPTIONS, info["captions"])
        return pb.DescribeResponse(
            model=pb.ModelVersion(name=info["name"], version=info["version"]), levels=info["levels"],
            videos=info["videos"], captions=info["captions"], index_view=info["index_view"],
            store_dtype=info["store_dtype"], default_top_k=info["default_top_k"],
            default_candidate_depth=info["default_candidate_depth"], frame_dim=info["frame_dim"],
            region_dim=info["region_dim"], max_frames=info["max_frames"])
