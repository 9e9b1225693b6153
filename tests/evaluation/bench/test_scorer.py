"""``strata bench scorer`` at tiny sizes: both directions at each depth, every graph timed, the exported graph and
the Gram-order one giving the same scores, and a missing ``--also`` file named before anything runs."""
from __future__ import annotations

import json

import pytest

from clients.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def test_bench_scorer_times_both_orders_with_the_same_scores(tmp_path):
    report = tmp_path / "scorer.json"
    assert main(["bench", "scorer", "--depths", "3", "5", "--frames", "6", "--iters", "2", "--json",
                 str(report)]) == 0
    written = json.loads(report.read_text())
    assert written["model"] == "hgr_fast" and written["frames"] == 6
    assert {(r["direction"], r["depth"]) for r in written["rows"]} == {
        (d, n) for d in ("text_to_video", "video_to_text") for n in (3, 5)}
    for row in written["rows"]:
        assert set(row["us_per_candidate"]) == {"exported", "gram_order", "pytorch"}
        assert all(us > 0 for us in row["us_per_candidate"].values())
        assert row["max_abs_difference"]["gram_order"] < 1e-5   # one formula, two orders


def test_a_missing_also_graph_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["bench", "scorer", "--also", str(tmp_path / "old.onnx")])
    err = capsys.readouterr().err
    assert "--also: no such file" in err and "old.onnx" in err
