"""Checkpoints as plain folders that load without unpickling arbitrary objects.

A checkpoint folder holds ``model.pt`` (a state dict), ``config.json`` (model name, resolved model config,
and the training config that produced it) and, for training checkpoints, ``optimizer.pt``,
``scheduler.pt`` and ``state.json`` (epoch, best validation rsum, history). Tensors are loaded with
``torch.load(weights_only=True)``: only tensors and plain containers, never code.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from training.errors import StrataError

MODEL_FILE = "model.pt"
CONFIG_FILE = "config.json"
OPTIMIZER_FILE = "optimizer.pt"
SCHEDULER_FILE = "scheduler.pt"
STATE_FILE = "state.json"


def save_checkpoint(folder: Path, model, *, train_config: dict | None = None, optimizer=None, scheduler=None,
                    state: dict | None = None) -> Path:
    """Write a checkpoint folder atomically (written beside, then renamed into place)."""
    from training.config import to_dict

    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(model.state_dict(), tmp / MODEL_FILE)
    meta = {"name": model.name, "config": to_dict(model.config), "train_config": train_config}
    (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
    if optimizer is not None:
        torch.save(optimizer.state_dict(), tmp / OPTIMIZER_FILE)
    if scheduler is not None:
        torch.save(scheduler.state_dict(), tmp / SCHEDULER_FILE)
    if state is not None:
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=2, sort_keys=True))
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def read_meta(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise StrataError(f"{folder} is not a Strata checkpoint (no {CONFIG_FILE})"
            "; a checkpoint is a run's best/ or last/ folder, e.g. $STRATA_HOME/runs/<run>/best")
    return json.loads(path.read_text())


def load_model_checkpoint(folder: str | Path, expected_name: str | None = None):
    """Rebuild the model from the checkpoint's own resolved config and load its weights (strictly)."""
    from training.models.factory import create_model, resolve_config

    folder = Path(folder)
    meta = read_meta(folder)
    if expected_name is not None and meta["name"] != expected_name:
        raise StrataError(f"{folder} holds a {meta['name']!r} model, not {expected_name!r}")
    model = create_model(meta["name"], resolve_config(meta["name"], meta["config"]))
    state = torch.load(folder / MODEL_FILE, map_location="cpu", weights_only=True)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise StrataError(f"{folder}/{MODEL_FILE} does not fit model {meta['name']!r}: "
                          f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")
    return model.eval()


def load_training_state(folder: str | Path, model, optimizer, scheduler) -> dict:
    """Restore model, optimiser and schedule from a training checkpoint; returns its ``state.json``."""
    folder = Path(folder)
    model.load_state_dict(torch.load(folder / MODEL_FILE, map_location="cpu", weights_only=True))
    optimizer.load_state_dict(torch.load(folder / OPTIMIZER_FILE, map_location="cpu", weights_only=True))
    if scheduler is not None and (folder / SCHEDULER_FILE).is_file():
        scheduler.load_state_dict(torch.load(folder / SCHEDULER_FILE, map_location="cpu", weights_only=True))
    return json.loads((folder / STATE_FILE).read_text())


def checkpoint_hash(folder: str | Path) -> str:
    """sha256 of the weights file: identifies the checkpoint an export was made from."""
    digest = hashlib.sha256()
    with open(Path(folder) / MODEL_FILE, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
