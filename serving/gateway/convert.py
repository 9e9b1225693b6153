"""Paired converters between the protobuf messages of ``strata.v1`` and the core's types (torch-free).

The client library uses the same functions, so a tensor is encoded one way only.
"""
from __future__ import annotations

import math

import numpy as np

from serving.gateway.errors import InvalidArgument
from serving.proto.strata.v1 import strata_pb2 as pb

WIRE_DTYPE = np.dtype("<f4")


def tensor_to_pb(array: np.ndarray) -> pb.Tensor:
    array = np.ascontiguousarray(array, dtype=WIRE_DTYPE)
    return pb.Tensor(shape=list(array.shape), data=array.tobytes())


def tensor_from_pb(tensor: pb.Tensor, what: str, field: str = "") -> np.ndarray:
    """The array a ``Tensor`` holds; a shape that does not match its bytes is refused (the product is taken in
    Python's integers, so no shape overflows)."""
    shape = tuple(int(d) for d in tensor.shape)
    if any(d < 0 for d in shape):
        raise InvalidArgument(f"{what}: negative dimension in shape {list(shape)}", field=field)
    expected = math.prod(shape) * WIRE_DTYPE.itemsize if shape else 0
    if not shape or len(tensor.data) != expected:
        raise InvalidArgument(f"{what}: shape {list(shape)} needs {expected:,} bytes of little-endian float32, "
                              f"got {len(tensor.data):,}", field=field)
    return np.frombuffer(tensor.data, WIRE_DTYPE).reshape(shape)


def features_to_pb(frames: np.ndarray, regions: np.ndarray | None = None) -> pb.VideoFeatures:
    message = pb.VideoFeatures(frames=tensor_to_pb(frames))
    if regions is not None:
        message.regions.CopyFrom(tensor_to_pb(regions))
    return message


def features_from_pb(features: pb.VideoFeatures, what: str, field: str = "features"
                     ) -> tuple[np.ndarray, np.ndarray | None]:
    """(frames, regions or None); ``field`` is the message's path in the request, for errors."""
    if not features.HasField("frames"):
        raise InvalidArgument(f"{what}: no frame features", field=f"{field}.frames")
    frames = tensor_from_pb(features.frames, f"{what} frames", f"{field}.frames")
    regions = (tensor_from_pb(features.regions, f"{what} regions", f"{field}.regions")
               if features.HasField("regions") else None)
    return frames, regions


def answer_to_pb(answer) -> pb.SearchResponse:
    """A core ``Answer`` as the response message."""
    return pb.SearchResponse(
        hits=[pb.Hit(id=h.id, score=h.score, source=h.source, duration=h.duration, text=h.text, video_id=h.video_id,
                     levels=[pb.LevelScore(level=l.level, score=l.score, empty=l.empty) for l in h.levels],
                     evidence=[evidence_to_pb(e) for e in h.evidence])
              for h in answer.hits],
        model=pb.ModelVersion(name=answer.model, version=answer.version),
        candidates=answer.candidates,
        timings=[pb.StageTiming(stage=name, ms=ms) for name, ms in answer.timings.items()],
    )


def evidence_to_pb(level) -> pb.LevelEvidence:
    return pb.LevelEvidence(level=level.level, temporal=level.temporal, nodes=[
        pb.NodeEvidence(words=node.words, frames=[
            pb.FrameWeight(frame=f.frame, weight=f.weight, time_s=-1.0 if f.time_s is None else f.time_s)
            for f in node.frames])
        for node in level.nodes])
