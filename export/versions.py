"""Which version in a model repository was exported from a checkpoint (torch-free).

An export records the checkpoint's weights sha256 in its manifest; the version exported from a checkpoint is the
one whose manifest carries that hash (``strata evaluate --backend onnx|triton``, ``strata demo``).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from common.errors import ConfigError
from common.repository import model_name, read_manifest, versions

CHECKPOINT_META = "config.json"   # training.checkpoint's files: its metadata ...
CHECKPOINT_WEIGHTS = "model.pt"   # ... and the weights whose sha256 identifies it (training.checkpoint.checkpoint_hash)


def weights_sha256(checkpoint: str | Path) -> str:
    path = Path(checkpoint) / CHECKPOINT_WEIGHTS
    if not path.is_file():
        raise ConfigError(f"{checkpoint} is not a Strata checkpoint (no {CHECKPOINT_WEIGHTS})"
            "; a checkpoint is a run's best/ or last/ folder, e.g. $STRATA_HOME/runs/<run>/best")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_base(checkpoint: str | Path) -> str:
    """``<name>_<preset>`` of a checkpoint, from its metadata."""
    path = Path(checkpoint) / CHECKPOINT_META
    if not path.is_file():
        raise ConfigError(f"{checkpoint} is not a Strata checkpoint (no {CHECKPOINT_META})"
            "; a checkpoint is a run's best/ or last/ folder, e.g. $STRATA_HOME/runs/<run>/best")
    meta = json.loads(path.read_text())
    preset = (meta.get("train_config") or {}).get("preset")
    if not preset:
        raise ConfigError(f"{path}: no training preset recorded, so its Triton model name is unknown")
    return f"{meta['name']}_{preset}"


def checkpoint_version(checkpoint: str | Path, repo: str | Path, version: int | None = None) -> tuple[str, int]:
    """(base, version) of the checkpoint's export in ``repo``."""
    base, sha = checkpoint_base(checkpoint), weights_sha256(checkpoint)
    candidates = [version] if version is not None else versions(Path(repo), model_name(base, "text"))
    for v in reversed(candidates):
        if read_manifest(Path(repo), base, v)["source"].get("checkpoint_sha256") == sha:
            return base, v
    where = f"version {version}" if version is not None else f"any version ({candidates or 'none'})"
    raise ConfigError(f"{repo}: {where} of {base} was not exported from {checkpoint} (weights sha256 {sha[:12]}...); "
                      f"run strata export {checkpoint} --repo {repo}")
