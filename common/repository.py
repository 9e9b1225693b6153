"""The on-disk format of Strata's Triton model repository (torch-free).

One exported model version is three Triton models sharing a version number::

    <repo>/<base>_text/config.pbtxt     <repo>/<base>_text/<N>/{model.onnx, manifest.json[, model.py]}
    <repo>/<base>_video/...             <repo>/<base>_scorer/...

``<base>`` is the model and its preset (``vsepp_fast``): one Triton model name always has one signature.
The MiniLM text backbone is one more model, ``<repo>/text_backbone/<N>/``, exported once for every model that
reads MiniLM features. Each version folder holds the same ``manifest.json`` (resolved config, tensor layout, preprocessing limits,
checkpoint hash, parity figures), so every Triton model folder is self-contained.
"""
from __future__ import annotations

import json
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
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ConfigError(f"{path}: manifest format {manifest.get('format')!r}, expected {MANIFEST_FORMAT}")
    return manifest


def manifest_layout(manifest: dict) -> ModelLayout:
    return ModelLayout.from_json(manifest["layout"])
