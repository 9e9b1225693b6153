"""``strata bench peer`` on two tiny checkpoints trained on the demo's data (HGR and VSE++, one epoch on 40 of its
videos), each served by a stack of the bench's own: both models' rows and quality are there, every 1-user query is
answered once, each model's gateway records the stages it runs, and the ratio is the two p50s divided. A checkpoint
trained on other data is refused, with the fix, before anything starts."""
from __future__ import annotations

import json
import os

import pytest

from clients.cli import main

pytestmark = pytest.mark.slow

ITEMS, QUERIES, USERS = 30, 10, 2
TEXT_STAGES = {"parse", "backbone", "tower", "search", "fetch", "rerank"}
VIDEO_STAGES = {"search", "fetch", "rerank"}     # the query video is indexed: no Triton call
SWITCH_ROLES = {"switch_roles", "switch_roles_many", "switch_roles_heldout"}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, strata_home, one_thread):
    """{model: best checkpoint} of HGR and VSE++ trained one epoch on a 40-video set of the demo's generator."""
    data = tmp_path_factory.mktemp("peer") / "demo-data"
    runs = {}
    for model in ("hgr", "vsepp"):
        assert main(["train", "demo", "--set", f"model={model}", "--set", f"data.path={data}", "--set",
                     "data.synth.videos=40", "--set", "optim.epochs=1", "--set", f"run_name=peer-{model}",
                     "--set", "threads_per_worker=1"]) == 0
        runs[model] = strata_home / "runs" / f"peer-{model}" / "best"
    return runs


def test_bench_peer_sets_hgr_beside_vsepp(checkpoints, strata_home, tmp_path):
    report, figure = tmp_path / "peer.json", tmp_path / "peer.png"
    assert main(["bench", "peer", str(checkpoints["hgr"]), str(checkpoints["vsepp"]), "--items", str(ITEMS),
                 "--queries", str(QUERIES), "--concurrency", str(USERS), "--seconds", "2", "--json", str(report),
                 "--out", str(figure)]) == 0
    assert os.environ["STRATA_HOME"] == str(strata_home)          # the scratch homes are gone, the session's back
    written = json.loads(report.read_text())
    multi, single = written["models"]
    assert (multi["role"], multi["model"], single["role"], single["model"]) == ("multi", "hgr_fast",
                                                                                "single", "vsepp_fast")
    for model in (multi, single):
        quality = model["quality"]
        assert quality["split"] == "tst" and 0 <= quality["fused"]["rsum"] <= 600
        assert SWITCH_ROLES <= set(quality["binary_selection"])
        assert all(0 <= value <= 100 for value in quality["binary_selection"].values())
        rows = model["rows"]
        assert {(r["direction"], r["users"]) for r in rows} == {(d, u) for d in ("text_to_video", "video_to_text")
                                                                 for u in (1, USERS)}
        for row in rows:
            assert row["failed"] == 0 and row["qps"] > 0 and 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
            # the corpus beside the split the quality was measured on, in this model's own stack
            assert (row["videos"], row["captions"]) == (ITEMS + quality["videos"], ITEMS + quality["captions"])
            assert row["calls"] == QUERIES if row["users"] == 1 else row["calls"] > 0
            stages = set(row["stages_p50_ms"])
            assert stages == (TEXT_STAGES if row["direction"] == "text_to_video" else VIDEO_STAGES)
    for direction, ratio in written["p50_ratio"].items():
        p50 = [next(r["p50_ms"] for r in m["rows"] if r["direction"] == direction and r["users"] == 1)
               for m in (multi, single)]
        assert ratio == pytest.approx(p50[0] / p50[1])
    assert set(written["p50_ratio"]) == {"text_to_video", "video_to_text"}
    assert figure.stat().st_size > 0


@pytest.mark.parametrize("change, named", [
    ({"seed": 1, "region_dim": 24}, ["seed 1 (the corpus: 0)", "region_dim 24 (the corpus: 256)"]),
    ({"videos": 700}, ["first 700 videos", "starts at video 600"]),
])
def test_a_checkpoint_not_trained_on_the_demo_data_is_refused_with_the_fix(checkpoints, tmp_path, capsys, change,
                                                                          named):
    other = tmp_path / "other"
    other.mkdir()
    meta = json.loads((checkpoints["vsepp"] / "config.json").read_text())
    meta["train_config"]["data"]["synth"].update(change)
    (other / "config.json").write_text(json.dumps(meta))
    assert main(["bench", "peer", str(checkpoints["hgr"]), str(other)]) == 2
    err = capsys.readouterr().err
    assert all(part in err for part in named) and "strata train demo --set model=vsepp" in err
