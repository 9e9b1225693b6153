"""The gateway tests' model and corpus: HGR (fast preset, random weights) and random frame features."""
from __future__ import annotations

import numpy as np

BASE = "hgr_fast"
FRAME_DIM = 256
VIDEOS = 120
FREE_PORTS = dict(gateway_port=0, gateway_metrics_port=0, http_port=0, milvus_port=0, triton_http_port=0,
                  triton_grpc_port=0, triton_metrics_port=0)
# every part on its own loopback address, so that a test sees each bind setting honoured
BINDS = dict(gateway_address="127.0.0.2", gateway_metrics_address="127.0.0.3", triton_address="127.0.0.4",
             milvus_address="127.0.0.5", http_address="127.0.0.6")


def corpus_videos(count: int = VIDEOS, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """(id, frames) with 1 to 30 frames each (past the 20-frame window too)."""
    rng = np.random.default_rng(seed)
    return [(f"vid{i:04d}", rng.standard_normal((int(rng.integers(1, 31)), FRAME_DIM)).astype(np.float32))
            for i in range(count)]


def sample_captions(count: int) -> list[str]:
    from training.data.msrvtt_captions import load_msrvtt_captions

    return load_msrvtt_captions()[:count]
