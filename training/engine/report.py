"""A run's report folder: resolved config, metrics per epoch (JSON), curves (PNG), best checkpoint, test metrics;
and the results table assembled from many report folders."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from common.config import to_dict


def write_config(folder: Path, config) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False))


def plot_curves(folder: Path, history: list[dict[str, Any]]) -> Path:
    """Training loss, validation rsum (fused and per level) and learning rate per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(epochs, [row["train_loss"] for row in history], marker="o")
    axes[0].set(title="training loss", xlabel="epoch")
    axes[1].plot(epochs, [row["val"]["rsum"] for row in history], marker="o", label="fused", linewidth=2)
    for level in history[0].get("val_levels", {}) if history else {}:
        axes[1].plot(epochs, [row["val_levels"][level] for row in history], linestyle="--", label=level)
    axes[1].set(title="validation rsum", xlabel="epoch")
    axes[1].legend(fontsize=8)
    axes[2].plot(epochs, [row["lr"] for row in history], marker="o")
    axes[2].set(title="learning rate", xlabel="epoch", yscale="log")
    fig.tight_layout()
    path = folder / "curves.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True))


def load_reports(root: Path) -> list[dict[str, Any]]:
    """Every finished run under ``root`` (a folder with test_metrics.json), as a dict of what the table needs."""
    rows = []
    for test_file in sorted(root.glob("*/test_metrics.json")):
        folder = test_file.parent
        config = yaml.safe_load((folder / "config.yaml").read_text())
        history = folder / "metrics.json"
        rows.append({"run": folder.name, "config": config, "test": json.loads(test_file.read_text()),
                     "history": json.loads(history.read_text()) if history.exists() else []})
    return rows
