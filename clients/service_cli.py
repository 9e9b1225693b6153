"""``strata search``, ``strata index``, ``strata info`` and ``strata health``: the query side of the command line, on
the client library.

These commands talk to a running gateway (``strata up``) at the ``gateway_port`` setting, or ``--url``; they never
import torch. ``strata index DIR`` reads a dataset folder here, on the client, and streams its features to the
gateway, which never opens a user's path.
"""
from __future__ import annotations

import argparse
import sys
import time

from common.conventions import (
    add_command,
    add_depth_flag,
    add_json_flag,
    emit_json,
    non_negative_int,
    positive_int,
    say,
    setting_help,
)


def _url_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help=setting_help("gateway address host:port (a gateway started by `strata up` is "
                                                   "found from its record)", "gateway_port",
                                                   lambda s: s.gateway_url))


def register(subparsers: argparse._SubParsersAction) -> None:
    search = add_command(subparsers, "search", help="ask the gateway: videos for a sentence, or captions for a video",
                         examples=['strata search "a man is slicing bread" --top-k 5',
                                   'strata search "a dog chases a man" --evidence',
                                   "strata search --video-id video7012 --json"])
    search.add_argument("text", nargs="?", help="a sentence (text -> video)")
    search.add_argument("--video-id", help="an indexed video's id (video -> text)")
    search.add_argument("--clip", help="a raw video file to upload (video -> text; decoded by the gateway)")
    search.add_argument("--top-k", type=positive_int, help=setting_help("hits to return", "top_k"))
    search.add_argument("--evidence", action="store_true",
                        help="under each hit, the frames each verb and noun phrase matched (the model's attention)")
    add_depth_flag(search)
    add_json_flag(search, "the answer")
    _url_flag(search)
    search.set_defaults(func=_search)

    index = add_command(subparsers, "index", help="index a dataset folder's videos and captions through the gateway",
                        description="Reads a dataset folder here, on the client (HGR's release layout, or a folder made "
                                    "by `strata synth`), and streams its videos' features and its captions to the "
                                    "gateway, which never opens a user's path. Indexing is an upsert by id: a rerun "
                                    "after an interruption leaves every item once. Caption ids are VIDEO#K (the K-th "
                                    "caption of VIDEO).",
                        examples=["strata index ~/.strata/data/synthvtr-demo",
                                  "strata index /data/msrvtt --split tst --split val --no-captions",
                                  "strata index --videos ~/clips a.mp4 (raw video files, decoded by the gateway)",
                                  "ray job submit --working-dir . -- strata index DIR --workers 2"])
    index.add_argument("folder", nargs="?", help="a dataset folder")
    index.add_argument("--videos", nargs="+", metavar="PATH",
                       help="raw video files or folders of them (ids: file names without suffix, relative to a folder)")
    index.add_argument("--workers", type=non_negative_int,
                       help="bulk ingest as a Ray Data pipeline with N workers that embed on Triton and commit to "
                            "Milvus and the tensor store directly (0: in this process); skips committed items")
    index.add_argument("--split", action="append", help="split(s) to index, repeatable (default: tst)")
    index.add_argument("--no-captions", action="store_true", help="index the videos only")
    index.add_argument("--batch", type=positive_int, default=64, help="videos per streamed message")
    _url_flag(index)
    index.set_defaults(func=_index)

    info = add_command(subparsers, "info", help="the gateway's model, version, levels, corpus sizes and stores",
                       examples=["strata info", "strata info --json"])
    add_json_flag(info, "the description")
    _url_flag(info)
    info.set_defaults(func=_info)

    health = add_command(subparsers, "health", help="the gateway's gRPC health: exit 0 when SERVING, else 1",
                         description="Asks the gateway's grpc.health.v1 service over the channel every call uses "
                                     "(TLS and token from the settings). SERVING exits 0; NOT_SERVING (Milvus or "
                                     "Triton unreachable, or no model version active) and UNREACHABLE exit 1: a "
                                     "readiness probe where the platform's own gRPC probe cannot speak TLS.",
                         examples=["strata health", "strata health --url localhost:50051"])
    _url_flag(health)
    health.set_defaults(func=_health)


def _client(args: argparse.Namespace):
    from clients.client import StrataClient
    from common.settings import load_settings

    from common.connect import gateway_url

    settings = load_settings()
    return StrataClient(args.url or gateway_url(settings), settings.request_timeout_s, settings)


def hits_table(answer) -> str:
    """Hits as a text table with the per-level scores (``*`` marks a level the caption had no nodes for)."""
    levels = [l.level for l in answer.hits[0].levels] if answer.hits else []
    head = f"{'rank':>4}  {'id':24s} {'score':>7s} " + " ".join(f"{name[:10]:>10s}" for name in levels)
    lines = [f"model {answer.model.name} version {answer.model.version}; {answer.candidates} candidates re-ranked", head]
    for rank, hit in enumerate(answer.hits, 1):
        cells = " ".join(f"{l.score:>9.4f}{'*' if l.empty else ' '}" for l in hit.levels)
        extra = hit.text or hit.source
        lines.append(f"{rank:>4}  {hit.id[:24]:24s} {hit.score:>7.4f} {cells}  {extra}")
        lines += evidence_lines(hit)
    if any(l.empty for h in answer.hits for l in h.levels):
        lines.append("* the caption has no text node of this level (no verb, or no noun)")
    return "\n".join(lines)


def evidence_lines(hit, frames: int = 3) -> list[str]:
    """A hit's temporal evidence, one line per level and text node: the ``frames`` frames it weighted most."""
    lines = []
    for level in hit.evidence:
        if not level.temporal:
            lines.append(f"{'':6s}{level.level}: no temporal evidence (one vector per item)")
            continue
        for node in level.nodes:
            best = sorted(node.frames, key=lambda f: -f.weight)[:frames]
            where = ", ".join(f"frame {f.frame}" + (f" ({f.time_s:.1f} s)" if f.time_s >= 0 else "") + f" {f.weight:.2f}"
                              for f in best)
            lines.append(f"{'':6s}{level.level} {node.words!r}: {where}")
    return lines


def answer_json(answer) -> dict:
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(answer, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def _search(args: argparse.Namespace) -> int:
    from common.errors import ConfigError

    if sum(x is not None for x in (args.text, args.video_id, args.clip)) != 1:
        raise ConfigError("give a sentence, --video-id ID or --clip FILE (one of them), e.g. strata search \"a dog runs\"")
    top_k, depth = args.top_k or 0, args.depth or 0   # 0: the gateway's settings
    with _client(args) as client:
        if args.text is not None:
            answer = client.search_videos(args.text, top_k, depth, evidence=args.evidence)
        elif args.clip is not None:
            answer = client.search_captions_by_clip(args.clip, top_k, depth, evidence=args.evidence)
        else:
            answer = client.search_captions(video_id=args.video_id, top_k=top_k, candidate_depth=depth,
                                            evidence=args.evidence)
    emit_json(args, answer_json(answer))
    say(args)(hits_table(answer))
    return 0


def _index(args: argparse.Namespace) -> int:
    from common.errors import ConfigError

    if (args.folder is None) == (args.videos is None):
        raise ConfigError("give a dataset folder or --videos PATH... (one of them)")
    if args.workers is not None:
        return _bulk(args)
    if args.videos is not None:
        return _index_files(args)
    return _index_dataset(args)


def _bulk(args: argparse.Namespace) -> int:
    from common.settings import load_settings
    from serving.ingest.bulk import plan_dataset, plan_files, run_bulk, summary

    batch = min(args.batch, 64)
    units = (plan_files(args.videos, batch) if args.videos is not None else
             plan_dataset(args.folder, args.split or ["tst"], batch, not args.no_captions))
    results = run_bulk(units, load_settings(), args.workers, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(summary(results))
    return 1 if any(p.errors for p in results) else 0


def _index_files(args: argparse.Namespace) -> int:
    from serving.ingest.decode import files_with_ids

    files = [(i, str(p)) for i, p in files_with_ids(args.videos)]
    started = time.perf_counter()
    with _client(args) as client:
        result = client.index_video_files(files)
    seconds = time.perf_counter() - started
    print(f"indexed {result.indexed} of {len(files)} video files in {seconds:.1f}s ({result.indexed / seconds:.1f} "
          f"videos/s; {result.total} now indexed for {result.model.name} version {result.model.version}, frame "
          f"backbone version {result.frame_backbone_version})")
    print(f"frame sampling: {result.sampling}")
    for error in result.errors:
        print(f"not indexed: {error.filename}: {error.message}", file=sys.stderr)
    return 1 if result.errors else 0


def index_dataset(client, folder, splits=("tst",), captions: bool = True, batch: int = 64, log=print) -> dict:
    """Stream a dataset folder's videos (and captions) to the gateway; returns {split: (videos, captions)} indexed.

    Read on this side at the gateway's frame limit (with regions when the model reads them); caption ids are
    ``VIDEO#K``, the K-th caption of VIDEO (one sentence may describe two videos)."""
    from clients.client import Video
    from training.synth.generator import open_dataset

    dataset = open_dataset(folder)
    info = client.describe()
    done = {}
    for name in splits:
        split = dataset.split(name, info.max_frames, regions=info.region_dim > 0)
        started = time.perf_counter()

        def videos():
            for i in range(len(split)):
                item = split.video(i)
                yield Video(item.name, item.frames, item.regions, source=f"{dataset.root.name}/{name}")
                if (i + 1) % (batch * 4) == 0 or i + 1 == len(split):
                    rate = (i + 1) / (time.perf_counter() - started)
                    print(f"  {name}: read {i + 1}/{len(split)} videos ({rate:.0f}/s)", file=sys.stderr, flush=True)

        result = client.index_videos(videos(), batch=batch)
        log(f"{name}: indexed {result.indexed} videos in {time.perf_counter() - started:.1f}s "
            f"({result.total} now indexed for {result.model.name} version {result.model.version})")
        written = 0
        if captions:
            pairs = [(f"{video}#{k}", text, video) for video, texts in zip(split.names, split.captions)
                     for k, text in enumerate(texts)]
            started = time.perf_counter()
            written = client.index_captions(pairs).indexed
            log(f"{name}: indexed {written} captions in {time.perf_counter() - started:.1f}s")
        done[name] = (result.indexed, written)
    return done


def _index_dataset(args: argparse.Namespace) -> int:
    with _client(args) as client:
        index_dataset(client, args.folder, args.split or ["tst"], not args.no_captions, args.batch)
    return 0


def _health(args: argparse.Namespace) -> int:
    with _client(args) as client:
        status = client.health()
    print(f"gateway {client.url}: {status}")
    return 0 if status == "SERVING" else 1


def _info(args: argparse.Namespace) -> int:
    with _client(args) as client:
        info = client.describe()
        health = client.health()
    emit_json(args, {**answer_json(info), "health": health})
    out = say(args)
    out(f"gateway {client.url}: {health}")
    out(f"model {info.model.name} version {info.model.version}; levels {', '.join(info.levels)}")
    out(f"indexed: {info.videos} videos, {info.captions} captions; first stage: {info.index_view}")
    out(f"tensors stored as {info.store_dtype}")
    out(f"defaults: top-k {info.default_top_k}, candidate depth {info.default_candidate_depth}; "
          f"video features [<= {info.max_frames} frames, {info.frame_dim}]"
          + (f", regions [.., {info.region_dim}]" if info.region_dim else ""))
    return 0
