"""``strata train``, ``strata diagnose`` and ``strata results`` (torch loads only inside the handlers)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common.conventions import add_command, add_json_flag, add_set_flag, emit_json, int_range, non_negative_int, say


def register(subparsers: argparse._SubParsersAction) -> None:
    train = add_command(
        subparsers, "train", help="train a model of the zoo (locally, or on Ray with --workers N)",
        description="Train a model from a config under training/configs/train/ (or a path). The run is "
                    "$STRATA_HOME/runs/<run_name>, named <config>-seed<seed> unless run_name is set; rerunning the "
                    "same command resumes an interrupted run. data.path set on the command line is relative to the "
                    "current folder and must exist; only a config with data.synth generates SynthVTR (the first "
                    "`strata train hgr_synthvtr` builds about 435 MB of data, about 80 s).",
        examples=["strata train hgr_synthvtr --set optim.epochs=5",
                  "strata train hgr_synthvtr --set data.path=./synth-small --set run_name=hgr-small   "
                  "# a folder made by strata synth",
                  "strata train hgr_msrvtt --set data.path=/data/msrvtt --workers 2   # on Ray",
                  "strata train hgr_synthvtr --screen --set data.role_switch_negatives=true --set run_name=hgr-twin"])
    train.add_argument("config", help="train config: a YAML path or a name in training/configs/train/")
    train.add_argument("--workers", type=non_negative_int,
                       help="Ray Train data-parallel workers, 0 = in this process (default: the config's workers, 0)")
    add_set_flag(train)
    train.add_argument("--fresh", action="store_true", help="discard an existing run of the same name first")
    train.add_argument("--screen", action="store_true",
                       help="screen an idea: a small SynthVTR set, a short budget, figures on val "
                            "(training/configs/screen.yaml, laid over the config before --set)")
    train.set_defaults(func=_train)

    diagnose = add_command(
        subparsers, "diagnose", help="what a checkpoint's failures need: level spread, concept heads, gradients, roles",
        description="From a checkpoint: per level the scores of true and false pairs and their spread; concept-head "
                    "precision against the caption's words (HANet, MCSAN); the gradient norm of each loss term on each "
                    "branch (one training batch); on SynthVTR, the cosine between a caption and its role-switched "
                    "twin and linear agent/patient probes on the trained text and video outputs.",
        examples=["strata diagnose $STRATA_HOME/runs/hanet_synthvtr-seed0/best",
                  "strata diagnose $STRATA_HOME/runs/mcsan_synthvtr-seed0/best --split tst_unseen --videos 100 --json d.json"])
    diagnose.add_argument("checkpoint", help="a checkpoint folder (e.g. $STRATA_HOME/runs/NAME/best)")
    diagnose.add_argument("--data", help="dataset folder (default: the one the checkpoint was trained on)")
    diagnose.add_argument("--split", help="split to diagnose (default: the config's first test split)")
    diagnose.add_argument("--videos", type=int_range(2, 100_000), default=200,
                          help="videos of the split to score, with their captions")
    add_json_flag(diagnose, "the diagnosis")
    diagnose.set_defaults(func=_diagnose)

    results = add_command(subparsers, "results", help="rebuild the results table from report folders",
                          examples=["strata results", "strata results --out RESULTS.md"])
    results.add_argument("--runs", help="folder of run reports (default: $STRATA_HOME/runs)")
    results.add_argument("--out", help="write the Markdown table here (default: print it)")
    results.set_defaults(func=_results)


def _train(args: argparse.Namespace) -> int:
    from training.engine.session import train_from_config

    overrides = list(args.overrides) + ([f"workers={args.workers}"] if args.workers is not None else [])
    train_from_config(args.config, overrides, fresh=args.fresh, screen=args.screen)
    return 0


def _diagnose(args: argparse.Namespace) -> int:
    from training.engine.session import diagnose_checkpoint

    result = diagnose_checkpoint(args.checkpoint, data=args.data, split=args.split, videos=args.videos, log=say(args))
    emit_json(args, result)
    return 0


def _results(args: argparse.Namespace) -> int:
    from common.errors import DataError
    from common.home import strata_home
    from training.engine.results import results_table

    runs = Path(args.runs) if args.runs else strata_home() / "runs"
    if not runs.is_dir():
        raise DataError(f"no run reports: {runs} is not a folder (train first: strata train CONFIG, or --runs DIR)")
    table = results_table(runs)
    if args.out:
        Path(args.out).write_text(table)
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(table)
    return 0
