"""``strata bench ingest``: videos/s and captions/s through the running gateway (``strata up``), end to end.

Streams ``--videos`` videos and ``--captions`` captions of the benchmark corpus (evaluation/bench/corpus.py:
SynthVTR videos the demo's model never trained on, in the served model's sizes; each caption the first of its
video) through IndexVideos and IndexCaptions, ``--batch`` items a call. Each batch is drawn before its call, so
the ingest figures are the gateway's (client serialisation and gRPC included), and the drawing rate is reported
beside them. Items are corpus positions ``--start`` on, past the end-to-end corpus by default; the calls are
upserts, so a rerun with the same ``--start`` replaces the same ids (the index does not grow) and measures
replacing, while another ``--start`` measures fresh inserts. Measured on whatever else the machine is doing:
compare runs side by side.

Then the floor (:mod:`evaluation.bench.floor`): ``--floor-items`` more of each kind, at the positions after the
service's, through the gateway's own ingest code in this process (towers in ONNX Runtime here, the same Milvus
and tensor store, no gRPC or Triton), with the CPU an item takes here and in Milvus and so the most items per
second the cores allow; and the target (1,000 videos/s) beside both.
"""
from __future__ import annotations

import os

from common.conventions import (add_json_flag, emit_json, non_negative_int, positive_int, say,
                                standalone_parser)

TARGET_VIDEOS_PER_S = 1_000


def run(argv: list[str]) -> int:
    from evaluation.bench.corpus import E2E_VIDEOS

    parser = standalone_parser("strata bench ingest", __doc__,
                               ["strata bench ingest", "strata bench ingest --videos 1000 --captions 0 --batch 32",
                                "strata bench ingest --start 200000 --json ingest.json   # other ids than the default"])
    parser.add_argument("--videos", type=non_negative_int, default=10_000, help="corpus videos indexed")
    parser.add_argument("--captions", type=non_negative_int, default=10_000, help="corpus captions indexed")
    parser.add_argument("--batch", type=positive_int, default=128, help="items per IndexVideos / IndexCaptions call")
    parser.add_argument("--start", type=non_negative_int, default=E2E_VIDEOS,
                        help="first corpus position (ids synth-PPPPPP, synth-cap-PPPPPP); the default is past the "
                             "end-to-end corpus, so that corpus is never touched")
    parser.add_argument("--floor-items", type=non_negative_int, default=1_000,
                        help="videos and captions the floor indexes in this process, after the service's positions "
                             "(0: no floor)")
    parser.add_argument("--url", help="gateway address (default: the running one's record, else the settings)")
    add_json_flag(parser)
    args = parser.parse_args(argv)
    from clients.client import StrataClient
    from common.connect import gateway_url
    from common.settings import load_settings
    from evaluation.bench.corpus import KINDS, ingest

    log = say(args)
    settings = load_settings()
    with StrataClient(gateway_url(settings, args.url), timeout_s=600, settings=settings) as client:
        info = client.describe()
        done = {kind: ingest(client, info, kind, range(args.start, args.start + count), args.batch)
                for kind, count in zip(KINDS, (args.videos, args.captions))}
    floors = {}
    if args.floor_items:
        floors = _floor(settings, info, args.start + max(args.videos, args.captions), args.floor_items, args.batch)
    log(f"{info.model.name} version {info.model.version}, batches of {args.batch}, corpus positions from "
        f"{args.start}")
    log(f"{'':9s} {'items':>7s} {'seconds':>8s} {'items/s':>8s} {'drawn/s':>8s} {'indexed now':>12s}")
    for kind, result in done.items():
        figures = result.figures()
        log(f"{kind:9s} {result.items:7d} {result.index_s:8.1f} {figures['indexed_per_s']:8.1f} "
            f"{figures['generated_per_s']:8.1f} {result.total:12d}")
    log("items/s: the index calls only; drawn/s: generating the items in this process, not counted in items/s")
    for kind, floor in floors.items():
        log(f"{kind:9s} floor ({floor['items']} in this process): {floor['items_per_s']:.1f} items/s, "
            f"{floor['cpu_ms']:.2f} ms of CPU per item (here and in Milvus): at most {floor['ceiling_per_s']:.0f} "
            f"items/s on {os.cpu_count()} cores")
    if args.videos:
        measured = done["videos"].figures()["indexed_per_s"]
        beside = f", floor {floors['videos']['items_per_s']:.1f} (at most {floors['videos']['ceiling_per_s']:.0f})" \
            if "videos" in floors else ""
        log(f"target: >= {TARGET_VIDEOS_PER_S:,} videos/s: {measured:.1f}{beside}: "
            f"{'met' if measured >= TARGET_VIDEOS_PER_S else 'missed'}")
    emit_json(args, {"model": info.model.name, "version": info.model.version, "batch": args.batch,
                     "start": args.start, **{kind: result.figures() for kind, result in done.items()},
                     "floor": floors})
    return 0


def _floor(settings, info, start: int, count: int, batch: int) -> dict[str, dict]:
    """The gateway's ingest code in this process over ``count`` corpus videos and captions from ``start``."""
    from evaluation.bench.corpus import corpus_captions, corpus_videos
    from evaluation.bench.floor import measure_ingest_floor
    from serving.gateway.types import CaptionInput, VideoInput

    videos = [VideoInput(v.id, v.frames, v.regions, v.source, v.duration) for v in corpus_videos(info, count, start)]
    captions = [CaptionInput(*caption) for caption in corpus_captions(count, start)]
    return measure_ingest_floor(settings, info.model.name, info.model.version,
                                {"videos": videos, "captions": captions}, batch)
