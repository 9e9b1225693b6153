"""Strata's Python client: the ``strata.v1`` gRPC API with deadlines and retries (needs grpc and NumPy, never torch).

    from clients.client import StrataClient
    with StrataClient("127.0.0.1:50051") as strata:
        answer = strata.search_videos("a man is slicing bread", top_k=5)
        for hit in answer.hits:
            print(hit.id, hit.score, {l.level: l.score for l in hit.levels})

Every call carries a deadline (``timeout_s``), which the gateway keeps for every backend call it makes. Calls that
change nothing, and the upserts (indexing the same id twice leaves it once), are retried by gRPC on UNAVAILABLE
and RESOURCE_EXHAUSTED, at most 4 attempts, backed off, throttled while most calls fail
(:data:`common.connect.GATEWAY_RETRY_POLICY`); a delete and the streaming calls are not retried.
Errors arrive as :class:`StrataCallError` with the server's status code, message and google.rpc details: the
request field at fault, the reason (``LIMIT_EXCEEDED`` with the setting in ``limit``, ``MALFORMED_REQUEST``,
``BACKEND_UNAVAILABLE``, ``GATEWAY_OVERLOADED``, ...), when to retry, and for a write that failed part-way how many
of its items were committed (``committed``; the rest, from ``failed_id`` on, were not).

Credentials come from the settings (``settings``, default: those in force): ``gateway_tls_ca`` for TLS,
``gateway_client_cert`` / ``gateway_client_key`` for mTLS, and the bearer token from ``gateway_token_file`` or
``$STRATA_GATEWAY_TOKEN`` (:func:`common.connect.gateway_credentials`).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from common.connect import gateway_channel
from common.errors import StrataError
from common.settings import Settings
from serving.gateway.convert import features_to_pb
from serving.proto.strata.v1 import strata_pb2 as pb
from serving.proto.strata.v1 import strata_pb2_grpc as pb_grpc


class StrataCallError(StrataError):
    """The gateway answered with an error status (``code``), or could not be reached.

    From the status's google.rpc details: ``violations`` ((field, description) of ``BadRequest``), ``reason`` and
    ``metadata`` (``ErrorInfo``; a size cap names its setting in ``limit``), ``retry_after_s`` (``RetryInfo``)."""

    def __init__(self, call: str, code: grpc.StatusCode, details: str, url: str, status=None):
        self.call, self.code, self.details = call, code, details
        self.violations: list[tuple[str, str]] = []
        self.reason, self.metadata, self.retry_after_s = "", {}, None
        for detail in status.details if status is not None else ():
            self._read(detail)
        hint = f" (is the gateway running at {url}? `strata up`, or pass --url)" if code in (
            grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) and not self.reason else ""
        super().__init__(f"{call}: {code.name}: {details}{hint}")

    @property
    def limit(self) -> str:
        """The setting of the size cap the request went over ("" for another error)."""
        return self.metadata.get("limit", "")

    @property
    def committed(self) -> int | None:
        """For a write that failed: how many of its items, in the order sent, were committed (None: not said)."""
        return int(self.metadata["committed"]) if "committed" in self.metadata else None

    @property
    def failed_id(self) -> str:
        """For a write that failed: the first item not committed ("" when not said)."""
        return self.metadata.get("failed_id", "")

    def _read(self, detail) -> None:
        from google.rpc import error_details_pb2

        for kind in (error_details_pb2.BadRequest, error_details_pb2.ErrorInfo, error_details_pb2.RetryInfo):
            if detail.Is(kind.DESCRIPTOR):
                message = kind()
                detail.Unpack(message)
                if kind is error_details_pb2.BadRequest:
                    self.violations += [(v.field, v.description) for v in message.field_violations]
                elif kind is error_details_pb2.ErrorInfo:
                    self.reason, self.metadata = message.reason, dict(message.metadata)
                else:
                    self.retry_after_s = message.retry_delay.ToNanoseconds() / 1e9


@dataclass(frozen=True)
class Video:
    """A video to index: its id and pre-extracted features ([frames, dim], and [frames, regions, dim] if needed)."""

    id: str
    frames: np.ndarray
    regions: np.ndarray | None = None
    source: str = ""
    duration: float = -1.0


def _file_chunks(video_id: str, path: str, chunk_bytes: int) -> Iterator[pb.VideoFileChunk]:
    """A file as chunks: the first carries the id and file name (an empty file is one empty chunk)."""
    from pathlib import Path

    with open(path, "rb") as handle:
        first = True
        while True:
            data = handle.read(chunk_bytes)
            if first or data:
                yield pb.VideoFileChunk(id=video_id, filename=Path(path).name, data=data)
            if not data:
                return
            first = False


class StrataClient:
    def __init__(self, url: str, timeout_s: float = 30.0, settings: Settings | None = None):
        from common.settings import load_settings

        settings = settings if settings is not None else load_settings()
        self.url, self.timeout_s, self.max_message_bytes = url, timeout_s, settings.max_message_bytes
        self.channel = gateway_channel(url, settings=settings)
        self.stub = pb_grpc.StrataStub(self.channel)
        self.health_stub = health_pb2_grpc.HealthStub(self.channel)

    def _call(self, name: str, request, timeout_s: float | None = None):
        try:
            return getattr(self.stub, name)(request, timeout=timeout_s or self.timeout_s)
        except grpc.RpcError as err:
            from grpc_status import rpc_status

            raise StrataCallError(name, err.code(), err.details() or "", self.url, rpc_status.from_call(err)) from None

    # -- queries -----------------------------------------------------------------------------------------------
    def search_videos(self, text: str, top_k: int = 0, candidate_depth: int = 0,
                      evidence: bool = False) -> pb.SearchResponse:
        """Videos for a sentence; 0 takes the server's default top-k and depth. With ``evidence``, each hit's
        ``evidence`` says, per level, which frames each verb and noun phrase of the sentence matched."""
        return self._call("SearchVideos", pb.SearchVideosRequest(text=text, top_k=top_k, candidate_depth=candidate_depth,
                                                                 evidence=evidence))

    def search_captions(self, video_id: str = "", frames: np.ndarray | None = None, regions: np.ndarray | None = None,
                        top_k: int = 0, candidate_depth: int = 0, evidence: bool = False) -> pb.SearchResponse:
        """Captions for an indexed video (``video_id``) or for uploaded features (``frames``, ``regions``);
        ``evidence`` as in :meth:`search_videos`, read from each caption's side."""
        request = pb.SearchCaptionsRequest(top_k=top_k, candidate_depth=candidate_depth, evidence=evidence)
        if (video_id == "") == (frames is None):
            raise ValueError("give exactly one of video_id or frames")
        if video_id:
            request.video_id = video_id
        else:
            request.features.CopyFrom(features_to_pb(frames, regions))
        return self._call("SearchCaptions", request)

    def score_videos(self, text: str, video_ids: Sequence[str], evidence: bool = False) -> pb.SearchResponse:
        return self._call("ScoreVideos", pb.ScoreVideosRequest(text=text, video_ids=list(video_ids), evidence=evidence))

    def describe(self) -> pb.DescribeResponse:
        return self._call("Describe", pb.DescribeRequest())

    def health(self, service: str = "") -> str:
        """``SERVING`` or ``NOT_SERVING`` (``UNREACHABLE`` when the gateway does not answer)."""
        try:
            status = self.health_stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=self.timeout_s).status
        except grpc.RpcError:
            return "UNREACHABLE"
        return health_pb2.HealthCheckResponse.ServingStatus.Name(status)

    # -- ingest ------------------------------------------------------------------------------------------------
    def index_videos(self, videos: Iterable[Video], batch: int = 64, timeout_s: float | None = None) -> pb.IndexResponse:
        """Stream videos in messages of ``batch`` videos, fewer where they would exceed ``max_message_bytes`` (one
        call; an upsert by id, so a rerun after a failure is safe)."""
        def requests() -> Iterator[pb.IndexVideosRequest]:
            chunk: list[pb.VideoItem] = []
            size = 0
            for v in videos:
                item = pb.VideoItem(id=v.id, features=features_to_pb(v.frames, v.regions), source=v.source,
                                    duration=v.duration)
                item_bytes = item.ByteSize() + 16   # with its field tag and length
                if chunk and (len(chunk) == batch or size + item_bytes > self.max_message_bytes):
                    yield pb.IndexVideosRequest(videos=chunk)
                    chunk, size = [], 0
                chunk.append(item)
                size += item_bytes
            if chunk:
                yield pb.IndexVideosRequest(videos=chunk)

        return self._call("IndexVideos", requests(), timeout_s or max(self.timeout_s, 600.0))

    def index_video_files(self, files: Iterable[tuple[str, str]], chunk_bytes: int = 1 << 20,
                          timeout_s: float | None = None) -> pb.IndexFilesResponse:
        """Raw video files as (id, path), streamed in chunks; the gateway decodes them. Files it cannot decode come
        back in ``errors`` (the others are indexed)."""
        def requests() -> Iterator[pb.VideoFileChunk]:
            for video_id, path in files:
                yield from _file_chunks(video_id, path, chunk_bytes)

        return self._call("IndexVideoFiles", requests(), timeout_s or max(self.timeout_s, 600.0))

    def search_captions_by_clip(self, path: str, top_k: int = 0, candidate_depth: int = 0,
                                chunk_bytes: int = 1 << 20, evidence: bool = False) -> pb.SearchResponse:
        """Captions for a raw video clip, uploaded in chunks (``evidence``: with the clip's frame times)."""
        def requests() -> Iterator[pb.VideoFileChunk]:
            for k, chunk in enumerate(_file_chunks("clip", path, chunk_bytes)):
                if k == 0:
                    chunk.top_k, chunk.candidate_depth, chunk.evidence = top_k, candidate_depth, evidence
                yield chunk

        return self._call("SearchCaptionsByClip", requests())

    def index_captions(self, captions: Iterable[tuple[str, str] | tuple[str, str, str]], batch: int = 1000,
                       timeout_s: float | None = None) -> pb.IndexResponse:
        """Captions as (id, text) or (id, text, video_id), ``batch`` per call (each an upsert, so a rerun after a
        failure is safe); the answer counts them all."""
        items = [pb.CaptionItem(id=c[0], text=c[1], video_id=c[2] if len(c) > 2 else "") for c in captions]
        answer = pb.IndexResponse()
        for start in range(0, max(len(items), 1), batch):
            part = self._call("IndexCaptions", pb.IndexCaptionsRequest(captions=items[start:start + batch]),
                              timeout_s or max(self.timeout_s, 600.0))
            answer.indexed, answer.total = answer.indexed + part.indexed, part.total
            answer.model.CopyFrom(part.model)
        return answer

    def delete(self, kind: str, ids: Sequence[str]) -> pb.DeleteResponse:
        """``kind``: ``videos`` or ``captions``."""
        kinds = {"videos": pb.ITEM_KIND_VIDEO, "captions": pb.ITEM_KIND_CAPTION}
        if kind not in kinds:
            raise ValueError(f"kind must be videos or captions, got {kind!r}")
        return self._call("Delete", pb.DeleteRequest(kind=kinds[kind], ids=list(ids)))

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "StrataClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
