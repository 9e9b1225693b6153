"""The training run's typed config (torch-free): one file per model x dataset under ``training/configs/train/``."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

from common.config import apply_overrides, from_dict, read_mapping, to_dict
from common.errors import ConfigError
from common.home import strata_home

TRAIN_CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs" / "train"
SCREEN_CONFIG = TRAIN_CONFIG_DIR.parent / "screen.yaml"   # laid over a train config by --screen


@dataclass(frozen=True)
class DataConfig:
    path: str                                  # dataset folder: HGR's release layout, or a `strata synth` folder.
                                               # Relative in a config file: under $STRATA_HOME/data; given on the
                                               # command line (--set data.path=...): to the current folder.
    synth: Optional[dict[str, Any]] = None     # SynthVTR generator arguments: generate the folder on first use.
                                               # Dropped when --set data.path names other data (unless data.synth
                                               # is set too): a plain path must exist.
    rolegraphs: str = "parser"                 # "parser", or a sent2rolegraph JSON (e.g. HGR's AllenNLP parses)
    max_frames: int = 20                       # HGR limits
    max_words: int = 30
    max_verbs: int = 4
    max_nouns: int = 6
    val_split: str = "val"
    test_splits: tuple[str, ...] = ("tst",)
    min_word_count: int = 2                    # vocabulary threshold for the learned word-embedding input
    # Beyond the papers: each training caption's role-switched twin (agent and patient spans of its parse
    # swapped, training.text.switch) goes into the batch as an extra negative of the caption's video.
    role_switch_negatives: bool = False
    # With it: keep only the twins whose every (verb, agent, patient) event some training caption describes
    # (training.text.switch.role_events). Most twins are events no caption has ("a box throws a chef"), which
    # the text alone gives away; the test's twins are all valid events.
    role_switch_attested: bool = False
    # What must be attested: "events", each whole (verb, agent, patient); or "pairs", each verb with its agent and
    # with its patient, apart (training.text.switch.role_pairs), which keeps twins that are new combinations too.
    role_switch_attested_by: Literal["events", "pairs"] = "events"
    # The first epoch (from 1) whose batches carry the twins: a curriculum in which retrieval is learnt first. The
    # best checkpoint is chosen among this epoch and the later ones.
    role_switch_from_epoch: int = 1

    def __post_init__(self) -> None:
        for key in ("max_frames", "max_words", "max_verbs", "max_nouns", "min_word_count", "role_switch_from_epoch"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if not self.test_splits:
            raise ValueError("test_splits must name at least one split")
        if self.role_switch_attested_by != "events" and not self.role_switch_attested:
            raise ValueError("role_switch_attested_by says what role_switch_attested keeps: set role_switch_attested "
                             "too (data.role_switch_attested=true)")
        if self.role_switch_from_epoch > 1 and not self.role_switch_negatives:
            raise ValueError("role_switch_from_epoch says when the role-switched twins join the batches: set "
                             "role_switch_negatives too (data.role_switch_negatives=true)")
        if self.role_switch_attested and not self.role_switch_negatives:
            raise ValueError("role_switch_attested keeps some of the role-switched twins: set role_switch_negatives "
                             "too (data.role_switch_negatives=true)")

    def resolved_path(self) -> Path:
        path = Path(self.path).expanduser()
        return path if path.is_absolute() else strata_home() / "data" / path


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-4                           # Adam, as HGR/HANet
    batch_size: int = 64                       # global batch: each of N workers takes batch_size / N
    epochs: int = 50
    weight_decay: float = 0.0
    grad_clip: float = 2.0                     # 0 = off
    schedule: Literal["constant", "plateau", "step"] = "constant"
    plateau_patience: int = 3                  # ViSERN: halve the LR when validation loss stalls 3 epochs
    plateau_factor: float = 0.5
    step_epochs: int = 15
    step_gamma: float = 0.1
    early_stop_patience: int = 0               # stop after this many epochs without a better rsum; 0 = off

    def __post_init__(self) -> None:
        checks = (("lr", self.lr > 0, "> 0"), ("batch_size", self.batch_size >= 1, ">= 1"),
                  ("epochs", self.epochs >= 1, ">= 1"), ("weight_decay", self.weight_decay >= 0, ">= 0"),
                  ("grad_clip", self.grad_clip >= 0, ">= 0 (0 = off)"),
                  ("plateau_patience", self.plateau_patience >= 1, ">= 1"),
                  ("plateau_factor", 0 < self.plateau_factor < 1, "in (0, 1)"),
                  ("step_epochs", self.step_epochs >= 1, ">= 1"), ("step_gamma", 0 < self.step_gamma <= 1, "in (0, 1]"),
                  ("early_stop_patience", self.early_stop_patience >= 0, ">= 0 (0 = off)"))
        for key, ok, wanted in checks:
            if not ok:
                raise ValueError(f"optim.{key} must be {wanted}, got {getattr(self, key)}")


@dataclass(frozen=True)
class TrainConfig:
    model: str                                 # a zoo name (training.models.list_models())
    data: DataConfig
    preset: str = "fast"
    model_overrides: tuple[str, ...] = ()      # dotted overrides of the preset, e.g. "ablation.no_roles=true"
    optim: OptimConfig = field(default_factory=OptimConfig)
    seed: int = 0
    workers: int = 0                           # 0: train in this process; N >= 1: Ray Train with N workers
    use_gpu: bool = False
    run_name: str = ""                         # default: "<config file stem>-seed<seed>"
    eval_batch_size: int = 128
    threads_per_worker: int = 0                # torch intra-op threads per worker; 0 = leave PyTorch's default
    ray_max_failures: int = 3                  # Ray Train: worker-group restarts after a worker dies (each resumes)

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0 (0 = in this process), got {self.workers}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.ray_max_failures < 0:
            raise ValueError(f"ray_max_failures must be >= 0, got {self.ray_max_failures}")
        if self.eval_batch_size < 1 or self.threads_per_worker < 0:
            raise ValueError(f"eval_batch_size must be >= 1 and threads_per_worker >= 0, got "
                             f"{self.eval_batch_size} and {self.threads_per_worker}")
        if "/" in self.run_name or self.run_name in (".", ".."):
            raise ValueError(f"run_name must be a plain folder name, got {self.run_name!r}")
        if self.data.role_switch_from_epoch > self.optim.epochs:
            raise ValueError(f"data.role_switch_from_epoch {self.data.role_switch_from_epoch} is after the last epoch "
                             f"(optim.epochs {self.optim.epochs})")
        if self.workers > 1 and self.optim.batch_size % self.workers:
            raise ValueError(f"optim.batch_size {self.optim.batch_size} is not divisible by {self.workers} workers")


def load_train_config(path: str | Path, overrides: list[str] | tuple[str, ...] = (),
                      screen: bool = False) -> TrainConfig:
    """Load a train config: a path, or the name of a file under ``training/configs/train/`` (without .yaml).

    ``screen`` lays :data:`SCREEN_CONFIG` (a small set, a short budget, judged on val) over it before the overrides;
    the run is then named ``<config>-screen-seed<seed>`` unless run_name is set."""
    path = _config_file(path)
    data = _read_with_base(path)
    if screen:
        data = _laid_over(data, read_mapping(SCREEN_CONFIG))
    data = _command_line_paths(apply_overrides(data, overrides), overrides)
    config = from_dict(TrainConfig, data, where=str(path) + (f" with {SCREEN_CONFIG.name}" if screen else ""))
    if not config.run_name:
        from dataclasses import replace

        config = replace(config, run_name=f"{path.stem}{'-screen' if screen else ''}-seed{config.seed}")
    return config


def _config_file(path: str | Path) -> Path:
    """A train config file: the path itself, or the name of a file under ``training/configs/train/``."""
    path = Path(path)
    if not path.is_file() and (TRAIN_CONFIG_DIR / f"{path.name}.yaml").is_file():
        path = TRAIN_CONFIG_DIR / f"{path.name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in TRAIN_CONFIG_DIR.glob("*.yaml")))
        raise ConfigError(f"train config not found: {path} (configs in training/configs/train: {known})")
    return path


EXTENDS = "extends"  # a train config's key: the config whose values the file's own are laid over (a name, or a
                     # path relative to the file)


def _read_with_base(path: Path, within: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The file's values laid over those of the config it ``extends`` (itself read the same way)."""
    data = read_mapping(path)
    base = data.pop(EXTENDS, None)
    if base is None:
        return data
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: {EXTENDS} must name a train config, got {base!r}")
    beside = path.parent / base   # a path relative to this file, else a config's name
    base_path = _config_file(beside if beside.is_file() else base)
    chain = within + (path.resolve(),)
    if base_path.resolve() in chain:
        raise ConfigError(f"{path}: {EXTENDS} goes round in a circle: "
                          + " -> ".join(p.stem for p in chain + (base_path.resolve(),)))
    return _laid_over(_read_with_base(base_path, chain), data)


def _laid_over(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``top``'s values in place of its own, section by section."""
    out = dict(base)
    for key, value in top.items():
        out[key] = _laid_over(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _command_line_paths(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Paths set on the command line are relative to the current folder, as on any command line; and a
    ``data.path`` given there names existing data: the config's SynthVTR generator (``data.synth``) is kept only
    when the command line sets it too, so a mistyped path is an error rather than a new dataset."""
    keys = {item.split("=", 1)[0].strip() for item in overrides if "=" in item}
    section = data.get("data")
    if not isinstance(section, dict):
        return data
    for key in ("path", "rolegraphs"):
        value = section.get(key)
        if f"data.{key}" in keys and isinstance(value, str) and value and value != "parser":
            section[key] = str(Path(value).expanduser().resolve())
    if "data.path" in keys and not any(k == "data.synth" or k.startswith("data.synth.") for k in keys):
        section.pop("synth", None)
    return data


LAST, BEST = "last", "best"  # checkpoint folders inside a run: the latest epoch, and the best validation rsum


RUN_POLICY = ("ray_max_failures",)   # how a run copes, not what it trains: a run saved without them is the same run


def run_dir(config: TrainConfig) -> Path:
    return strata_home() / "runs" / config.run_name


def saved_beside(config: TrainConfig) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(the config saved in ``config``'s run folder, ``config`` itself) as plain dicts of what they train (without
    the keys of :data:`RUN_POLICY`), to compare; None when the run has saved none."""
    saved = run_dir(config) / "config.yaml"
    if not saved.is_file():
        return None
    return _what_trains(yaml.safe_load(saved.read_text())), _what_trains(json.loads(json.dumps(to_dict(config))))


def _what_trains(config: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in config.items() if key not in RUN_POLICY}
