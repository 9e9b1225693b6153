"""``strata bench gateway``: end-to-end query latency through the running gateway (``strata up``), split by stage.

Indexes ``--videos`` random videos (ids ``bench-N``; an upsert, so a rerun only adds what is missing) of the
served model's frame size, then asks each of the real MSR-VTT captions shipped with Strata as a text query and
reports the client's wall time beside the gateway's own stages (parse, backbone, tower, search, fetch, rerank),
median and p95 over the queries. Measured on whatever else the machine is doing: compare runs side by side.
"""
from __future__ import annotations

import statistics
import time

import numpy as np

from common.conventions import add_depth_flag, positive_int, standalone_parser

STAGES = ("parse", "backbone", "tower", "search", "fetch", "rerank")


def run(argv: list[str]) -> int:
    parser = standalone_parser("strata bench gateway", __doc__,
                               ["strata bench gateway --videos 10000 --queries 100", "strata bench gateway --depth 50"])
    parser.add_argument("--videos", type=positive_int, default=10_000, help="random videos in the index")
    parser.add_argument("--queries", type=positive_int, default=100, help="text queries timed")
    parser.add_argument("--top-k", type=positive_int, default=10, help="hits per query")
    add_depth_flag(parser)
    parser.add_argument("--url", help="gateway address (default: the running one's record, else the settings)")
    args = parser.parse_args(argv)
    from clients.client import StrataClient, Video
    from common.connect import gateway_url
    from common.settings import load_settings
    from training.data.msrvtt_captions import load_msrvtt_captions

    settings = load_settings()
    with StrataClient(args.url or gateway_url(settings), timeout_s=600, settings=settings) as client:
        info = client.describe()
        rng = np.random.default_rng(0)
        missing = args.videos - info.videos
        if missing > 0:
            started = time.perf_counter()
            regions = info.region_dim > 0

            def video(i: int) -> Video:
                frames = int(rng.integers(8, 41))
                return Video(f"bench-{i}", rng.standard_normal((frames, info.frame_dim)).astype(np.float32),
                             rng.standard_normal((frames, 8, info.region_dim)).astype(np.float32) if regions else None,
                             source="bench")

            videos = (video(i) for i in range(info.videos, args.videos))
            result = client.index_videos(videos, batch=128)
            seconds = time.perf_counter() - started
            print(f"indexed {result.indexed} random videos in {seconds:.1f}s ({result.indexed / seconds:.0f}/s); "
                  f"{result.total} indexed")
        captions = load_msrvtt_captions()[:args.queries]
        depth = args.depth or 0   # 0: the gateway's depth
        client.search_videos(captions[0], args.top_k, depth)   # warm-up: parser load, first Triton calls
        walls, stages = [], {s: [] for s in STAGES}
        for caption in captions:
            started = time.perf_counter()
            answer = client.search_videos(caption, args.top_k, depth)
            walls.append(1e3 * (time.perf_counter() - started))
            for timing in answer.timings:
                stages[timing.stage].append(timing.ms)
        info = client.describe()
    print(f"{info.model.name} version {info.model.version}: {info.videos} videos indexed; {len(walls)} text queries, "
          f"top-{args.top_k} of {answer.candidates} candidates")
    print(f"{'stage':10s} {'median ms':>10s} {'p95 ms':>8s} {'share':>6s}")
    total = statistics.median(walls)
    for name in STAGES:
        values = stages[name]
        median = statistics.median(values)
        print(f"{name:10s} {median:10.2f} {np.percentile(values, 95):8.2f} {median / total:6.0%}")
    print(f"{'end to end':10s} {total:10.2f} {np.percentile(walls, 95):8.2f} {'100%':>6s}  (client wall time, gRPC "
          f"included)")
    return 0
