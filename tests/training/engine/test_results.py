"""The results page's statistics: the seed-spread margin, the chance rsum, and the baseline comparison."""
from __future__ import annotations

import json
import math

import pytest
import yaml

from training.engine.results import chance_rsum, results_table, spread_margin


def test_spread_margin_is_twice_the_standard_error_of_the_difference():
    assert spread_margin([1.0, 3.0, 5.0], [2.0, 2.0, 2.0]) == pytest.approx(2 * math.sqrt(4.0 / 3))
    assert math.isnan(spread_margin([1.0], [2.0, 3.0]))


def test_chance_rsum_matches_a_random_ranking():
    # one caption per video: both directions are K / N
    assert chance_rsum(100, 100) == pytest.approx(2 * (1 + 5 + 10))
    # 2 captions per video among 4: v2t R@1 = 1/2, R@5 and R@10 = 1; t2v R@1 = 1/2, R@5 = R@10 = 1
    assert chance_rsum(2, 4) == pytest.approx(100 * (0.5 + 1 + 1 + 0.5 + 1 + 1))


def _run(root, name, model, seed, rsum, switch, twins=False, epochs=10):
    folder = root / name
    folder.mkdir()
    config = {"model": model, "preset": "fast", "optim": {"epochs": epochs}, "seed": seed,
              "data": {"path": "synthvtr", "role_switch_negatives": twins}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    split = {"videos": 200, "captions": 1000, "fused": {"rsum": rsum, **{m: 0.0 for m in (
        "t2v_r1", "t2v_r5", "t2v_r10", "t2v_medr", "t2v_mnr", "v2t_r1", "v2t_r5", "v2t_r10", "v2t_medr", "v2t_mnr")}},
        "binary_selection": {"switch_roles": switch}, "levels": {"event": {"rsum": rsum - 10}}}
    (folder / "test_metrics.json").write_text(json.dumps({"splits": {"tst": split}, "parameters": 1000}))
    (folder / "metrics.json").write_text(json.dumps([{"epoch": 1, "val": {"rsum": 100.0}},
                                                     {"epoch": 2, "val": {"rsum": 150.0}}]))


def test_the_table_says_which_models_beat_the_baseline_by_more_than_the_seed_spread(tmp_path):
    for seed, (base, good, close) in enumerate([(400, 520, 405), (410, 530, 415), (405, 525, 395)]):
        _run(tmp_path, f"vsepp-{seed}", "vsepp", seed, base, 50.0 + seed)
        _run(tmp_path, f"hgr-{seed}", "hgr", seed, good, 80.0 + seed)
        _run(tmp_path, f"hanet-{seed}", "hanet", seed, close, 52.0 - seed)
    table = results_table(tmp_path)
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines() if " / 3 | tst |" in line}
    assert "+120.0" in rows["hgr"] and rows["hgr"].count("✓") == 2
    assert rows["hanet"].count("✗") == 2 and "✓" not in rows["hanet"]
    assert "tst (200 videos, 1000 captions) rsum" in table
    assert "| hgr-0 | tst | 520.0 | event 510.0 | 100 150 |" in table


def test_a_run_with_role_switched_negatives_is_its_own_row_not_a_seed_of_the_full_model(tmp_path):
    for seed in range(2):
        _run(tmp_path, f"hgr-{seed}", "hgr", seed, 520.0, 80.0)
    _run(tmp_path, "hgr-twins", "hgr", 0, 400.0, 90.0, twins=True)
    rows = [line for line in results_table(tmp_path).splitlines() if line.startswith("| hgr | fast |")]
    assert [row.split(" | ")[2:5] for row in rows] == [["-", "10", "2"], ["data.role_switch_negatives", "10", "1"]]


def test_a_baseline_trained_longer_is_compared_too_and_a_shorter_one_is_not(tmp_path):
    for seed, (base10, base20, base5, model) in enumerate([(400, 500, 300, 520), (410, 505, 310, 530),
                                                           (405, 510, 305, 525)]):
        _run(tmp_path, f"vsepp-{seed}", "vsepp", seed, base10, 50.0)
        _run(tmp_path, f"vsepp-long-{seed}", "vsepp", seed, base20, 50.0, epochs=20)
        _run(tmp_path, f"vsepp-short-{seed}", "vsepp", seed, base5, 50.0, epochs=5)
        _run(tmp_path, f"hgr-{seed}", "hgr", seed, model, 80.0)
    rows = [line for line in results_table(tmp_path).splitlines() if line.startswith("| hgr | 10 / ")]
    assert [row.split(" | ")[1:5] for row in rows] == [["10 / 10", "3 / 3", "tst", "+120.0 (8.2) ✓"],
                                                       ["10 / 20", "3 / 3", "tst", "+20.0 (8.2) ✓"]]
