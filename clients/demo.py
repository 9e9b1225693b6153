"""``strata demo``: the main job, end to end on this machine, through the same commands a user types.

1. parse the 1,000 real MSR-VTT test captions shipped with Strata into role graphs and summarise them;
2. generate a small SynthVTR set and train HGR on it (``training/configs/train/demo.yaml``);
3. export the best checkpoint to a Triton model repository (ONNX, parity-checked);
4. start the real Triton server, evaluate the checkpoint through it, stop the server.
"""
from __future__ import annotations

import argparse
import csv
import time
from collections import Counter
from pathlib import Path

from clients.conventions import add_command, port, setting_help, settings

SAMPLE_CAPTIONS = Path(__file__).resolve().parent.parent / "training" / "data" / "samples" / "msrvtt_1ka_test_captions.csv"
DEMO_CONFIG = "demo"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "demo", help="the main job: parse real captions, train, export, serve and evaluate",
        description="The main job, end to end, through the same commands a user types: parse the 1,000 real "
                    "MSR-VTT test captions; generate a small SynthVTR set and train HGR on it "
                    "(training/configs/train/demo.yaml); export the best checkpoint to $STRATA_HOME/demo_repository; "
                    "start Triton, evaluate through it, stop it. Rerunning resumes.",
        examples=["strata demo", "strata demo --parse-only", "strata demo --grpc-port 18001 --http-port 18000 "
                                                              "--metrics-port 18002   # other ports"])
    parser.add_argument("--parse-only", action="store_true", help="stop after the caption-parsing summary")
    parser.add_argument("--grpc-port", type=port, help=setting_help("Triton gRPC port", "triton_grpc_port"))
    parser.add_argument("--http-port", type=port, help=setting_help("Triton HTTP port", "triton_http_port"))
    parser.add_argument("--metrics-port", type=port, help=setting_help("Triton metrics port", "triton_metrics_port"))
    parser.set_defaults(func=run)


def read_sample_captions(path: Path = SAMPLE_CAPTIONS) -> list[str]:
    with path.open(newline="") as handle:
        return [row["sentence"] for row in csv.DictReader(handle, delimiter=";")]


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


def run(args: argparse.Namespace) -> int:
    from clients.cli import main as strata

    print("== 1/4 parse the real MSR-VTT captions", flush=True)
    print(parse_summary(read_sample_captions()), flush=True)
    if args.parse_only:
        return 0

    from training.engine.config import BEST, load_train_config, run_dir
    from training.home import strata_home

    print("\n== 2/4 SynthVTR + train HGR (resumes if interrupted)", flush=True)
    if strata(["train", DEMO_CONFIG]):
        return 1
    best = run_dir(load_train_config(DEMO_CONFIG)) / BEST

    print("\n== 3/4 export to a Triton model repository (ONNX, parity-checked)", flush=True)
    repo = strata_home() / "demo_repository"
    from serving.repository import checkpoint_version
    from training.errors import StrataError

    try:
        base, version = checkpoint_version(best, repo)
        print(f"already exported: {base} version {version} in {repo}")
    except StrataError:
        if strata(["export", str(best), "--repo", str(repo)]):
            return 1

    print("\n== 4/4 serve with Triton and evaluate through it", flush=True)
    current = settings({"triton_http_port": args.http_port, "triton_grpc_port": args.grpc_port,
                        "triton_metrics_port": args.metrics_port})
    http, grpc, metrics = current.triton_ports
    ports = ["--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)]
    if strata(["triton", "start", "--repo", str(repo), *ports]):
        return 1
    try:
        status = strata(["evaluate", str(best), "--backend", "triton", "--repo", str(repo),
                         "--url", current.triton_url])
    finally:
        strata(["triton", "stop"])
    if status == 0:
        print(f"\ndemo done: run report in {best.parent}, model repository in {repo}")
    return status
