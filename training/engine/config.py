"""The training run's typed config (torch-free): one file per model x dataset under ``training/configs/train/``."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

from training.config import apply_overrides, from_dict, read_mapping
from training.errors import ConfigError
from training.home import strata_home

TRAIN_CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs" / "train"


@dataclass(frozen=True)
class DataConfig:
    path: str                                  # dataset folder (HGR layout); relative paths live under $STRATA_HOME/data
    synth: Optional[dict[str, Any]] = None     # SynthVTR generator arguments: generate the folder on first use
    rolegraphs: str = "parser"                 # "parser", or a sent2rolegraph JSON (e.g. HGR's AllenNLP parses)
    max_frames: int = 20                       # HGR limits
    max_words: int = 30
    max_verbs: int = 4
    max_nouns: int = 6
    val_split: str = "val"
    test_splits: tuple[str, ...] = ("tst",)
    min_word_count: int = 2                    # vocabulary threshold for the learned word-embedding input

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

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if self.workers > 1 and self.optim.batch_size % self.workers:
            raise ValueError(f"optim.batch_size {self.optim.batch_size} is not divisible by {self.workers} workers")


def load_train_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Load a train config: a path, or the name of a file under ``training/configs/train/`` (without .yaml)."""
    path = Path(path)
    if not path.is_file() and (TRAIN_CONFIG_DIR / f"{path.name}.yaml").is_file():
        path = TRAIN_CONFIG_DIR / f"{path.name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in TRAIN_CONFIG_DIR.glob("*.yaml")))
        raise ConfigError(f"train config not found: {path} (configs in training/configs/train: {known})")
    config = from_dict(TrainConfig, apply_overrides(read_mapping(path), overrides), where=str(path))
    if not config.run_name:
        from dataclasses import replace

        config = replace(config, run_name=f"{path.stem}-seed{config.seed}")
    return config


LAST, BEST = "last", "best"  # checkpoint folders inside a run: the latest epoch, and the best validation rsum


def run_dir(config: TrainConfig) -> Path:
    return strata_home() / "runs" / config.run_name
