"""A benchmark's own stack: a scratch STRATA_HOME, one model exported into its repository, the local parts brought
up on free ports and down again after, and the caller's STRATA_HOME restored (the scratch one is deleted)."""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator

from common.errors import StrataError

FREE_PORTS = {name: 0 for name in ("gateway_port", "gateway_metrics_port", "http_port", "milvus_port",
                                   "triton_http_port", "triton_grpc_port", "triton_metrics_port")}


@contextlib.contextmanager
def scratch_home(prefix: str) -> Iterator[str]:
    """A temporary STRATA_HOME for the block; the one before (or none) is restored after."""
    with tempfile.TemporaryDirectory(prefix=prefix) as home:
        previous = os.environ.get("STRATA_HOME")
        os.environ["STRATA_HOME"] = home
        try:
            yield home
        finally:
            if previous is None:
                os.environ.pop("STRATA_HOME", None)
            else:
                os.environ["STRATA_HOME"] = previous


@contextlib.contextmanager
def cleaned_up_on_sigterm() -> Iterator[None]:
    """SIGTERM ends the block as Ctrl-C would, so that its clean-up (the stack brought down, the scratch home
    deleted) runs; Python's default would end the process with its servers left running."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def private_stack(prefix: str, export: list[str], what: str):
    """In a scratch home (``prefix`` names its folder): ``strata export *export --repo REPO`` into its model
    repository (its output on stderr: stdout may carry a JSON report), then the stack up on free ports; yields
    (settings, the stack's state) and brings it down after. ``what`` (the command and the model) starts its error."""
    from clients.cli import main as strata
    from common.settings import Settings
    from deploy.stack import down, up

    with cleaned_up_on_sigterm(), scratch_home(prefix):
        settings = Settings(**FREE_PORTS)
        with contextlib.redirect_stdout(sys.stderr):
            exported = strata(["export", *export, "--repo", str(settings.repository)])
        if exported != 0:
            raise StrataError(f"{what}: the export failed (see above)")
        state = up(settings, log=lambda *_: None)
        try:
            yield settings, state
        finally:
            down(log=lambda *_: None)
