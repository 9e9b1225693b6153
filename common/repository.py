"""The on-disk format of Strata's Triton model repository (torch-free).

One exported model version is three Triton models sharing a version number::

    <repo>/<base>_text/config.pbtxt     <repo>/<base>_text/<N>/{model.onnx, manifest.json[, model.py]}
    <repo>/<base>_video/...             <repo>/<base>_scorer/...

``<base>`` is the model and its preset (``vsepp_fast``): one Triton model name always has one signature.
The MiniLM text backbone is one more model, ``<repo>/text_backbone/<N>/``, exported once for every model that
reads MiniLM features. Each version folder holds the same ``manifest.json`` (resolved config, tensor layout, preprocessing limits,
checkpoint hash, parity figures), so every Triton model folder is self-contained.

A version folder is code (Triton's python backend runs its ``model.py``), so its manifest records the size and
sha256 of every other file in it (``files``: per part, or per model for a backbone, path -> {bytes, sha256}), and
:func:`verify_version` checks them all, refusing a changed, missing or added file by name (Python's ``__pycache__``,
written there when Triton imports ``model.py``, is removed first, so only the checked source runs). Whoever asks
Triton to load a version calls it first; the active-version record pins the manifest's own sha256, so an edited manifest
is caught too.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from common.errors import ConfigError
from common.layout import ModelLayout, TowerLayout

PARTS = ("text", "video", "scorer")
TEXT_BACKBONE = "text_backbone"  # the frozen MiniLM backbone (word and sentence pooling), shared by every model
ONNX_FILE = "model.onnx"
PLAN_FILE = "model.plan"
MANIFEST_FILE = "manifest.json"
CONFIG_FILE = "config.pbtxt"
TOKENIZER_FILE = "tokenizer.json"   # the text backbone's tokenizer, beside its graph
MANIFEST_FORMAT = 1


def model_name(base: str, part: str) -> str:
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; parts: {', '.join(PARTS)}")
    return f"{base}_{part}"


def split_model_name(name: str) -> tuple[str, str] | None:
    """``vsepp_fast_text`` -> ``("vsepp_fast", "text")``; None for a name that is not a Strata part."""
    for part in PARTS:
        if name.endswith(f"_{part}"):
            return name[: -len(part) - 1], part
    return None


def part_layout(layout: ModelLayout, part: str) -> TowerLayout:
    return {"text": layout.text, "video": layout.video, "scorer": layout.scorer}[part]


def model_names(repo: Path) -> list[str]:
    """Names of the Triton models the repository holds (folders with a ``config.pbtxt``)."""
    repo = Path(repo)
    if not repo.is_dir():
        return []
    return sorted(p.name for p in repo.iterdir() if (p / CONFIG_FILE).is_file())


def model_bases(repo: Path) -> list[str]:
    """The exported models (``<base>`` of their three parts) the repository holds, sorted."""
    return sorted({parts[0] for name in model_names(repo) if name != TEXT_BACKBONE
                   and (parts := split_model_name(name)) is not None})


def versions(repo: Path, name: str) -> list[int]:
    """Version numbers present on disk for Triton model ``name`` (sorted)."""
    folder = Path(repo) / name
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())


def version_dir(repo: Path, base: str, part: str, version: int) -> Path:
    return Path(repo) / model_name(base, part) / str(version)


def latest_version(repo: Path, base: str) -> int:
    found = versions(repo, model_name(base, "text"))
    if not found:
        raise ConfigError(f"model repository {repo}: no exported version of {base!r} (looked for {model_name(base, 'text')}/<N>/)")
    return found[-1]


def read_manifest(repo: Path, base: str, version: int, part: str = "text") -> dict:
    path = version_dir(repo, base, part, version) / MANIFEST_FILE
    if not path.is_file():
        raise ConfigError(f"model repository {repo}: {base!r} version {version} has no manifest ({path})")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not valid JSON: {err}") from None
    check_manifest_format(path, manifest)
    return manifest


def check_manifest_format(path: Path, manifest: object) -> None:
    """A manifest this Strata reads is of :data:`MANIFEST_FORMAT`; an older or newer one is refused, naming the fix
    (no older format has ever been written: there is nothing to migrate)."""
    found = manifest.get("format") if isinstance(manifest, dict) else None
    if found == MANIFEST_FORMAT:
        return
    if isinstance(found, int) and not isinstance(found, bool) and found > MANIFEST_FORMAT:
        raise ConfigError(f"{path}: manifest format {found} was written by a newer Strata (this one reads format "
                          f"{MANIFEST_FORMAT}): upgrade Strata, or export this version again with this one")
    raise ConfigError(f"{path}: manifest format {found!r} is not format {MANIFEST_FORMAT} (an older or foreign "
                      f"export): export this version again with this Strata (strata export CHECKPOINT)")


def manifest_layout(manifest: dict) -> ModelLayout:
    return ModelLayout.from_json(manifest["layout"])


PYCACHE = "__pycache__"   # written into a version folder when Triton's python backend imports its model.py


class TamperedVersion(ConfigError):
    """A version folder differs from what its export recorded: Triton must not load it."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def version_files(folder: Path) -> dict[str, dict]:
    """Size and sha256 of every file under a version folder but its manifest, by path relative to the folder."""
    folder = Path(folder)
    return {path.relative_to(folder).as_posix(): {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
            for path in sorted(folder.rglob("*")) if path.is_file() and path.relative_to(folder).as_posix() != MANIFEST_FILE}


def manifest_sha256(repo: Path, base: str, version: int) -> str:
    """The sha256 of ``base`` version ``version``'s manifest (the same file in each part), for the active record."""
    return sha256_file(version_dir(repo, base, "text", version) / MANIFEST_FILE)


def plans_built_on_serving_gpu(manifest: dict) -> bool:
    """A tensorrt version exported with ``--plans-on-serving-gpu``: its ``model.plan`` is built after the export,
    from the checked ONNX, by the serving host's init step, so the manifest cannot list it."""
    serving = manifest.get("serving") or {}
    return serving.get("backend") == "tensorrt" and serving.get("trt_plans") == "serving"


def verify_version(repo: Path, model: str, version: int, pinned_manifest: str | None = None) -> None:
    """Refuse (:class:`TamperedVersion`, naming the file) a version of a Triton model whose files are not those its
    manifest records, or whose manifest is not the one ``pinned_manifest`` (a sha256) names."""
    folder = Path(repo) / model / str(version)
    manifest_file = folder / MANIFEST_FILE
    if not manifest_file.is_file():
        raise TamperedVersion(f"{model} version {version}: no {manifest_file}; refusing to load it (export it again)")
    if pinned_manifest is not None and sha256_file(manifest_file) != pinned_manifest:
        raise TamperedVersion(f"{manifest_file} changed since the version was activated (its sha256 is not the one "
                              f"the active-version record pins); refusing to load {model} version {version}")
    for cache in [p for p in folder.rglob(PYCACHE) if p.is_dir()]:
        shutil.rmtree(cache)   # Python's compiled cache of model.py: dropped, so only the checked source can run
    manifest = json.loads(manifest_file.read_text())
    base = manifest.get("base")
    key = next((part for part in PARTS if base and model == model_name(base, part)), model)
    recorded = manifest.get("files", {}).get(key)
    if not isinstance(recorded, dict) or any(not isinstance(v, dict) for v in recorded.values()):
        raise TamperedVersion(f"{manifest_file} records no hash of each file of {model} (an export from before "
                              f"files were hashed, or an edited manifest); export the version again")
    found = version_files(folder)
    for name in sorted(set(recorded) | set(found)):
        if name not in found:
            raise TamperedVersion(f"{folder / name} is missing; refusing to load {model} version {version}")
        if name not in recorded:
            if name == PLAN_FILE and plans_built_on_serving_gpu(manifest):
                continue
            raise TamperedVersion(f"{folder / name} was not written by the export (the manifest does not list it); "
                                  f"refusing to load {model} version {version}")
        if found[name]["sha256"] != recorded[name]["sha256"]:
            raise TamperedVersion(f"{folder / name} changed since export (sha256 differs from the manifest's); "
                                  f"refusing to load {model} version {version}")
