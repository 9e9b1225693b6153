"""What ``strata train`` and ``strata evaluate`` do, end to end, around the per-worker loop."""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

from common.errors import StrataError
from training.engine.config import BEST, LAST, TrainConfig, load_train_config, run_dir, saved_beside
from training.engine.data import PreparedData, check_dataset, model_needs, prepare_data
from training.engine.evaluate import evaluate_split, format_result
from training.engine.report import plot_curves, write_config, write_json


class RunLog:
    """Plain lines to the run's ``train.log`` and to stdout."""

    def __init__(self, path: Path):
        self.path = path

    def __call__(self, message: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {message}"
        print(line, flush=True)
        with self.path.open("a") as handle:
            handle.write(line + "\n")


def train_from_config(config_path: str, overrides: Sequence[str] = (), fresh: bool = False,
                      screen: bool = False) -> Path:
    config = load_train_config(config_path, overrides, screen=screen)
    # Everything that can be checked is checked before any work, and before the run folder is written.
    check_dataset(config.data, ("trn", config.data.val_split, *config.data.test_splits))
    model_needs(config.model, config.preset, config.model_overrides)
    folder = run_dir(config)
    if fresh and folder.exists():
        shutil.rmtree(folder)
    _check_same_run(folder, config)
    write_config(folder, config)
    log = RunLog(folder / "train.log")
    log(f"run {config.run_name}: model {config.model}/{config.preset}, {config.workers or 'in-process'} worker(s), "
        f"home {folder}")
    started = time.time()
    data = prepare_data(config.data, config.model, config.preset, config.model_overrides)
    log(f"data ready in {time.time() - started:.1f}s: {data.root}")
    if config.workers == 0:
        from training.engine.train import WorkerContext, train_worker

        state = train_worker(config, WorkerContext(), log=log)
    else:
        from training.engine.ray_job import run_with_ray

        run_with_ray(config)
        state = json.loads((folder / LAST / "state.json").read_text())
    train_seconds = sum(row["epoch_seconds"] + row["eval_seconds"] for row in state["history"])
    plot_curves(folder, state["history"])
    log(f"training done: best validation rsum {state['best_rsum']:.2f} at epoch {state['best_epoch']}")
    test = evaluate_checkpoint(folder / BEST, data=data, splits=config.data.test_splits, log=log)
    test["train_seconds"] = train_seconds
    test["best_epoch"] = state["best_epoch"]
    test["epochs_trained"] = state["epoch"]
    if state.get("extensions"):  # raised optim.epochs: where each extension resumed
        test["extensions"] = state["extensions"]
    write_json(folder / "test_metrics.json", test)
    log(f"report: {folder}")
    return folder


def _check_same_run(folder: Path, config: TrainConfig) -> None:
    """Rerunning a command resumes its run; a different config under the same run name is refused, except a
    raised ``optim.epochs``, which extends the run (``extension_refusal`` says when it cannot)."""
    compared = saved_beside(config)
    if compared is None or compared[0] == compared[1]:
        return
    old, new = compared
    if not (folder / LAST).exists():  # nothing was trained under the old config: nothing to lose
        shutil.rmtree(folder)
        return
    if _without_epochs(old) == _without_epochs(new):
        state = json.loads((folder / LAST / "state.json").read_text())
        refusal = extension_refusal(config, old["optim"]["epochs"], state)
        if refusal:
            raise StrataError(f"run {config.run_name!r} in {folder} cannot be extended to optim.epochs="
                              f"{config.optim.epochs}: {refusal}")
        return
    raise StrataError(f"run {config.run_name!r} exists in {folder} with a different config; "
                      f"pass --fresh to replace it, or set run_name")


def _without_epochs(config: dict) -> dict:
    return {**config, "optim": {k: v for k, v in config.get("optim", {}).items() if k != "epochs"}}


def extension_refusal(config: TrainConfig, old_epochs: int, state: dict) -> str | None:
    """Why a run trained for ``old_epochs`` cannot continue to ``config.optim.epochs`` (None when it can).

    Extending is resuming to a later end, so it is exact only when nothing that already happened depended on
    the total: the schedules here (constant, plateau on validation rsum, step every ``step_epochs``) do not;
    a run that early stopping ended would stop again at once.
    """
    epochs = config.optim.epochs
    if epochs < state["epoch"]:
        return f"it has already trained {state['epoch']} epochs; epochs can be raised, not lowered"
    if state.get("stopped_early"):
        return (f"early stopping (optim.early_stop_patience={config.optim.early_stop_patience}) ended it at epoch "
                f"{state['epoch']}; its validation rsum stopped improving, so it would stop again")
    if config.optim.schedule not in EPOCH_FREE_SCHEDULES:
        return f"schedule {config.optim.schedule!r} depends on the total number of epochs (was {old_epochs})"
    return None


# Learning-rate schedules whose value at epoch e does not depend on optim.epochs (an extension is exact).
EPOCH_FREE_SCHEDULES = ("constant", "plateau", "step")


def evaluate_checkpoint(checkpoint: str | Path, data: str | PreparedData | None = None,
                        splits: Sequence[str] | None = None, make_runner: Callable[[], Any] | None = None,
                        backend: str = "torch", log=print) -> dict[str, Any]:
    """Metrics of a checkpoint on ``splits``, scored by the runner ``make_runner()`` returns: an object with
    ``encode_text``, ``encode_video`` and ``score`` (:class:`training.engine.runner.TorchRunner`,
    ``export.runner.OnnxRunner``, ``serving.triton.client.TritonTowers``); default: the checkpoint in PyTorch.
    It is made once the checkpoint and the data are checked, so a missing export or server fails before the
    data is prepared. ``backend`` names the runner in the results."""
    from training.checkpoint import load_model_checkpoint, read_meta
    from training.engine.runner import TorchRunner

    meta = read_meta(checkpoint)
    config = checkpoint_train_config(checkpoint, meta)
    splits = list(splits or config.data.test_splits)
    if isinstance(data, PreparedData):
        unknown = [s for s in splits if s not in data.splits]
        if unknown:
            raise StrataError(f"{data.root} has no split {', '.join(map(repr, unknown))}; it has {', '.join(data.splits)}")
    else:
        data_config = config.data if data is None else replace(config.data, path=str(Path(data).resolve()), synth=None)
        check_dataset(data_config, splits)
    runner = make_runner() if make_runner is not None else TorchRunner(load_model_checkpoint(checkpoint))
    if not isinstance(data, PreparedData):
        data = prepare_data(data_config, config.model, config.preset, config.model_overrides)
    results: dict[str, Any] = {"checkpoint": str(checkpoint), "backend": backend, "model": meta["name"],
                               "parameters": None, "splits": {}}
    if isinstance(runner, TorchRunner):
        results["parameters"] = runner.model.num_parameters()
    for split in splits:
        started = time.time()
        result = evaluate_split(runner, data, split, config.eval_batch_size)
        result["seconds"] = time.time() - started
        results["splits"][split] = result
        log(format_result(result))
    return results


def checkpoint_train_config(checkpoint: str | Path, meta: dict) -> TrainConfig:
    """The training config a checkpoint recorded (which data, model and preset it expects)."""
    from common.config import from_dict

    if not meta.get("train_config"):
        raise StrataError(f"{checkpoint}: no training config recorded; cannot tell which data it expects")
    return from_dict(TrainConfig, meta["train_config"], where=f"{checkpoint}/config.json")


def diagnose_checkpoint(checkpoint: str | Path, data: str | None = None, split: str | None = None,
                        videos: int = 200, log=print) -> dict[str, Any]:
    """``training.engine.diagnose`` on a checkpoint and its data (or ``data``), on ``split`` (default: the
    first test split)."""
    from training.checkpoint import load_model_checkpoint, read_meta
    from training.engine.diagnose import diagnose, format_diagnosis

    config = checkpoint_train_config(checkpoint, read_meta(checkpoint))
    split = split or config.data.test_splits[0]
    data_config = config.data if data is None else replace(config.data, path=str(Path(data).resolve()), synth=None)
    check_dataset(data_config, ("trn", split))
    model = load_model_checkpoint(checkpoint)
    prepared = prepare_data(data_config, config.model, config.preset, config.model_overrides)
    result = diagnose(model, prepared, split, videos=videos, batch_size=config.optim.batch_size, seed=config.seed)
    result["checkpoint"] = str(checkpoint)
    log(format_diagnosis(result))
    return result
