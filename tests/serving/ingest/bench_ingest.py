"""Ingest figures in one run (not a test): ``python -m tests.serving.ingest.bench_ingest [VIDEOS] [FILES]``.

Starts a private local stack (HGR fast preset, random weights, 256-d frames; a tiny user frame backbone giving
256-d features, since no trained model reads ResNet-152's 2048-d ones), then indexes: a SynthVTR corpus of
pre-extracted features, and generated raw video files, each with 0 (one process), 1 and 2 Ray workers, deleting
between runs; prints videos/s, the share of time per stage, and ResNet-152's cost per frame in ONNX Runtime.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main(videos: int = 600, files: int = 48) -> None:
    home = Path(tempfile.mkdtemp(prefix="strata-bench-"))
    os.environ["STRATA_HOME"] = str(home)
    from clients.cli import main as cli
    from common.settings import Settings
    from deploy.stack import down, up
    from serving.index.milvus_index import MilvusIndex
    from serving.index.milvus_server import MilvusLiteServer
    from serving.index.naming import collection_name
    from serving.ingest.bulk import plan_dataset, plan_files, run_bulk
    from tests.serving.ingest.tiny_backbone import write_tiny_backbone
    from tests.serving.ingest.videos import write_video
    from training.synth.config import SynthConfig
    from training.synth.generator import generate

    quiet = lambda *_: None  # noqa: E731
    settings = Settings(gateway_port=0, gateway_metrics_port=0, http_port=0, milvus_port=0, triton_http_port=0,
                        triton_grpc_port=0, triton_metrics_port=0)
    generate(SynthConfig(videos=int(videos / 0.6) + 1, captions_per_video=1, seed=0, frames=(8, 40)), home / "synth",
             progress=False)
    (home / "files").mkdir(exist_ok=True)
    for i in range(files):
        write_video(home / "files" / f"clip{i:03d}.mp4", "mp4", "libx264", 30, 25, "yuv420p")
    cli(["export", "--model", "hgr", "--preset", "fast", "--random-init", "--repo", str(settings.repository)])
    cli(["export", "--frame-backbone", str(write_tiny_backbone(home / "tiny.onnx", frame_dim=256)),
         "--repo", str(settings.repository)])
    rows = []
    try:
        state = up(settings, log=quiet)
        index = MilvusIndex(MilvusLiteServer().uri())
        feature_units = plan_dataset(str(home / "synth"), ["trn"], 64, False)
        feature_units = [u for u in feature_units][: max(1, videos // 64)]
        file_units = plan_files([str(home / "files")], 8)
        for label, units in (("features (hgr fast)", feature_units), ("raw files (decode+backbone+towers+stores)",
                                                                      file_units)):
            ids = [i for u in units for i in u.ids]
            for workers in (0, 1, 2):
                index.delete(collection_name(state.model, state.version, "videos"), ids)
                started = time.perf_counter()
                (progress,) = run_bulk(units, settings, workers, log=quiet)
                seconds = time.perf_counter() - started
                total = sum(progress.stages.values())
                shares = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in sorted(progress.stages.items()))
                rows.append((label, workers, progress.done, seconds, progress.done / seconds, shares))
        index.close()
    finally:
        down(log=quiet)
    print(f"{'input':42s} {'workers':>7s} {'videos':>6s} {'seconds':>8s} {'videos/s':>9s}  where the time goes "
          f"(summed over workers)")
    for label, workers, done, seconds, rate, shares in rows:
        print(f"{label:42s} {workers:>7d} {done:>6d} {seconds:>8.1f} {rate:>9.1f}  {shares}")
    base = {label: rate for label, workers, _, _, rate, _ in rows if workers == 0}
    for label, workers, _, _, rate, _ in rows:
        if workers:
            print(f"  {label}, {workers} workers / in-process: {rate / base[label]:.2f}x")
    print(resnet_cost())


def resnet_cost() -> str:
    """ResNet-152 (random weights) in ONNX Runtime on this machine: seconds per 224 x 224 frame."""
    import tempfile as _t

    from export.backbone import export_frame_backbone
    from export.runner import OnnxPart

    repo = Path(_t.mkdtemp(prefix="strata-resnet-"))
    export_frame_backbone(repo, "resnet152", 1, log=lambda *_: None)
    part = OnnxPart(repo / "frame_backbone" / "1" / "model.onnx")
    images = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    part.run({"images": images[:1]})
    started = time.perf_counter()
    part.run({"images": images})
    per_frame = (time.perf_counter() - started) / 2
    return (f"ResNet-152 in ONNX Runtime: {per_frame:.2f} s per frame; at 20 frames a video that is "
            f"{1 / (20 * per_frame):.3f} videos/s per process before decoding, towers and stores")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
