"""Raw video files into a served model version: decode (PyAV) -> ``frame_backbone`` on Triton -> the version's
video tower -> the writer (torch-free). Used by the gateway's file calls and by bulk ingest.

A file that cannot be decoded, or is over a decoding limit (``max_decoded_frames``, ``max_frame_pixels``), is
reported with its name and skipped; the rest of the batch is indexed. Decoding and the backbone run before anything
is written, so a bad file leaves nothing behind.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from common.errors import ConfigError
from common.frame_backbone import check_version, read_backbone
from serving.gateway.errors import FailedPrecondition, LimitExceeded
from serving.ingest.backbone import FrameBackbone
from serving.ingest.decode import DecodedVideo, DecodeLimits, VideoFileError, decode_video

log = logging.getLogger("strata.ingest")


@dataclass(frozen=True)
class VideoFile:
    id: str
    name: str            # the file's name, for errors and the stored source
    data: bytes


@dataclass(frozen=True)
class FileError:
    id: str
    name: str
    message: str


class RawVideos:
    """Raw video for a :class:`serving.gateway.service.RetrievalService`'s active version."""

    def __init__(self, service):
        self.service = service
        self.limits = DecodeLimits.from_settings(service.settings)
        self._backbones: dict[tuple[str, int], FrameBackbone] = {}

    def backbone(self, version) -> FrameBackbone:
        if version.key not in self._backbones:
            model = version.model
            try:
                info = read_backbone(model.repo)
                check_version(model.repo, model.base, model.version, info)   # exported after strata up?
            except ConfigError as err:
                raise FailedPrecondition(str(err)) from None
            self._backbones[version.key] = FrameBackbone.on_triton(model.towers.client, info,
                                                                   self.service.settings.request_timeout_s)
        return self._backbones[version.key]

    def decode(self, version, files: Sequence[VideoFile]) -> tuple[list[tuple[VideoFile, DecodedVideo]], list[FileError]]:
        backbone, decoded, errors = self.backbone(version), [], []
        for f in files:
            try:
                decoded.append((f, decode_video(f.data, version.model.max_frames, backbone.info.image, f.name,
                                                self.limits)))
            except (VideoFileError, LimitExceeded) as err:
                log.info("skipped %s: %s", f.name, err)
                errors.append(FileError(f.id, f.name, str(err)))
        return decoded, errors

    def inputs(self, files: Sequence[VideoFile]) -> tuple[list, list[FileError]]:
        """``VideoInput`` for every decodable file, and an error for each other one."""
        from serving.gateway.types import VideoInput

        version = self.service.active()
        decoded, errors = self.decode(version, files)
        features = self.backbone(version).features([d for _, d in decoded]) if decoded else []
        videos = [VideoInput(f.id, frames, regions, f.name, d.duration, d.times)
                  for (f, d), (frames, regions) in zip(decoded, features)]
        return videos, errors

    def index(self, files: Sequence[VideoFile]) -> tuple[int, int, list[FileError]]:
        """(written, videos now indexed, errors)."""
        videos, errors = self.inputs(files)
        if not videos:
            version = self.service.active()
            return 0, self.service.index.count(version.collections["videos"]), errors
        result = self.service.index_videos(videos)
        return result.count, result.total, errors

    def clip(self, data: bytes, name: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """An uploaded clip's features and its frames' times (None: unknown) (a bad clip is the caller's
        INVALID_ARGUMENT: VideoFileError is a DataError; one over a decoding limit is refused naming it)."""
        version = self.service.active()
        decoded = decode_video(data, version.model.max_frames, self.backbone(version).info.image, name, self.limits)
        frames, regions = self.backbone(version).features([decoded])[0]
        return frames, regions, decoded.times
