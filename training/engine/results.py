"""The results table, rebuilt from run report folders made at any time (mean ± spread over seeds)."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from training.engine.report import load_reports

METRICS = ("t2v_r1", "t2v_r5", "t2v_r10", "t2v_medr", "t2v_mnr", "v2t_r1", "v2t_r5", "v2t_r10", "v2t_medr", "v2t_mnr",
           "rsum")
HEADERS = ("t2v R@1", "R@5", "R@10", "MedR", "MnR", "v2t R@1", "R@5", "R@10", "MedR", "MnR", "rsum")


def variant(config: dict[str, Any]) -> str:
    return ", ".join(config.get("model_overrides") or []) or "-"


def results_table(runs: Path) -> str:
    reports = load_reports(runs)
    if not reports:
        return f"no finished runs (with test_metrics.json) under {runs}\n"
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in reports:
        c = r["config"]
        groups[(c["model"], c["preset"], variant(c), c["optim"]["epochs"], c["data"]["path"])].append(r)
    selection_kinds = sorted({k for r in reports for s in r["test"]["splits"].values()
                              for k in s.get("binary_selection", {})})
    head = ["model", "preset", "variant", "epochs", "seeds", "split", *HEADERS, *(f"BS {k}" for k in selection_kinds),
            "params", "train s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (model, preset, var, epochs, _data), runs_of in sorted(groups.items()):
        splits = sorted({s for r in runs_of for s in r["test"]["splits"]})
        for split in splits:
            per_seed = [r["test"]["splits"][split] for r in runs_of if split in r["test"]["splits"]]
            cells = [model, preset, var, str(epochs), str(len(per_seed)), split]
            cells += [_stat([p["fused"][m] for p in per_seed]) for m in METRICS]
            cells += [_stat([p["binary_selection"][k] for p in per_seed if k in p.get("binary_selection", {})])
                      for k in selection_kinds]
            params = runs_of[0]["test"].get("parameters")
            cells += [f"{params / 1e6:.2f}M" if params else "-",
                      _stat([r["test"].get("train_seconds", float("nan")) for r in runs_of], digits=0)]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _stat(values: list[float], digits: int = 1) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"
