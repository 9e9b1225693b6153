"""``strata demo``: the main job, end to end on this machine, through the same commands a user types.

1. parse the 1,000 real MSR-VTT test captions shipped with Strata into role graphs and summarise them;
2. generate a small SynthVTR set and train HGR on it (``training/configs/train/demo.yaml``; resumes), then print
   what the model reached on the test splits (text->video and video->text R@5);
3. export the best checkpoint into the model repository (ONNX, parity-checked), unless it is there already;
4. bring up the service (Milvus Lite, Triton, the gRPC gateway: ``strata up``), index the SynthVTR test videos and
   their captions, and ask it in both directions: held-out captions as text queries (is the true video in the
   top 5?) and videos as queries for their captions, every hit with its per-level scores (a service that an
   earlier demo left on another model version is first moved to the demo's with ``strata swap``);
5. stop the service (``--keep-running`` leaves it up and ends with the search page's address).

The demo ends with what the model reached and how long the whole demo took.
"""
from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from common.conventions import add_command, setting_help, settings

DEMO_CONFIG = "demo"
TEXT_QUERIES = 6     # held-out captions asked as text queries
VIDEO_QUERIES = 2    # test videos asked for their captions


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "demo", help="the main job: train and export HGR, bring up the service, ask it in both directions",
        description="The main job, end to end, through the same commands a user types: parse the 1,000 real "
                    "MSR-VTT test captions; generate a small SynthVTR set and train HGR on it "
                    "(training/configs/train/demo.yaml); export it into the model repository; bring up Milvus "
                    "Lite, Triton and the gateway; index the SynthVTR test videos and captions; answer held-out "
                    "captions as text queries and videos as caption queries over gRPC; stop the service. "
                    "Rerunning resumes and reuses what is done.",
        examples=["strata demo", "strata demo --parse-only", "strata demo --keep-running   # then: strata search ..."])
    parser.add_argument("--parse-only", action="store_true", help="stop after the caption-parsing summary")
    parser.add_argument("--keep-running", action="store_true",
                        help="leave the service up at the end and print the search page's address (stop it with "
                             "`strata down`)")
    parser.add_argument("--gateway-port", type=int,
                        help=setting_help("gateway gRPC port (0: any free port)", "gateway_port"))
    parser.set_defaults(func=run)


def parse_summary(captions: list[str]) -> str:
    from training.text.parser import parse_captions

    started = time.perf_counter()
    parsed = parse_captions(captions)
    seconds = time.perf_counter() - started
    roles = Counter(edge[2] for p in parsed for edge in p.graph.edges)
    verbs = Counter(v for p in parsed for v in p.verbs)
    nouns = Counter(n for p in parsed for n in p.nouns)
    full_svo = sum(any(s and o for s, _, o in p.triplets) for p in parsed)
    example = max(parsed, key=lambda p: len(p.graph.edges))
    lines = [
        f"parsed {len(parsed)} real MSR-VTT captions in {seconds:.2f}s ({len(parsed) / seconds:.0f} sentences/s, "
        f"including the spaCy model load)",
        f"  with a verb node: {sum(bool(p.graph.verb_ids) for p in parsed)}; verb nodes per caption "
        f"{sum(len(p.graph.verb_ids) for p in parsed) / len(parsed):.2f}, noun nodes "
        f"{sum(len(p.graph.noun_ids) for p in parsed) / len(parsed):.2f}; full subject-verb-object: {full_svo}",
        "  edge roles: " + ", ".join(f"{r} {n}" for r, n in roles.most_common(8)),
        "  top verbs: " + ", ".join(f"{v} {n}" for v, n in verbs.most_common(8)),
        "  top nouns: " + ", ".join(f"{v} {n}" for v, n in nouns.most_common(8)),
        f"  richest graph: {example.text!r}",
    ]
    for src, dst, role in example.graph.edges:
        lines.append(f"    {' '.join(example.graph.nodes[src].words)} --{role}--> {' '.join(example.graph.nodes[dst].words)}")
    return "\n".join(lines)


def reached(test_metrics: dict) -> list[str]:
    """One line per test split of a run's ``test_metrics.json``: both directions' R@5 (HGR's convention, as the
    training report and RESULTS.md: a caption's true video in the top 5 of the split's videos; for a video, its
    best-ranked own caption in the top 5 of all the split's captions)."""
    lines = [f"the demo model (epoch {test_metrics['best_epoch']} of {test_metrics['epochs_trained']}, the best "
             f"validation rsum), scored in PyTorch:"]
    for split, result in test_metrics["splits"].items():
        fused = result["fused"]
        lines.append(f"  reached on {split} ({result['videos']} videos, {result['captions']} captions): "
                     f"text->video R@5 {fused['t2v_r5']:.1f}, video->text R@5 {fused['v2t_r5']:.1f} "
                     f"(R@1 {fused['t2v_r1']:.1f} / {fused['v2t_r1']:.1f}, rsum {fused['rsum']:.1f})")
    return lines


def config_changed(config) -> bool:
    """Whether the demo's run folder holds a run of another demo config (an earlier Strata's): the demo then
    trains afresh rather than stopping at ``strata train``'s refusal to mix two configs in one run."""
    from training.engine.config import saved_beside

    compared = saved_beside(config)
    return compared is not None and compared[0] != compared[1]


def run(args: argparse.Namespace) -> int:
    from clients.cli import main as strata

    started = time.perf_counter()
    print("== 1/5 parse the real MSR-VTT captions", flush=True)
    from training.data.msrvtt_captions import load_msrvtt_captions

    print(parse_summary(load_msrvtt_captions()), flush=True)
    if args.parse_only:
        return 0

    from common.errors import StrataError
    from export.versions import checkpoint_version
    from training.engine.config import BEST, load_train_config, run_dir

    print("\n== 2/5 SynthVTR + train HGR (resumes if interrupted)", flush=True)
    config = load_train_config(DEMO_CONFIG)
    train = ["train", DEMO_CONFIG]
    if config_changed(config):
        print(f"the demo's config changed since its run in {run_dir(config)}: training it afresh")
        train.append("--fresh")
    if strata(train):
        return 1
    best = run_dir(config) / BEST
    figures = reached(json.loads((best.parent / "test_metrics.json").read_text()))
    print("\n".join(figures), flush=True)

    print("\n== 3/5 export into the model repository (ONNX, parity-checked)", flush=True)
    current = settings({"gateway_port": args.gateway_port})
    repo = current.repository
    try:
        base, version = checkpoint_version(best, repo)
        print(f"already exported: {base} version {version} in {repo}")
    except StrataError:
        if strata(["export", str(best), "--repo", str(repo)]):
            return 1
        base, version = checkpoint_version(best, repo)

    print("\n== 4/5 bring up the service and ask it in both directions", flush=True)
    from dataclasses import replace

    from clients.client import StrataClient
    from clients.service_cli import index_dataset
    from deploy.stack import down, up

    state = up(replace(current, model=base))
    try:
        if (state.model, state.version) != (base, version):   # a service an earlier demo left on its own model
            print(f"the service's active version is {state.model} version {state.version}; moving it to the demo's "
                  f"model, {base} version {version}", flush=True)
            if strata(["swap", base, "--version", str(version)]):
                return 1
        with StrataClient(state.gateway, current.request_timeout_s, current) as client:
            index_dataset(client, config.data.resolved_path(), ["tst"])
            ask(client, config.data.resolved_path())
    finally:
        if args.keep_running:
            print(f"\n== 5/5 the service stays up at {state.gateway}: strata search \"a man is slicing bread\", "
                  f"strata info; stop it with: strata down")
        else:
            print("\n== 5/5 stop the service", flush=True)
            down()
            print("run `strata up` to serve again (the index and the active version persist under $STRATA_HOME), "
                  "`strata down` to stop it")
    minutes, seconds = divmod(round(time.perf_counter() - started), 60)
    print(f"\ndemo done in {minutes}m{seconds:02d}s: run report in {best.parent}, model repository {repo}")
    print("\n".join(figures))
    if args.keep_running and state.http:
        print(f"the search page: {state.http}/")
    return 0


def ask(client, folder: Path) -> None:
    """Held-out captions as text queries and test videos as caption queries, each printed with its hits."""
    from clients.service_cli import hits_table
    from training.synth.generator import open_dataset

    split = open_dataset(folder).split("tst")
    step = max(1, len(split) // TEXT_QUERIES)
    found = 0
    for i in range(0, step * TEXT_QUERIES, step):
        caption, video = split.captions[i][0], split.names[i]
        answer = client.search_videos(caption, top_k=5)
        hit = video in [h.id for h in answer.hits]
        found += hit
        print(f"\ntext -> video: {caption!r} (true video {video}: {'in the top 5' if hit else 'not in the top 5'})")
        print(hits_table(answer))
    print(f"\nthe true video was in the top 5 for {found} of {TEXT_QUERIES} held-out captions")
    for i in range(VIDEO_QUERIES):
        video = split.names[i * step]
        answer = client.search_captions(video_id=video, top_k=5)
        own = sum(h.video_id == video for h in answer.hits)
        print(f"\nvideo -> text: {video} ({own} of the top 5 are its own captions)")
        print(hits_table(answer))
