"""The frame backbone: one more model of the Triton repository, ``frame_backbone/<N>/`` (torch-free side).

Its graph maps preprocessed images ``images`` [batch, 3, S, S] to ``frame_feat`` [batch, frame_dim] and, where it
has them, ``region_feat`` [batch, regions, region_dim] (grid cells of the built-in ResNet-152, or a user graph's
second output). Each version's ``manifest.json`` records where it came from, its image preprocessing, the frame
sampling rule, the feature sizes and the region count and source; ``strata export --frame-backbone`` writes it
(``export.backbone``); :mod:`common.frame_backbone` reads it, and refuses a backbone whose sizes a model
version does not take (:func:`common.frame_backbone.check_compatible`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from common.errors import DataError
from common.frame_backbone import FRAME_BACKBONE, FRAME_FEAT, IMAGES, REGION_FEAT, SAMPLING, BackboneInfo, read_backbone
from serving.ingest.decode import DecodedVideo


class FrameBackbone:
    """Decoded videos -> (frames [T, frame_dim], regions [T, R, region_dim] or None) through a runner with
    ``infer(inputs) -> outputs``: the Triton model (:class:`serving.triton.client.TritonModel`) or ONNX Runtime."""

    def __init__(self, info: BackboneInfo, runner, chunk: int = 32):
        self.info, self.runner, self.chunk = info, runner, chunk

    @classmethod
    def on_triton(cls, client, info: BackboneInfo, timeout_s: float | None = None) -> "FrameBackbone":
        from serving.triton.client import TritonModel

        return cls(info, TritonModel(client, FRAME_BACKBONE, info.layout, info.version, timeout_s=timeout_s))

    @classmethod
    def offline(cls, repo: str | Path, version: int | None = None, threads: int = 0) -> "FrameBackbone":
        """The same graph in this process with ONNX Runtime (the reference the gateway is checked against)."""
        from common.repository import ONNX_FILE
        from export.runner import OnnxPart

        info = read_backbone(repo, version)
        part = OnnxPart(Path(repo) / FRAME_BACKBONE / str(info.version) / ONNX_FILE, threads)
        return cls(info, _OnnxInfer(part))

    def features(self, videos: list[DecodedVideo]) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Every video's frames through the backbone, batched across videos in chunks of ``chunk`` images."""
        images = np.concatenate([v.images for v in videos]) if videos else np.zeros((0, 3, 1, 1), np.float32)
        size = self.info.image.size
        if images.shape[1:] != (3, size, size):
            raise DataError(f"{FRAME_BACKBONE} version {self.info.version} takes [3, {size}, {size}] images, "
                            f"got {list(images.shape[1:])}")
        outputs = [self.runner.infer({IMAGES: images[start:start + self.chunk]})
                   for start in range(0, len(images), self.chunk)]
        frames = np.concatenate([o[FRAME_FEAT] for o in outputs]).astype(np.float32)
        regions = np.concatenate([o[REGION_FEAT] for o in outputs]).astype(np.float32) if self.info.regions else None
        bounds = np.cumsum([len(v.images) for v in videos])[:-1]
        return [(f, None if regions is None else r) for f, r in zip(
            np.split(frames, bounds), np.split(regions, bounds) if regions is not None else [None] * len(videos))]


class _OnnxInfer:
    def __init__(self, part):
        self.part = part

    def infer(self, inputs):
        return self.part.run(inputs)


def manifest_summary(info: BackboneInfo) -> dict:
    return {"version": info.version, "source": info.manifest["source"], "frame_dim": info.frame_dim,
            "regions": info.manifest["regions"], "sampling": info.manifest.get("sampling", SAMPLING)}
