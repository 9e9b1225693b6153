"""The ``strata.v1.Strata`` servicer: convert the request, call the core, convert the answer (nothing else).

Errors map to status codes in one decorator: a :class:`~serving.gateway.errors.GatewayError` carries its code,
a :class:`~common.errors.DataError` / ``ConfigError`` is the caller's INVALID_ARGUMENT, an unreachable Triton or
Milvus is UNAVAILABLE; anything else is INTERNAL and logged. A reply names a failed backend but never its address. Every call is counted and timed for Prometheus.
"""
from __future__ import annotations

import functools
import logging
import time

import grpc

from common.errors import ConfigError, DataError
from common.serving_tables import CAPTIONS, VIDEOS
from serving.gateway import metrics
from serving.gateway.convert import answer_to_pb, features_from_pb
from serving.gateway.errors import GatewayError, InvalidArgument
from serving.gateway.service import RetrievalService
from serving.gateway.types import CaptionInput, VideoInput
from serving.index.milvus_index import IndexUnavailable
from serving.proto.strata.v1 import strata_pb2 as pb
from serving.proto.strata.v1 import strata_pb2_grpc as pb_grpc
from serving.triton.client import TritonRequestError

log = logging.getLogger("strata.gateway")


def _status(err: Exception) -> grpc.StatusCode:
    if isinstance(err, GatewayError):
        return getattr(grpc.StatusCode, err.code)
    if isinstance(err, (DataError, ConfigError)):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(err, (IndexUnavailable, TritonRequestError)):
        return grpc.StatusCode.UNAVAILABLE
    return grpc.StatusCode.INTERNAL


def _reply(err: Exception, code: grpc.StatusCode) -> str:
    """What the caller is told: the message of an error about its request; for a backend that failed, or a bug,
    only which part failed, never an address or the backend's own words (the log has those)."""
    if isinstance(err, IndexUnavailable):
        return "Milvus did not answer; retry later"
    if isinstance(err, TritonRequestError):
        return "Triton failed the request; retry later"
    if code == grpc.StatusCode.INTERNAL:
        return f"internal error ({type(err).__name__}); the gateway's log has the details"
    return str(err) or type(err).__name__


def rpc(method):
    """Run a servicer method; answer errors with their status code and count every call."""
    call = method.__name__

    @functools.wraps(method)
    def wrapper(self, request, context):
        start, code = time.perf_counter(), grpc.StatusCode.OK
        try:
            return method(self, request, context)
        except Exception as err:  # noqa: BLE001 - every error becomes a status, the server keeps serving
            code = _status(err)
            if code == grpc.StatusCode.INTERNAL:
                log.exception("%s failed", call)
            else:
                log.info("%s: %s: %s", call, code.name, err)
            context.abort(code, _reply(err, code))
        finally:
            metrics.observe_call(call, code.name, time.perf_counter() - start)

    return wrapper


FILES_PER_BATCH = 8   # raw files decoded, embedded and committed together


def files_from_chunks(chunks):
    """Whole files from a chunk stream: consecutive chunks with the same id (an empty id continues the file)."""
    from serving.ingest.raw import VideoFile

    current, parts = None, []
    for chunk in chunks:
        if chunk.id and (current is None or chunk.id != current.id):
            if current is not None:
                yield VideoFile(current.id, current.filename or current.id, b"".join(parts))
            current, parts = chunk, []
        elif current is None:
            raise InvalidArgument("the first chunk of a file must carry its id")
        parts.append(chunk.data)
    if current is not None:
        yield VideoFile(current.id, current.filename or current.id, b"".join(parts))


class StrataServicer(pb_grpc.StrataServicer):
    def __init__(self, service: RetrievalService):
        from serving.ingest.raw import RawVideos

        self.service = service
        self.raw = RawVideos(service)

    @rpc
    def SearchVideos(self, request, context):
        answer = self.service.search_videos(request.text, request.top_k, request.candidate_depth)
        metrics.observe_stages(answer.timings)
        return answer_to_pb(answer)

    @rpc
    def SearchCaptions(self, request, context):
        query = request.WhichOneof("query")
        if query is None:
            raise InvalidArgument("give video_id (an indexed video) or features (an uploaded video)")
        frames, regions = features_from_pb(request.features, "uploaded video") if query == "features" else (None, None)
        answer = self.service.search_captions(request.video_id, frames, regions, request.top_k, request.candidate_depth)
        metrics.observe_stages(answer.timings)
        return answer_to_pb(answer)

    @rpc
    def ScoreVideos(self, request, context):
        answer = self.service.score_videos(request.text, list(request.video_ids))
        metrics.observe_stages(answer.timings)
        return answer_to_pb(answer)

    @rpc
    def IndexVideos(self, request_iterator, context):
        written, last = 0, None
        for batch in request_iterator:
            videos = []
            for item in batch.videos:
                frames, regions = features_from_pb(item.features, f"video {item.id!r}")
                videos.append(VideoInput(item.id, frames, regions, item.source, item.duration))
            if videos:
                last = self.service.index_videos(videos)
                written += last.count
        if last is None:
            raise InvalidArgument("the stream held no videos")
        metrics.set_corpus(VIDEOS, last.total)
        return pb.IndexResponse(indexed=written, total=last.total, model=pb.ModelVersion(name=last.model,
                                                                                         version=last.version))

    @rpc
    def IndexVideoFiles(self, request_iterator, context):
        from common.frame_backbone import SAMPLING

        written, total, errors = 0, None, []
        pending = []
        for file in files_from_chunks(request_iterator):
            pending.append(file)
            if len(pending) >= FILES_PER_BATCH:
                count, total, failed = self.raw.index(pending)
                written, errors, pending = written + count, errors + failed, []
        if pending:
            count, total, failed = self.raw.index(pending)
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
        first, data = None, []
        for chunk in request_iterator:
            first = first or chunk
            if chunk.id and chunk.id != first.id:
                raise InvalidArgument("SearchCaptionsByClip takes one clip: every chunk carries the same id")
            data.append(chunk.data)
        if first is None:
            raise InvalidArgument("send the clip's bytes in at least one chunk")
        frames, regions = self.raw.clip(b"".join(data), first.filename or first.id or "uploaded clip")
        answer = self.service.search_captions("", frames, regions, first.top_k, first.candidate_depth)
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
