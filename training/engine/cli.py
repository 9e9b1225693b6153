"""``strata train``, ``strata evaluate`` and ``strata results`` (torch loads only inside the handlers)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train", help="train a model of the zoo (locally, or on Ray with --workers N)",
                                  description="Train a model from a config under training/configs/train/ (or a path). "
                                              "Rerunning the same command resumes an interrupted run.")
    train.add_argument("config", help="train config: a YAML path or a name in training/configs/train/")
    train.add_argument("--workers", type=int, help="Ray Train data-parallel workers (0 = in this process)")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. --set optim.epochs=5 (repeatable)")
    train.add_argument("--fresh", action="store_true", help="discard an existing run of the same name first")
    train.set_defaults(func=_train)

    evaluate = subparsers.add_parser("evaluate", help="evaluate a checkpoint: R@K, MedR, MnR, rsum, levels, binary selection")
    evaluate.add_argument("checkpoint", help="a checkpoint folder (e.g. $STRATA_HOME/runs/NAME/best)")
    evaluate.add_argument("--data", help="dataset folder (default: the one the checkpoint was trained on)")
    evaluate.add_argument("--split", action="append", help="split(s) to evaluate (default: the config's test splits)")
    evaluate.add_argument("--backend", choices=("torch", "onnx", "triton"), default="torch",
                          help="score with eager PyTorch, the exported ONNX files, or a running Triton server")
    evaluate.add_argument("--repo", default="model_repository", help="model repository (onnx/triton backends)")
    evaluate.add_argument("--version", type=int, help="exported version (onnx/triton backends; default: latest)")
    evaluate.add_argument("--url", default="127.0.0.1:8001", help="Triton gRPC address (triton backend)")
    evaluate.add_argument("--out", help="write the metrics JSON here")
    evaluate.set_defaults(func=_evaluate)

    results = subparsers.add_parser("results", help="rebuild the results table from report folders")
    results.add_argument("--runs", help="folder of run reports (default: $STRATA_HOME/runs)")
    results.add_argument("--out", help="write the Markdown table here (default: print it)")
    results.set_defaults(func=_results)


def _train(args: argparse.Namespace) -> int:
    from training.engine.session import train_from_config

    overrides = list(args.overrides) + ([f"workers={args.workers}"] if args.workers is not None else [])
    train_from_config(args.config, overrides, fresh=args.fresh)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from training.engine.session import evaluate_checkpoint

    result = evaluate_checkpoint(args.checkpoint, data=args.data, splits=args.split, backend=args.backend,
                                 repo=args.repo, version=args.version, url=args.url)
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text)
    return 0


def _results(args: argparse.Namespace) -> int:
    from training.engine.results import results_table
    from training.home import strata_home

    table = results_table(Path(args.runs) if args.runs else strata_home() / "runs")
    if args.out:
        Path(args.out).write_text(table)
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(table)
    return 0
