"""Find a checkpoint's exported version in the model repository and run it (torch-free).

``strata evaluate --backend onnx|triton`` scores a checkpoint through its exported graphs: the version is the one
whose manifest records the checkpoint's weights hash (or the one asked for, which must carry that hash).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from serving.triton.repository import model_name, read_manifest, versions
from training.errors import ConfigError

CHECKPOINT_META = "config.json"   # training.checkpoint's files: its metadata ...
CHECKPOINT_WEIGHTS = "model.pt"   # ... and the weights whose sha256 identifies it (training.checkpoint.checkpoint_hash)


def weights_sha256(checkpoint: str | Path) -> str:
    path = Path(checkpoint) / CHECKPOINT_WEIGHTS
    if not path.is_file():
        raise ConfigError(f"{checkpoint} is not a Strata checkpoint (no {CHECKPOINT_WEIGHTS})")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_base(checkpoint: str | Path) -> str:
    """``<name>_<preset>`` of a checkpoint, from its metadata."""
    path = Path(checkpoint) / CHECKPOINT_META
    if not path.is_file():
        raise ConfigError(f"{checkpoint} is not a Strata checkpoint (no {CHECKPOINT_META})")
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


def runner_for_checkpoint(checkpoint: str | Path, backend: str, repo: str | Path = "model_repository",
                          version: int | None = None, url: str = "127.0.0.1:8001"):
    """An ONNX Runtime (``onnx``) or Triton (``triton``) runner of the checkpoint's exported version."""
    base, version = checkpoint_version(checkpoint, repo, version)
    if backend == "onnx":
        from serving.onnx_runner import OnnxRunner

        return OnnxRunner(repo, base, version)
    if backend == "triton":
        from serving.triton.client import TritonTowers

        return TritonTowers.from_repository(url, repo, base, version)
    raise ConfigError(f"backend {backend!r}: expected onnx or triton")
