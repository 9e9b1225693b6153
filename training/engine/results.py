"""The results page's tables, rebuilt from run report folders made at any time: the main table (mean ± spread over
seeds), each model against the baseline with the seed-spread test, the chance levels, every run's per-level test
rsum and its validation curve."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import math

import numpy as np

from training.engine.report import load_reports

METRICS = ("t2v_r1", "t2v_r5", "t2v_r10", "t2v_medr", "t2v_mnr", "v2t_r1", "v2t_r5", "v2t_r10", "v2t_medr", "v2t_mnr",
           "rsum")
HEADERS = ("t2v R@1", "R@5", "R@10", "MedR", "MnR", "v2t R@1", "R@5", "R@10", "MedR", "MnR", "rsum")


BASELINE = "vsepp"
CHANCE_SELECTION = 50.0     # a binary selection picks one of two sentences


def variant(config: dict[str, Any]) -> str:
    """What sets a run apart from the full model on the same data: its model overrides and training options."""
    parts = list(config.get("model_overrides") or [])
    if config.get("data", {}).get("role_switch_negatives"):
        parts.append("data.role_switch_negatives")
    return ", ".join(parts) or "-"


def results_table(runs: Path) -> str:
    reports = load_reports(runs)
    if not reports:
        return f"no finished runs (with test_metrics.json) under {runs}\n"
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in reports:
        c = r["config"]
        groups[(c["model"], c["preset"], variant(c), c["optim"]["epochs"], c["data"]["path"])].append(r)
    return "\n".join([_main_table(reports, groups), _against_baseline(groups), _chance(reports),
                      _levels_and_curves(reports)])


def _main_table(reports: list[dict], groups: dict[tuple, list[dict]]) -> str:
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


def spread_margin(a: list[float], b: list[float]) -> float:
    """2 * sqrt(s_a^2 / n_a + s_b^2 / n_b): a difference of means beyond it beats the seed spread (needs two
    seeds on each side; NaN otherwise)."""
    if min(len(a), len(b)) < 2:
        return math.nan
    return 2 * math.sqrt(np.var(a, ddof=1) / len(a) + np.var(b, ddof=1) / len(b))


def _against_baseline(groups: dict[tuple, list[dict]]) -> str:
    """Every full model (no overrides) against the baseline trained on the same data for as many epochs or more
    (a baseline still improving is also trained longer): the difference of means in rsum and each binary
    selection, and whether it exceeds the seed-spread margin."""
    lines = [f"Against the baseline ({BASELINE}, same data, as many epochs or more): difference of means, and in "
             "brackets the margin 2·√(s₁²/n₁ + s₂²/n₂); ✓ beats it by more than the seed spread, ✗ does not, ? fewer "
             "than 2 seeds.", ""]
    rows = []
    for (model, preset, var, epochs, data), runs_of in sorted(groups.items()):
        if model == BASELINE or var != "-":
            continue
        for base_epochs, base in sorted((key[3], runs) for key, runs in groups.items()
                                        if key[:3] == (BASELINE, preset, "-") and key[4] == data and key[3] >= epochs):
            rows += _rows_against(model, epochs, runs_of, base_epochs, base)
    if not rows:
        return ""
    head = ["model", "epochs (model / baseline)", "seeds (model / baseline)", "split", "rsum",
            *(f"BS {k}" for k in rows[0][0])]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cells) + " |" for _, cells in rows]
    return "\n".join(lines) + "\n"


def _rows_against(model: str, epochs: int, runs_of: list[dict], base_epochs: int, base: list[dict]) -> list:
    """One row per test split: (the binary-selection kinds compared, the row's cells)."""
    rows = []
    for split in sorted({s for r in runs_of for s in r["test"]["splits"]}):
        mine = [r["test"]["splits"][split] for r in runs_of if split in r["test"]["splits"]]
        theirs = [r["test"]["splits"][split] for r in base if split in r["test"]["splits"]]
        if not theirs:
            continue
        kinds = [k for k in mine[0].get("binary_selection", {}) if k in theirs[0].get("binary_selection", {})]
        cells = [model, f"{epochs} / {base_epochs}", f"{len(mine)} / {len(theirs)}", split,
                 _versus([p["fused"]["rsum"] for p in mine], [p["fused"]["rsum"] for p in theirs])]
        cells += [_versus([p["binary_selection"][k] for p in mine], [p["binary_selection"][k] for p in theirs])
                  for k in kinds]
        rows.append((kinds, cells))
    return rows


def _versus(a: list[float], b: list[float]) -> str:
    diff, margin = float(np.mean(a) - np.mean(b)), spread_margin(a, b)
    mark = "?" if math.isnan(margin) else ("✓" if diff > margin else "✗")
    return f"{diff:+.1f} ({'-' if math.isnan(margin) else f'{margin:.1f}'}) {mark}"


def chance_rsum(videos: int, captions: int) -> float:
    """rsum of a scorer that ranks at random: text -> video R@K = K / videos; video -> text R@K = the chance that
    one of a video's captions (captions / videos on average) is among K drawn from all captions."""
    per_video = captions / videos
    t2v = sum(min(1.0, k / videos) for k in (1, 5, 10))
    v2t = sum(1 - math.prod((captions - per_video - i) / (captions - i) for i in range(min(k, captions)))
              for k in (1, 5, 10))
    return 100 * (t2v + v2t)


def _chance(reports: list[dict]) -> str:
    sizes = sorted({(split, s["videos"], s["captions"]) for r in reports for split, s in r["test"]["splits"].items()
                    if "videos" in s and "captions" in s})
    if not sizes:
        return ""
    parts = [f"{split} ({videos} videos, {captions} captions) rsum {chance_rsum(videos, captions):.1f}"
             for split, videos, captions in sizes]
    return f"Chance: {'; '.join(parts)}; every binary selection {CHANCE_SELECTION:.0f}%.\n"


def _levels_and_curves(reports: list[dict]) -> str:
    """Per run: each level's test rsum (the fused score's parts) and the validation rsum after each epoch."""
    head = ["run", "split", "fused", "levels (test rsum)", "validation rsum per epoch"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(reports, key=lambda r: r["run"]):
        curve = " ".join(f"{h['val']['rsum']:.0f}" for h in r["history"] if "val" in h) or "-"
        for split, s in sorted(r["test"]["splits"].items()):
            levels = ", ".join(f"{name} {m['rsum']:.1f}" for name, m in
                               sorted(s.get("levels", {}).items(), key=lambda kv: -kv[1]["rsum"])) or "-"
            lines.append(f"| {r['run']} | {split} | {s['fused']['rsum']:.1f} | {levels} | {curve} |")
    return "\n".join(lines) + "\n"
