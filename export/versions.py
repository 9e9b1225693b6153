"""Find a checkpoint's exported version in the model repository and run it (torch-free).

``strata evaluate --backend onnx|triton`` scores a checkpoint through its exported graphs: the version is the one
whose manifest records the checkpoint's weights hash (or the one asked for, which must carry that hash).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from common.repository import model_name, read_manifest, versions
from common.errors import ConfigError

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


def running_server():
    """The state of the Triton server ``strata triton start`` recorded, or None when none is running."""
    from serving.triton.server import TritonServer

    return TritonServer().state()


def resolve_repository(repo: str | Path | None, backend: str = "onnx") -> Path:
    """``repo`` as given; else, for the triton backend, the repository of the running server; else the setting
    ``model_repository``."""
    if repo is not None:
        return Path(repo)
    if backend == "triton":
        state = running_server()
        if state is not None:
            return Path(state.repo)
    from common.settings import load_settings

    return load_settings().repository


def resolve_triton_url(url: str | None) -> str:
    """``url`` as given; else the gRPC address the running server recorded; else the settings' address."""
    if url:
        return url
    state = running_server()
    if state is not None:
        return state.grpc_url
    from common.settings import load_settings

    return load_settings().triton_url


def check_triton_live(url: str) -> None:
    """A clear error, naming --url, when no Triton server answers at ``url``."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    from serving.triton.server import ServerError

    try:
        live = grpcclient.InferenceServerClient(url).is_server_live(client_timeout=10)
        reason = "" if live else "it is not live"
    except InferenceServerException as err:
        live, reason = False, err.message() or str(err)
    if not live:
        raise ServerError(f"no Triton server answers at {url} ({reason}); start one with `strata triton start`, "
                          f"check `strata triton status`, or pass --url HOST:GRPC_PORT of a running server")


def runner_for_checkpoint(checkpoint: str | Path, backend: str, repo: str | Path | None = None,
                          version: int | None = None, url: str | None = None):
    """An ONNX Runtime (``onnx``) or Triton (``triton``) runner of the checkpoint's exported version; ``repo`` and
    ``url`` default as :func:`resolve_repository` and :func:`resolve_triton_url` say."""
    if backend not in ("onnx", "triton"):
        raise ConfigError(f"backend {backend!r}: expected onnx or triton")
    repo = resolve_repository(repo, backend)
    if backend == "triton":
        url = resolve_triton_url(url)
        check_triton_live(url)
    base, version = checkpoint_version(checkpoint, repo, version)
    if backend == "onnx":
        from export.runner import OnnxRunner

        return OnnxRunner(repo, base, version)
    from serving.triton.client import TritonTowers

    return TritonTowers.from_repository(url, repo, base, version)
