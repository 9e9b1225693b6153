"""``strata synth`` / ``strata synth-check`` end to end on a small dataset, and the check's own arithmetic."""
from __future__ import annotations

import json

import numpy as np
import pytest

from clients.cli import main
from common.errors import DataError
from training.synth.check import _expected_recall, _fits, run_checks


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("check") / "synth"
    rc = main(["synth", "--out", str(out), "--videos", "300", "--captions-per-video", "3", "--seed", "5",
               "--frame-dim", "32", "--region-dim", "32", "--no-progress"])
    assert rc == 0
    return out


def test_synth_check_prints_every_figure_and_the_probes_behave(small, capsys, tmp_path):
    report_path = tmp_path / "report.json"
    assert main(["synth-check", str(small), "--json", str(report_path)]) == 0
    text = capsys.readouterr().out
    for needle in ("switch-roles probe", "bag_of_labels", "region", "frame", "best single dimension",
                   "best single token", "parser role accuracy", "ridge baseline", "oracle ceiling"):
        assert needle in text
    report = json.loads(report_path.read_text())
    sr = report["switch_roles"]
    assert sr["region"]["tst"] >= 90 and sr["region"]["tst_unseen"] >= 90
    assert 25 <= sr["bag_of_labels"]["tst_unseen"] <= 75
    assert report["events_seen_in_training"]["tst"] > report["events_seen_in_training"]["tst_unseen"]
    assert report["parser"]["available"] and report["parser"]["accuracy"] > 80
    assert "scene probe accuracy" in text
    assert min(report["scene"]["region"].values()) >= 40  # the whole-frame region carries the scene (chance 11%)
    for split in ("tst", "tst_unseen"):
        base, ceiling = report["baseline"][split], report["ceiling"][split]
        chance = report["shortcuts"][split]["chance_t2v_r1"]
        assert chance < base["t2v_r1"] < ceiling["t2v_r1"] <= 100
        assert report["shortcuts"][split]["best_dimension"]["t2v_r1"] < base["t2v_r1"]


def test_synth_check_refuses_a_folder_that_is_not_synthvtr(tmp_path):
    with pytest.raises(DataError, match="not a SynthVTR dataset"):
        run_checks(tmp_path)
    assert main(["synth-check", str(tmp_path)]) == 2


def test_synth_refuses_a_foreign_folder_from_the_cli(tmp_path, capsys):
    (tmp_path / "x.txt").write_text("x")
    assert main(["synth", "--out", str(tmp_path), "--videos", "20", "--no-progress"]) == 2
    assert "not empty" in capsys.readouterr().err


def test_expected_recall_with_ties_and_items_ranked_ahead():
    scores = np.array([0.9, 0.5, 0.5, 0.5, 0.1])
    positive = np.array([False, True, False, False, False])
    assert _expected_recall(scores, positive, 1) == 0.0            # a wrong item is surely ahead
    assert _expected_recall(scores, positive, 2) == pytest.approx(1 / 3)
    assert _expected_recall(scores, positive, 3) == pytest.approx(2 / 3)
    assert _expected_recall(scores, positive, 4) == 1.0
    two = np.array([False, True, True, False, False])
    assert _expected_recall(scores, two, 2) == pytest.approx(2 / 3)


def test_a_caption_fits_a_video_when_its_events_occur_in_order_and_its_scene_matches():
    video = {"scene": "park", "events": [["run", "dog", None], ["chase", "cat", "bird"]]}
    assert _fits({"events": [["chase", "cat", "bird"]], "scene": True}, "park", video)
    assert _fits({"events": [["run", "dog", None], ["chase", "cat", "bird"]], "scene": False}, "beach", video)
    assert not _fits({"events": [["chase", "cat", "bird"], ["run", "dog", None]], "scene": False}, "park", video)
    assert not _fits({"events": [["chase", "bird", "cat"]], "scene": False}, "park", video)
    assert not _fits({"events": [["run", "dog", None]], "scene": True}, "beach", video)
