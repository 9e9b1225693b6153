"""``strata evaluate`` (a checkpoint's quality, through any backend) and ``strata bench NAME`` (performance figures,
printed, never asserted in tests); torch-free: each handler imports what it runs.

Each benchmark is a torch-free-at-import module function ``run(argv: list[str]) -> int`` named below.
"""
from __future__ import annotations

import argparse
import importlib

from common.conventions import (HelpFormatter, add_command, add_depth_flag, add_json_flag, emit_json, positive_int,
                                repo_help, repo_path, say, setting_help, settings)
from common.errors import ConfigError

BENCHMARKS: dict[str, tuple[str, str]] = {
    "parse": ("evaluation.bench.parse:run", "caption parsing throughput on the real MSR-VTT captions"),
    "zoo": ("evaluation.bench.zoo:run", "parameter counts and forward time of every model of the zoo, fast and paper presets"),
    "towers": ("evaluation.bench.towers:run", "tower latency/throughput: eager PyTorch, ONNX Runtime, Triton gRPC and shared memory"),
    "e2e": ("evaluation.bench.e2e:run", "both query directions through the running gateway under Locust: latency "
                                         "percentiles, QPS, time per stage and CPU per part, by corpus size"),
    "growth": ("evaluation.bench.growth:run", "latency, memory and disk against corpus size through the running "
                                              "gateway, with the fitted growth"),
    "ingest": ("evaluation.bench.ingest:run", "videos/s and captions/s indexed through the running gateway "
                                              "(IndexVideos, IndexCaptions), end to end"),
    "store": ("evaluation.bench.store:run", "tensor store ingest rows/s and fetch latency: LMDB, Lance, a memory-mapped .npy"),
    "scorer": ("evaluation.bench.scorer:run", "the exported scorer at the re-rank's shapes, us per candidate: as "
                                              "exported beside the Gram-matrix order, and eager PyTorch"),
    "search": ("evaluation.bench.search:run", "first-stage vector search: recall of the exact top-C and latency of "
                                              "FLAT and IVF_FLAT (by nprobe) against exact NumPy search"),
    "rerank": ("evaluation.bench.rerank:run", "two-stage agreement@10 with exhaustive scoring and latency against "
                                              "first-stage depth, per model and strategy"),
    "agreement": ("evaluation.bench.agreement:run", "the running service's answers against exhaustive scoring of all "
                                                    "it holds: agreement@k at its depths, and its speed-up"),
    "peer": ("evaluation.bench.peer:run", "a multi-level model (HGR) against a single-vector peer (VSE++) on stacks "
                                          "of their own: latency, QPS, quality through the service, p50 ratio"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    evaluate = add_command(
        subparsers, "evaluate", help="evaluate a checkpoint: R@K, MedR, MnR, rsum, levels, binary selection",
        examples=["strata evaluate $STRATA_HOME/runs/hgr_synthvtr-seed0/best --split tst",
                  "strata evaluate $STRATA_HOME/runs/hgr_synthvtr-seed0/best --backend triton --json metrics.json"])
    evaluate.add_argument("checkpoint", help="a checkpoint folder (e.g. $STRATA_HOME/runs/NAME/best)")
    evaluate.add_argument("--data", help="dataset folder (default: the one the checkpoint was trained on)")
    evaluate.add_argument("--split", action="append",
                          help="split to evaluate, repeatable (default: the config's test splits)")
    evaluate.add_argument("--backend", choices=("torch", "onnx", "triton", "gateway"), default="torch",
                          help="score with eager PyTorch, the exported ONNX files, a running Triton server, or the "
                               "whole service (the running gateway: first stage + re-rank; indexes the split)")
    add_depth_flag(evaluate, both_directions=True)
    evaluate.add_argument("--repo", help=repo_help("model repository of the onnx/triton backends; with triton, the "
                                                   "running server's repository first"))
    evaluate.add_argument("--version", type=positive_int,
                          help="exported version (onnx/triton backends; default: the one exported from this checkpoint)")
    evaluate.add_argument("--url", help=setting_help("Triton gRPC address HOST:PORT (triton backend); the running "
                                                     "server's recorded address first", "triton_grpc_port",
                                                     lambda s: s.triton_url))
    add_json_flag(evaluate, "the metrics")
    evaluate.set_defaults(func=_evaluate)

    evidence = add_command(
        subparsers, "evidence", help="does a hit's temporal evidence mean something? On SynthVTR, how often a "
                                     "caption's verb is found in the frames of the event it names, against chance",
        examples=["strata evidence $STRATA_HOME/runs/hgr_synthvtr-seed0/best",
                  "strata evidence $STRATA_HOME/runs/demo-seed0/best --split val --json evidence.json"])
    evidence.add_argument("checkpoint", help="a checkpoint folder of a model whose levels attend over frames (HGR, "
                                             "HANet)")
    evidence.add_argument("--data", help="a SynthVTR folder (default: the one the checkpoint was trained on)")
    evidence.add_argument("--split", default="tst", help="the split whose videos and captions are the cases")
    evidence.add_argument("--level", help="the level whose attention is read (default: the one attending verbs)")
    add_json_flag(evidence, "the figures")
    evidence.set_defaults(func=_evidence)

    lines = "\n".join(f"  {name:10s} {doc}" for name, (_, doc) in BENCHMARKS.items())
    bench = subparsers.add_parser(
        "bench", help="run a benchmark", description=f"Performance figures, printed (never asserted).\n\n"
                                                     f"benchmarks:\n{lines}",
        epilog="examples:\n  strata bench parse\n  strata bench towers --help      # that benchmark's own flags\n"
               "  strata bench --quick --json quick.json",
        formatter_class=HelpFormatter,
    )
    bench.add_argument("--quick", action="store_true",
                       help="the regression alarm (under 2 minutes, a stack of its own): fails only when a "
                            "query's counts (Triton round trips, rows scored, bytes fetched) go over budget")
    add_json_flag(bench, "the quick mode's counts, budgets and latencies (with --quick)")
    bench.add_argument("name", nargs="?", metavar="NAME", help=f"the benchmark: {', '.join(BENCHMARKS)}")
    bench.add_argument("args", nargs=argparse.REMAINDER, help="arguments of that benchmark (see strata bench NAME --help)")
    bench.set_defaults(func=_bench)


def _evaluate(args: argparse.Namespace) -> int:
    if args.backend == "gateway":
        return _evaluate_through_gateway(args)
    from functools import partial

    from evaluation.runners import runner_for_checkpoint
    from training.engine.session import evaluate_checkpoint

    make_runner = (None if args.backend == "torch" else
                   partial(runner_for_checkpoint, args.checkpoint, args.backend, args.repo, args.version, args.url))
    result = evaluate_checkpoint(args.checkpoint, data=args.data, splits=args.split, make_runner=make_runner,
                                 backend=args.backend, log=say(args))
    emit_json(args, result)
    return 0


def _evidence(args: argparse.Namespace) -> int:
    from evaluation.evidence import describe, prove

    result = prove(args.checkpoint, args.data, args.split, args.level)
    emit_json(args, result)
    say(args)(describe(result))
    return 0 if result["holds"] else 1


def _evaluate_through_gateway(args: argparse.Namespace) -> int:
    from clients.client import StrataClient
    from common.connect import gateway_url
    from evaluation.gateway import evaluate_checkpoint_through_gateway
    from training.engine.evaluate import format_result

    current = settings()
    log = say(args)
    with StrataClient(gateway_url(current), current.request_timeout_s, current) as client:
        result = evaluate_checkpoint_through_gateway(args.checkpoint, client, repo_path(args.repo), args.data,
                                                     args.split, args.depth or 0, log)
    for split in result["splits"].values():
        log(format_result(split))
    emit_json(args, result)
    return 0


def _bench(args: argparse.Namespace) -> int:
    if args.quick:
        if args.name:
            raise ConfigError(f"strata bench --quick runs on its own; drop {args.name!r} (or drop --quick)")
        from evaluation.bench.quick import run

        return run(["--json", args.json] if args.json else [])
    if args.name not in BENCHMARKS:
        given = "no benchmark name" if args.name is None else f"unknown benchmark {args.name!r}"
        raise ConfigError(f"strata bench: {given}; choose one of {', '.join(BENCHMARKS)} "
                          f"(e.g. strata bench parse)")
    module, attr = BENCHMARKS[args.name][0].split(":")
    return getattr(importlib.import_module(module), attr)(args.args)
