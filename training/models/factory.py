"""Build any model of the zoo by name from a config file (torch-free until a model is constructed).

Model configs live in ``training/configs/models/<name>_<preset>.yaml`` (``fast`` for CPU runs and serving
here, ``paper`` for the papers' sizes). ``resolve_config`` gives the typed config without PyTorch, so
export, Triton adapters and clients can derive a model's tensor layout from it. ``serving_tables`` gives a model's
serving tables (``common.serving_tables``), declared beside its code, for export and the gateway.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from common.config import apply_overrides, from_dict, read_mapping
from common.errors import ConfigError
from common.serving_tables import ServingTables

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs" / "models"

# name -> (config class, model class), as "module:attribute"; config classes are torch-free.
_REGISTRY: dict[str, tuple[str, str]] = {
    "vsepp": ("training.models.vsepp.config:VSEPPConfig", "training.models.vsepp.model:VSEPP"),
    "hgr": ("training.models.hgr.config:HGRConfig", "training.models.hgr.model:HGR"),
    "hanet": ("training.models.hanet.config:HANetConfig", "training.models.hanet.model:HANet"),
    "visern": ("training.models.visern.config:ViSERNConfig", "training.models.visern.model:ViSERN"),
    "vsrnet": ("training.models.vsrnet.config:VSRNetConfig", "training.models.vsrnet.model:VSRNet"),
    "mcsan": ("training.models.mcsan.config:MCSANConfig", "training.models.mcsan.model:MCSAN"),
}
# The torch-free module where model ``name`` declares ``TABLES``, its ServingTables.
SERVING_TABLES_MODULE = "training.models.{name}.serving"


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def list_presets(name: str) -> list[str]:
    _check_name(name)
    return sorted(p.stem[len(name) + 1:] for p in CONFIG_DIR.glob(f"{name}_*.yaml"))


def config_class(name: str) -> type:
    _check_name(name)
    return _load(_REGISTRY[name][0])


def resolve_config(name: str, preset: str | dict | Path = "fast", overrides: tuple[str, ...] | list[str] = ()) -> Any:
    """The typed config of model ``name``: a preset name, a YAML path, or a plain dict, plus overrides."""
    cls = config_class(name)
    if isinstance(preset, dict):
        data, where = preset, f"{name} config"
    else:
        path = Path(preset) if (isinstance(preset, Path) or str(preset).endswith((".yaml", ".yml", ".json"))) else CONFIG_DIR / f"{name}_{preset}.yaml"
        if not path.is_file():
            raise ConfigError(f"model {name!r} has no preset {str(preset)!r}; presets: {', '.join(list_presets(name))}")
        data, where = read_mapping(path), str(path)
    return from_dict(cls, apply_overrides(data, overrides), where=where)


def create_model(name: str, preset: str | dict | Path | Any = "fast", overrides: tuple[str, ...] | list[str] = ()):
    """Construct model ``name`` from a preset / config file / dict / config object (random weights; a trained
    model comes from :func:`training.checkpoint.load_model_checkpoint`)."""
    config = preset if isinstance(preset, config_class(name)) else resolve_config(name, preset, overrides)
    model_cls = _load(_REGISTRY[name][1])
    return model_cls(config)


def serving_tables(name: str) -> ServingTables:
    """Model ``name``'s serving tables; ``ConfigError`` when it declares none (it cannot be exported or served)."""
    _check_name(name)
    module = SERVING_TABLES_MODULE.format(name=name)
    try:
        tables = getattr(importlib.import_module(module), "TABLES", None)
    except ModuleNotFoundError as err:
        if err.name != module:
            raise
        tables = None
    if not isinstance(tables, ServingTables):
        raise ConfigError(f"model {name!r} declares no serving tables: {module.replace('.', '/')}.py must define "
                          f"TABLES, a common.serving_tables.ServingTables with its first-stage Choice per kind "
                          f"(videos, captions) and, where it has them, its levels, fused terms and refusals")
    return tables


def _check_name(name: str) -> None:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; models: {', '.join(list_models())}")


def _load(path: str) -> Any:
    module, attr = path.split(":")
    return getattr(importlib.import_module(module), attr)
