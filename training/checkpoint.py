"""Checkpoints as plain folders that load without unpickling arbitrary objects.

A checkpoint folder holds ``model.pt`` (a state dict), ``config.json`` (model name, resolved model config,
and the training config that produced it) and, for training checkpoints, ``optimizer.pt``,
``scheduler.pt`` and ``state.json`` (epoch, best validation rsum, history). Tensors are loaded with
``torch.load(weights_only=True)``: only tensors and plain containers, never code.

Checkpoints saved before an inert parameter was removed still load: the entries the modules declare in
``legacy_inert_keys`` (``training.models.common.legacy``) are dropped, and that is said once; any other
mismatch is refused by name.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from common.errors import StrataError
from training.models.common.legacy import InertLegacyKey

MODEL_FILE = "model.pt"
CONFIG_FILE = "config.json"
OPTIMIZER_FILE = "optimizer.pt"
SCHEDULER_FILE = "scheduler.pt"
STATE_FILE = "state.json"


def save_checkpoint(folder: Path, model, *, train_config: dict | None = None, optimizer=None, scheduler=None,
                    state: dict | None = None) -> Path:
    """Write a checkpoint folder atomically (written beside, then renamed into place)."""
    from common.config import to_dict

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


def _cut(entry: InertLegacyKey, name: str, old: torch.Tensor, size: int) -> torch.Tensor:
    """``old`` without the removed part of ``entry``; refused unless the rest has the current ``size``."""
    index, parts = entry.part
    if old.shape[0] % parts or old.shape[0] // parts * (parts - 1) != size:
        raise StrataError(f"{name} has {old.shape[0]} rows: not the {parts} equal parts of a legacy entry "
                          f"whose part {index} was removed, leaving {size}")
    step = old.shape[0] // parts
    return torch.cat([old[:index * step], old[(index + 1) * step:]])


def _declared_inert_keys(model) -> dict[str, tuple[InertLegacyKey, str | None]]:
    """Every inert legacy entry ``model``'s modules declare: full name -> (declaration, full name of the
    running mean it folds into, or None)."""
    def full(prefix: str, key: str) -> str:
        return f"{prefix}.{key}" if prefix else key

    return {full(prefix, entry.key): (entry, entry.folded_into and full(prefix, entry.folded_into))
            for prefix, module in model.named_modules() for entry in getattr(module, "legacy_inert_keys", ())}


def _legacy_upgrades(model, state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """For each declared inert entry that a legacy ``state`` still holds: its name -> ``None`` (the entry is
    dropped) or a function that cuts the removed part out of a tensor shaped like it (the entry stays, smaller)."""
    current = model.state_dict()
    upgrades: dict[str, Any] = {}
    for name, (entry, _) in _declared_inert_keys(model).items():
        if name not in state:
            continue
        if entry.part is None and name not in current:
            upgrades[name] = None
        elif entry.part is not None and name in current and state[name].shape != current[name].shape:
            size = current[name].shape[0]
            upgrades[name] = lambda t, entry=entry, name=name, size=size: _cut(entry, name, t, size)
    return upgrades


def _upgrade_model_state(model, state: dict[str, torch.Tensor], upgrades: dict[str, Any]) -> dict[str, torch.Tensor]:
    """``state`` with ``upgrades`` applied; a dropped bias that fed a BatchNorm moves into its running mean."""
    state = dict(state)
    for name, (_, mean) in _declared_inert_keys(model).items():
        if name in upgrades and mean is not None:
            state[mean] = state[mean] - state[name]
    for name, cut in upgrades.items():
        if cut is None:
            del state[name]
        else:
            state[name] = cut(state[name])
    return state


def _upgrade_optimizer_state(model, legacy: dict[str, torch.Tensor], optimizer_state: dict,
                             upgrades: dict[str, Any]) -> dict:
    """An optimiser state saved with the legacy model, fitted to ``model``: its per-parameter entries (indexed in
    the legacy parameter order, which the legacy state dict keeps) lose the dropped parameters' and are cut like
    their parameters. One parameter group, as the trainer builds."""
    names = [n for n, _ in model.named_parameters()]
    legacy_names = [n for n in legacy if n in names or (n in upgrades and upgrades[n] is None)]
    groups = optimizer_state["param_groups"]
    if len(groups) != 1 or len(groups[0]["params"]) != len(legacy_names):
        raise StrataError("the optimiser state does not fit the checkpoint's parameters")
    by_name = dict(zip(legacy_names, groups[0]["params"]))
    per_param = {}
    for new_id, name in enumerate(names):
        saved = optimizer_state["state"].get(by_name[name])
        if saved is not None:
            cut = upgrades.get(name)
            per_param[new_id] = {k: cut(v) if cut is not None and torch.is_tensor(v) and v.dim() > 0 else v
                                 for k, v in saved.items()}
    return {"state": per_param, "param_groups": [{**groups[0], "params": list(range(len(names)))}]}


def _read_model_state(folder: Path, model) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]]:
    """(the weights in ``folder`` fitted to ``model``, as saved, the upgrades applied): inert legacy entries are
    dropped, and that is said once; any other mismatch is refused by name."""
    state = torch.load(folder / MODEL_FILE, map_location="cpu", weights_only=True)
    upgrades = _legacy_upgrades(model, state)
    fitted = _upgrade_model_state(model, state, upgrades)
    current = model.state_dict()
    missing = sorted(set(current) - set(fitted))
    unexpected = sorted(set(fitted) - set(current))
    wrong = sorted(n for n in set(current) & set(fitted) if fitted[n].shape != current[n].shape)
    if missing or unexpected or wrong:
        raise StrataError(f"{folder}/{MODEL_FILE} does not fit model {model.name!r}: missing {missing[:5]}, "
                          f"unexpected {unexpected[:5]}, wrong shape {wrong[:5]}")
    if upgrades:
        print(f"{folder}: saved before inert parameters were removed; dropped {sorted(upgrades)} "
              "(the outputs are the same)", file=sys.stderr, flush=True)
    return fitted, state, upgrades


def load_model_checkpoint(folder: str | Path, expected_name: str | None = None):
    """Rebuild the model from the checkpoint's own resolved config and load its weights (strictly)."""
    from training.models.factory import create_model, resolve_config

    folder = Path(folder)
    meta = read_meta(folder)
    if expected_name is not None and meta["name"] != expected_name:
        raise StrataError(f"{folder} holds a {meta['name']!r} model, not {expected_name!r}")
    model = create_model(meta["name"], resolve_config(meta["name"], meta["config"]))
    model.load_state_dict(_read_model_state(folder, model)[0])
    return model.eval()


def load_training_state(folder: str | Path, model, optimizer, scheduler) -> dict:
    """Restore model, optimiser and schedule from a training checkpoint; returns its ``state.json``."""
    folder = Path(folder)
    fitted, saved, upgrades = _read_model_state(folder, model)
    model.load_state_dict(fitted)
    optimizer_state = torch.load(folder / OPTIMIZER_FILE, map_location="cpu", weights_only=True)
    if upgrades:
        optimizer_state = _upgrade_optimizer_state(model, saved, optimizer_state, upgrades)
    optimizer.load_state_dict(optimizer_state)
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
