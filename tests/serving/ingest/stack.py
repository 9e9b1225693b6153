"""A private local stack for the raw-video tests (Milvus Lite's server, Triton, the gateway on free ports, under a
home of its own), and the offline run of the same pipeline that its answers are checked against."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

ATOL = 2e-3   # gateway (float16 tensors) vs offline scores of the same videos
PORTS = dict(gateway_port=0, gateway_metrics_port=0, http_port=0, milvus_port=0, triton_http_port=0,
             triton_grpc_port=0, triton_metrics_port=0)


@contextmanager
def private_stack(home: Path, exports: Sequence[Sequence[str]], model: str = "") -> Iterator[tuple]:
    """``strata export`` with each argument list into the home's repository, then ``strata up`` (serving ``model``
    where the repository holds several); yields (settings, stack state), and brings it down however it ends."""
    from clients.cli import main
    from common.settings import Settings
    from deploy.stack import down, up

    with pytest.MonkeyPatch.context() as patch:   # restored however the set-up ends
        patch.setenv("STRATA_HOME", str(home))
        settings = Settings(**PORTS, model=model)
        for args in exports:
            assert main(["export", *args, "--repo", str(settings.repository)]) == 0, args
        try:
            yield settings, up(settings, log=lambda *_: None)
        finally:
            down(log=lambda *_: None)


def offline_videos(settings, base: str, version: int, paths: Sequence[Path], grid_repo: Path | None = None):
    """The offline run of the pipeline: decode -> backbone (ONNX Runtime) -> video tower (ONNX Runtime), as one
    batch. Returns (reference, tower outputs, [(frames, regions)] per file); ``grid_repo``: take the backbone
    of that repository instead of the served one."""
    from serving.ingest.backbone import FrameBackbone
    from serving.ingest.decode import decode_video
    from tests.serving.gateway.offline import Offline

    reference = Offline(settings.repository, base, version)
    backbone = FrameBackbone.offline(grid_repo or settings.repository)
    decoded = [decode_video(p, reference.max_frames, backbone.info.image) for p in paths]
    features = backbone.features(decoded)
    reads_regions = "region_feats" in reference.runner.layout.video.input_names
    regions = [r for _, r in features] if reads_regions else None
    return reference, reference.videos([f for f, _ in features], regions), features
