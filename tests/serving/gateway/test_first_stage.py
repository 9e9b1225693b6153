"""The first stage (serving.gateway.first_stage): refusals, and for HGR the per-level hybrid search agreeing with
exhaustive scoring better than the index view alone at equal depth, on a Milvus Lite server and 3,000 generated
SynthVTR videos with a trained HGR export (named by environment variables; skipped without one)."""
from __future__ import annotations

import os

import numpy as np
import pytest

from serving.gateway.errors import FailedPrecondition
from serving.gateway.first_stage import Choice, FirstStage, pooled, refusal

DEPTH = 60


def test_hanet_without_global_alignment_is_refused():
    from training.models.hanet.config import HANetConfig

    layout = HANetConfig(global_alignment=False).layout()
    manifest = {"config": {"global_alignment": False}}
    assert "never trained" in refusal("hanet", manifest, layout, "index")
    with pytest.raises(FailedPrecondition, match="global_alignment=false"):
        FirstStage(None, manifest, layout, {"videos": "v", "captions": "c"})


def test_levels_are_refused_where_the_model_has_none():
    from training.models.vsepp.config import VSEPPConfig

    assert "use 'index'" in refusal("vsepp", {"config": {}}, VSEPPConfig().layout(), "levels")


def test_pooled_is_a_unit_mean_of_the_valid_rows():
    record = {"a": np.array([[3.0, 0.0], [1.0, 0.0]], np.float32), "b": np.zeros((0, 2), np.float32)}
    assert np.allclose(pooled(record, ["a"]), [1.0, 0.0])
    assert np.allclose(pooled(record, ["b"]), [0.0, 0.0])


TRAINED = os.environ.get("STRATA_RERANK_REPO", "")      # a model repository holding a trained hgr_fast
TRAINED_DATA = os.environ.get("STRATA_RERANK_DATA", "")  # the SynthVTR folder it was trained on


@pytest.mark.skipif(not (TRAINED and TRAINED_DATA), reason="needs a trained HGR export: set STRATA_RERANK_REPO and "
                    "STRATA_RERANK_DATA (random weights rank nothing, so they cannot show it)")
def test_levels_beat_the_index_view_for_hgr_at_equal_depth(tmp_path):
    """On 3,000 held-out videos and their captions, 100 queries each way, depth 60 (2 %): the per-level first stage
    agrees with exhaustive scoring better than the index view video -> text, and no worse text -> video."""
    import json

    from serving.gateway.rerank_bench import run

    out = tmp_path / "rows.json"
    assert run(["--data", TRAINED_DATA, "--repo", TRAINED, "--models", "hgr_fast", "--corpus", "3000",
                "--queries", "100", "--depths", str(DEPTH), "--out", str(tmp_path / "f.png"), "--json", str(out)]) == 0
    rows = {(r["direction"], r["strategy"]): r["agreement"] for r in json.loads(out.read_text())}
    assert rows["v2t", "levels"] > rows["v2t", "index"] + 0.05, rows
    assert rows["t2v", "levels"] >= rows["t2v", "index"] - 0.02, rows
