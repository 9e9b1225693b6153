"""Strata's home folder: datasets, feature caches, checkpoints, reports and server state live under it.

``STRATA_HOME`` (default ``~/.strata``), always resolved to an absolute path, so a Ray job running from a
copied working directory writes to the same place as the command that submitted it.
"""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "STRATA_HOME"
DEFAULT = "~/.strata"


def strata_home() -> Path:
    home = Path(os.environ.get(ENV_VAR) or DEFAULT).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def home_path(*parts: str) -> Path:
    """A path under the home (parent folders created)."""
    path = strata_home().joinpath(*parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
