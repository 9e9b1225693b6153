"""``strata bench NAME``: performance measurements, reported as figures (never asserted in tests).

Each benchmark is a torch-free-at-import module function ``run(argv: list[str]) -> int`` named below.
"""
from __future__ import annotations

import argparse
import importlib

from common.conventions import HelpFormatter
from common.errors import ConfigError

BENCHMARKS: dict[str, tuple[str, str]] = {
    "parse": ("training.text.bench:run", "caption parsing throughput on the real MSR-VTT captions"),
    "zoo": ("training.models.bench:run", "parameter counts and forward time of every model of the zoo, fast and paper presets"),
    "towers": ("export.bench:run", "tower latency/throughput: eager PyTorch, ONNX Runtime, Triton gRPC and shared memory"),
    "gateway": ("clients.query_bench:run", "end-to-end text query latency through the running gateway, by stage"),
    "store": ("serving.store.bench:run", "tensor store ingest rows/s and fetch latency: LMDB, Lance, a memory-mapped .npy"),
    "rerank": ("serving.gateway.rerank_bench:run", "two-stage agreement@10 with exhaustive scoring and latency against "
                                                   "first-stage depth, per model and strategy"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    lines = "\n".join(f"  {name:10s} {doc}" for name, (_, doc) in BENCHMARKS.items())
    parser = subparsers.add_parser(
        "bench", help="run a benchmark", description=f"Performance figures, printed (never asserted).\n\n"
                                                     f"benchmarks:\n{lines}",
        epilog="examples:\n  strata bench parse\n  strata bench towers --help      # that benchmark's own flags",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("name", nargs="?", metavar="NAME", help=f"the benchmark: {', '.join(BENCHMARKS)}")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments of that benchmark (see strata bench NAME --help)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.name not in BENCHMARKS:
        given = "no benchmark name" if args.name is None else f"unknown benchmark {args.name!r}"
        raise ConfigError(f"strata bench: {given}; choose one of {', '.join(BENCHMARKS)} "
                          f"(e.g. strata bench parse)")
    module, attr = BENCHMARKS[args.name][0].split(":")
    return getattr(importlib.import_module(module), attr)(args.args)
