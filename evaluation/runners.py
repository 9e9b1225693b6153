"""The runners of ``strata evaluate --backend onnx|triton``: a checkpoint's exported version, run by ONNX Runtime
or by a Triton server (torch-free at import).

The version is the one exported from the checkpoint (:func:`export.versions.checkpoint_version`), or the one asked
for, which must carry the checkpoint's weights hash.
"""
from __future__ import annotations

from pathlib import Path

from common.connect import service_settings, triton_client, triton_url
from common.errors import ConfigError
from common.settings import load_settings
from export.versions import checkpoint_version

BACKENDS = ("onnx", "triton")


def check_triton_live(url: str) -> None:
    """A clear error, naming --url, when no Triton server answers at ``url``."""
    from tritonclient.utils import InferenceServerException

    from serving.triton.server import ServerError

    try:
        live = triton_client(url).is_server_live(client_timeout=10)
        reason = "" if live else "it is not live"
    except InferenceServerException as err:
        live, reason = False, err.message() or str(err)
    if not live:
        raise ServerError(f"no Triton server answers at {url} ({reason}); start one with `strata triton start`, "
                          f"check `strata triton status`, or pass --url HOST:GRPC_PORT of a running server")


def runner_for_checkpoint(checkpoint: str | Path, backend: str, repo: str | Path | None = None,
                          version: int | None = None, url: str | None = None):
    """An ONNX Runtime (``onnx``) or Triton (``triton``) runner of the checkpoint's exported version.

    ``repo`` defaults to the ``model_repository`` setting, and for the triton backend to the running local
    server's repository first; ``url`` (triton) resolves as :func:`common.connect.triton_url` says."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend {backend!r}: expected {' or '.join(BACKENDS)}")
    if backend == "triton":
        url = triton_url(url=url)
        check_triton_live(url)
    if repo is None:
        settings = load_settings()
        repo = (service_settings(settings) if backend == "triton" else settings).repository
    repo = Path(repo)
    base, version = checkpoint_version(checkpoint, repo, version)
    if backend == "onnx":
        from export.runner import OnnxRunner

        return OnnxRunner(repo, base, version)
    from serving.triton.client import TritonTowers

    return TritonTowers.from_repository(url, repo, base, version)
