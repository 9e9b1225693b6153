"""``strata bench agreement`` against the session's real stack: asked to re-rank everything it holds, the service
must give the exhaustive answer; at a small depth it may not, and the bench must say so rather than assume it."""
from __future__ import annotations

import json

import numpy as np

from clients.cli import main
from common.connect import gateway_url
from evaluation.bench.agreement import SHAPES
from evaluation.bench.rerank import top_ids

QUERIES = 6


def test_top_ids_breaks_ties_by_id_and_keeps_every_tie_at_the_cut():
    ids = ["e", "d", "c", "b", "a", "f"]
    scores = np.array([0.5, 0.9, 0.5, 0.1, 0.5, 0.2], np.float32)
    assert top_ids(ids, scores, 2) == ["d", "a"]              # three tie at 0.5: the least id goes first
    assert top_ids(ids, scores, 4) == ["d", "a", "c", "e"]
    assert top_ids(ids, scores, 10) == ["d", "a", "c", "e", "f", "b"]


def test_bench_agreement_is_exact_when_the_service_reranks_all_it_holds(stack, client, tmp_path):
    report = tmp_path / "agreement.json"
    held = client.describe()
    everything = max(held.videos, held.captions)
    assert main(["bench", "agreement", "--queries", str(QUERIES), "--depths", str(everything), "10",
                 "--url", gateway_url(stack[0]), "--json", str(report)]) == 0
    rows = json.loads(report.read_text())["rows"]
    # the depth each row reports is the candidates the service re-ranked: all it holds, or 10
    assert sorted((r["direction"], r["depth"] == r["items"]) for r in rows) == [
        ("text_to_video", False), ("text_to_video", True), ("video_to_text", False), ("video_to_text", True)]
    assert all(r["depth"] == 10 for r in rows if r["depth"] != r["items"])
    for row in rows:
        assert row["queries"] == QUERIES and row["items"] == (held.videos if row["direction"] == "text_to_video"
                                                              else held.captions)
        assert tuple(row["batch"]) in SHAPES and row["exhaustive_ms"] > 0 and row["service_p50_ms"] > 0
        if row["depth"] == row["items"]:
            # The same scorer over the same stored records: the service's top 10 is the exhaustive top 10 (a pair
            # scored in another batch shape may differ in its last bits, so a near-tie may swap: 2 of 60 slots).
            assert row["agreement"] >= 1 - 2 / (10 * QUERIES)
