"""Serve versions side by side: ``strata triton swap NAME --version N [--retire M]`` (torch-free).

Triton loads and unloads whole models, and its default version policy serves only the latest version. A swap
reloads the model through ``load_model`` with its own config whose ``version_policy`` is ``specific`` over the
versions wanted: the versions already loaded keep serving while the new one loads, so callers that pin a served
version on each request see no failure; they move to N, then ``--retire M`` drops M the same way.
``NAME`` is one Triton model, or a model base (``vsepp_fast``) meaning its text, video and scorer models together;
a model the server has not loaded yet is loaded first with its own config.
"""
from __future__ import annotations

import json
from pathlib import Path

from tritonclient.utils import InferenceServerException

from common.connect import triton_client
from common.errors import ConfigError, StrataError
from common.repository import PARTS, TEXT_BACKBONE, model_name, verify_version, versions


class SwapError(StrataError):
    """A swap did not happen (Triton refused the new version set, or a step of a whole-system swap failed); what
    was served or active before stays so."""


def served_versions(client) -> dict[str, list[int]]:
    """Every model of the repository with its READY versions (possibly none)."""
    out: dict[str, list[int]] = {}
    for m in client.get_model_repository_index(as_json=True).get("models", []):
        versions = out.setdefault(m["name"], [])
        if m.get("state") == "READY" and m.get("version"):
            versions.append(int(m["version"]))
    return {name: sorted(v) for name, v in out.items()}


def targets(name: str, served: dict[str, list[int]]) -> list[str]:
    if name in served:
        return [name]
    parts = [model_name(name, p) for p in PARTS if model_name(name, p) in served]
    if not parts:
        raise ConfigError(f"no model {name!r} (nor {name}_text/_video/_scorer) in the server's repository; "
                          f"it holds {', '.join(sorted(served)) or 'nothing'}")
    return parts


def check_on_disk(repo: str | Path, name: str, version: int) -> None:
    """``version`` of ``name`` (a Triton model, or a base with its parts) must be in the repository."""
    repo = Path(repo)
    models = [name] if (repo / name).is_dir() else [model_name(name, p) for p in PARTS]
    present = [m for m in models if (repo / m).is_dir()]
    if not present:
        return  # an unknown name: the server's index says which it holds
    missing = [m for m in present if version not in versions(repo, m)]
    if missing:
        held = versions(repo, missing[0])
        raise ConfigError(f"version {version} of {name} is not in the repository {repo} (it holds version(s) "
                          f"{', '.join(map(str, held)) or 'none'}); export it first: "
                          f"strata export CHECKPOINT --repo {repo} --version {version}")


def swap(url: str, repo: str | Path, name: str, version: int | None = None, retire: int | None = None,
         pinned_manifest: str | None = None) -> dict[str, list[int]]:
    """Make ``version`` served beside the current versions and/or drop ``retire``; returns the versions served.
    ``repo`` is the server's repository: a ``version`` not exported there is refused before Triton is asked, and
    every version Triton is asked to (re)load has its files checked first (:func:`common.repository.verify_version`;
    ``pinned_manifest``: the sha256 ``version``'s manifest must have)."""
    if version is None and retire is None:
        raise ConfigError("give --version N to add, --retire M to drop, or both")
    if version is not None and version == retire:
        raise ConfigError(f"version {version} cannot be both added and retired")
    if version is not None:
        check_on_disk(repo, name, version)
    client = triton_client(url)
    try:
        return _load(client, Path(repo), name, version, retire, pinned_manifest)
    finally:
        client.close()


def ensure_loaded(triton_url: str, repo: Path, base: str, version: int, backbone: int | None,
                  pinned_manifest: str | None = None) -> None:
    """Triton serves ``version`` of ``base``'s three models (and ``backbone`` of the text backbone) beside what it
    served already; every version loaded is checked on disk first (``pinned_manifest``: the sha256 that ``version``'s
    manifest must have, from the active-version record)."""
    client = triton_client(triton_url)
    try:
        wanted = [(model_name(base, part), version, pinned_manifest) for part in PARTS]
        if backbone is not None:
            wanted.append((TEXT_BACKBONE, backbone, None))
        for name, v, pin in wanted:
            if not client.is_model_ready(name, str(v)):
                swap(triton_url, repo, name, v, pinned_manifest=pin)
    finally:
        client.close()


def _load(client, repo: Path, name: str, version: int | None, retire: int | None,
          pinned_manifest: str | None) -> dict[str, list[int]]:
    served = served_versions(client)
    plan = {}
    for target in targets(name, served):
        current = served[target]
        if retire is not None and retire not in current:
            raise ConfigError(f"{target}: version {retire} is not served (served: {current or 'none'})")
        wanted = sorted((set(current) | ({version} if version is not None else set())) - {retire})
        if not wanted:
            raise ConfigError(f"{target}: retiring version {retire} would leave no version served")
        plan[target] = wanted
    for target, wanted in plan.items():   # every file of every version checked before Triton loads any
        first_load = [] if served[target] else versions(repo, target)[-1:]   # what a first load reads (below)
        for v in sorted(set(wanted) | set(first_load)):
            verify_version(repo, target, v, pinned_manifest if v == version else None)
    for target, wanted in plan.items():
        try:
            if not served[target]:   # not loaded (another model than Triton started with): loading its latest
                client.load_model(target)   # version with the repository's config gives the config to amend
            config = client.get_model_config(target, as_json=True)["config"]
            config["version_policy"] = {"specific": {"versions": wanted}}
            client.load_model(target, config=json.dumps(config))
        except InferenceServerException as err:
            raise SwapError(f"{target}: Triton refused versions {wanted}: {err.message()}") from None
        not_ready = [v for v in wanted if not client.is_model_ready(target, str(v))]
        if not_ready:
            raise SwapError(f"{target}: version(s) {not_ready} not ready after the load (see the server log)")
    return plan
