"""The per-worker training loop: plain PyTorch; Ray Train only wraps it (``training.engine.ray_job``).

In-batch negatives are per worker: each of N workers scores its own ``batch_size / N`` pairs and DDP averages
the gradients. Gathering the other workers' tower outputs would enlarge the negative pool, but the
multi-level outputs (per-node and per-frame matrices padded to each worker's own batch) differ in shape
across workers, and the scorer's cost grows with the square of the gathered batch; per-worker negatives keep
the loss exactly the reference's when N = 1, which is the setting the papers report.

Determinism and resume: the order of pairs in epoch e is a permutation seeded by (seed, e), and the torch
RNG is reseeded at each epoch start, so a run resumed from the checkpoint of epoch e continues exactly as the
uninterrupted run would (same model, optimiser and schedule state, same batches, same dropout).
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from common.config import to_dict
from training.checkpoint import load_training_state, save_checkpoint
from training.engine.config import BEST, LAST, TrainConfig, run_dir
from training.engine.data import PreparedData, load_prepared
from training.engine.evaluate import evaluate_split
from training.engine.runner import TorchRunner, to_tensors
from training.models.factory import create_model


@dataclass
class WorkerContext:
    """Where this worker stands among its peers, and how it reports (Ray or in-process)."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    # Per epoch: the metrics, and on rank 0 the folder of the checkpoint just written (Ray Train keeps it in its
    # storage and hands it back after a worker failure). None when training alone.
    report: Optional[Callable[[dict, Optional[Path]], None]] = None
    # Data-parallel hooks (torch.distributed): make every worker start from rank 0's weights, and average
    # gradients after each backward pass. None when training alone.
    broadcast_parameters: Optional[Callable[[torch.nn.Module], None]] = None
    average_gradients: Optional[Callable[[torch.nn.Module], None]] = None


def build_model(config: TrainConfig, data: PreparedData):
    overrides = tuple(config.model_overrides) + tuple(data.model_overrides())
    return create_model(config.model, config.preset, overrides=overrides)


def make_scheduler(config: TrainConfig, optimizer):
    optim = config.optim
    if optim.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=optim.plateau_factor, patience=optim.plateau_patience)
    if optim.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=optim.step_epochs, gamma=optim.step_gamma)
    return None


def epoch_order(num_pairs: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(num_pairs)


def train_worker(config: TrainConfig, ctx: WorkerContext, log: Callable[[str], None] = print,
                 resume: Optional[Path] = None) -> dict:
    """Train ``config`` on this worker; rank 0 writes checkpoints and the per-epoch metrics. Returns the state.
    ``resume``: the checkpoint folder to go on from (Ray Train's, after a worker failure); by default the run's own
    ``last`` checkpoint when there is one."""
    if config.threads_per_worker:
        torch.set_num_threads(config.threads_per_worker)
    torch.manual_seed(config.seed)
    data = load_prepared(config.data, config.model, config.preset, config.model_overrides)
    model = build_model(config, data).to(ctx.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.optim.lr, weight_decay=config.optim.weight_decay)
    scheduler = make_scheduler(config, optimizer)
    folder = run_dir(config)
    state = {"epoch": 0, "best_rsum": -1.0, "best_epoch": -1, "history": [], "finished": False}
    if resume is None and (folder / LAST).is_dir():
        resume = folder / LAST
    if resume is not None:
        state = load_training_state(resume, model, optimizer, scheduler)
        log(f"resuming {config.run_name} after epoch {state['epoch']} (best rsum {state['best_rsum']:.2f}) "
            f"from {resume}")
        if state["finished"] and state["epoch"] < config.optim.epochs and not state.get("stopped_early"):
            # optim.epochs was raised (the session checked that the schedule allows it): train on to the new end
            state["finished"] = False
            state.setdefault("extensions", []).append({"from_epoch": state["epoch"], "to_epoch": config.optim.epochs})
            log(f"extending {config.run_name} from epoch {state['epoch']} to {config.optim.epochs}")
    if ctx.broadcast_parameters is not None:
        ctx.broadcast_parameters(model)
    pairs = data.pairs("trn")
    steps = math.ceil(len(pairs) / config.optim.batch_size)
    stale = 0 if not state["history"] else state["epoch"] - 1 - state["best_epoch"]
    for epoch in range(state["epoch"], config.optim.epochs):
        if state["finished"]:
            break
        torch.manual_seed(config.seed * 100_003 + epoch)
        order = epoch_order(len(pairs), config.seed, epoch)
        model.train()
        started, total, parts = time.time(), 0.0, {}
        bar = _progress(steps, f"epoch {epoch + 1}/{config.optim.epochs}", ctx.rank)
        twins_on = epoch + 1 >= config.data.role_switch_from_epoch
        for step in range(steps):
            global_batch = order[step * config.optim.batch_size:(step + 1) * config.optim.batch_size]
            if len(global_batch) < 2 * ctx.world_size:  # every worker needs two pairs (one negative); all skip alike
                continue
            local = np.array_split(global_batch, ctx.world_size)[ctx.rank]  # even shares, also of a short last batch
            batch = data.train_batch([pairs[i] for i in local], with_twins=twins_on)
            out = model(to_tensors(batch, batch.keys(), ctx.device))
            optimizer.zero_grad()
            out["loss"].backward()
            if ctx.average_gradients is not None:
                ctx.average_gradients(model)
            if config.optim.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
            optimizer.step()
            total += out["loss"].item()
            for k, v in out.items():
                parts[k] = parts.get(k, 0.0) + v.item()
            if bar is not None:
                bar.set_postfix(loss=f"{total / (step + 1):.4f}")
                bar.update()
        if bar is not None:
            bar.close()
        train_time = time.time() - started
        val = evaluate_split(TorchRunner(model, ctx.device), data, config.data.val_split,
                             config.eval_batch_size, selection=False)
        model.train()
        rsum = val["fused"]["rsum"]
        lr = optimizer.param_groups[0]["lr"]
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(rsum)
        elif scheduler is not None:
            scheduler.step()
        # Before data.role_switch_from_epoch the twins are not yet trained on: no best checkpoint, no staleness.
        improved = twins_on and rsum > state["best_rsum"]
        stale = 0 if improved or not twins_on else stale + 1
        row = {"epoch": epoch + 1, "train_loss": total / max(steps, 1),
               "loss_parts": {k: v / max(steps, 1) for k, v in parts.items()},
               "val": val["fused"], "val_levels": {k: v["rsum"] for k, v in val["levels"].items()},
               "lr": lr, "epoch_seconds": train_time, "eval_seconds": time.time() - started - train_time}
        state["history"].append(row)
        state["epoch"] = epoch + 1
        if improved:
            state["best_rsum"], state["best_epoch"] = rsum, epoch + 1
        patience = config.optim.early_stop_patience
        state["stopped_early"] = state["epoch"] < config.optim.epochs and bool(patience and stale >= patience)
        state["finished"] = state["epoch"] >= config.optim.epochs or state["stopped_early"]
        if ctx.rank == 0:
            train_dict = to_dict(config)
            save_checkpoint(folder / LAST, model, train_config=train_dict, optimizer=optimizer,
                            scheduler=scheduler, state=state)
            if improved:
                save_checkpoint(folder / BEST, model, train_config=train_dict, state=state)
            (folder / "metrics.json").write_text(json.dumps(state["history"], indent=2))
        best = (f"best {state['best_rsum']:.2f} @ {state['best_epoch']}" if twins_on
                else f"no twins before epoch {config.data.role_switch_from_epoch}, no best yet")
        log(f"epoch {epoch + 1}: loss {row['train_loss']:.4f}  val rsum {rsum:.2f}  ({best})  lr {lr:.2e}  "
            f"{train_time:.1f}s")
        if ctx.report is not None:
            ctx.report({"epoch": epoch + 1, "train_loss": row["train_loss"], "val_rsum": rsum, "lr": lr},
                       folder / LAST if ctx.rank == 0 else None)
    return state


def _progress(total: int, desc: str, rank: int):
    """A tqdm bar on an interactive terminal for rank 0; None in logs (plain per-epoch lines go there)."""
    if rank != 0 or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)
