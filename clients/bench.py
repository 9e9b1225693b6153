"""``strata bench NAME``: performance measurements, reported as figures (never asserted in tests).

Each benchmark is a torch-free-at-import module function ``run(argv: list[str]) -> int`` named below.
"""
from __future__ import annotations

import argparse
import importlib

BENCHMARKS: dict[str, tuple[str, str]] = {
    "parse": ("training.text.bench:run", "caption parsing throughput on the real MSR-VTT captions"),
    "zoo": ("training.models.bench:run", "parameter counts and forward time of every model of the zoo, fast and paper presets"),
    "towers": ("export.bench:run", "tower latency/throughput: eager PyTorch, ONNX Runtime, Triton gRPC and shared memory"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    lines = "\n".join(f"  {name:10s} {doc}" for name, (_, doc) in BENCHMARKS.items())
    parser = subparsers.add_parser(
        "bench", help="run a benchmark", description=f"benchmarks:\n{lines}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", choices=sorted(BENCHMARKS))
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments of that benchmark (see NAME --help)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    module, attr = BENCHMARKS[args.name][0].split(":")
    return getattr(importlib.import_module(module), attr)(args.args)
