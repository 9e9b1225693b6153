"""Which model version the whole service answers with: one record beside the index (torch-free).

The record (``{"model": base, "version": N, "manifest_sha256": ...}`` under :data:`ACTIVE_KEY` in Milvus's state
collection; the hash pins the version's manifest, which records the hash of each of its files) is read by
every gateway replica, flipped by ``strata swap`` and read by ``strata up``; this module is the only one that reads
or writes it. When there is none yet, the policy is: the latest version of the ``model`` setting, or of the only
model exported.
"""
from __future__ import annotations

from pathlib import Path

from common.repository import latest_version, manifest_sha256, model_bases
from common.settings import Settings

ACTIVE_KEY = "active_model"


def read_active(index) -> tuple[str, int] | None:
    """(model base, version) the record names, or None when there is no record."""
    record = index.get_state(ACTIVE_KEY)
    return None if record is None else (str(record["model"]), int(record["version"]))


def active_pin(index) -> str | None:
    """The sha256 the active version's manifest must have, or None when there is no record."""
    record = index.get_state(ACTIVE_KEY)
    return None if record is None else record.get("manifest_sha256")


def set_active(index, repo: Path, base: str, version: int) -> None:
    """Make ``base`` version ``version`` of ``repo`` active, pinning its manifest's sha256."""
    index.set_state(ACTIVE_KEY, {"model": base, "version": int(version),
                                 "manifest_sha256": manifest_sha256(repo, base, version)})


def default_version(settings: Settings) -> tuple[tuple[str, int] | None, str]:
    """((base, version), "") of the version to activate when none is: the latest of the ``model`` setting, or of
    the only model exported; else (None, why not)."""
    repo = settings.repository
    bases = model_bases(repo)
    base = settings.model
    if not base and len(bases) != 1:
        return None, (f"no exported model in {repo}: strata export CHECKPOINT" if not bases else
                      f"{repo} holds several models ({', '.join(bases)}); choose one with the setting model "
                      f"(STRATA_MODEL or --model)")
    base = base or bases[0]
    if base not in bases:
        return None, f"model {base!r} is not exported in {repo} (it holds: {', '.join(bases) or 'nothing'})"
    return (base, latest_version(repo, base)), ""


def active_version(settings: Settings, index) -> tuple[tuple[str, int] | None, str]:
    """The version the record names, or the default one (then recorded), or (None, why not)."""
    active = read_active(index)
    if active is not None:
        return active, ""
    active, problem = default_version(settings)
    if active is not None:
        set_active(index, settings.repository, *active)
    return active, problem
