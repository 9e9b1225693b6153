"""``strata bench e2e`` against the session's real stack, with Locust as users run it: every query of a 1-user run is
asked once and answered, the throughput runs answer without a failure, and the corpus it filled is what it says
(deleted after, since other tests count the stack's corpus)."""
from __future__ import annotations

import json

from clients.cli import main
from common.connect import gateway_url
from evaluation.bench.corpus import caption_id, corpus_prefix, video_id

ITEMS, QUERIES = 30, 12


def test_bench_e2e_asks_both_directions_under_locust(stack, client, tmp_path):
    before = client.describe()
    report, figure = tmp_path / "e2e.json", tmp_path / "e2e.png"
    try:
        assert main(["bench", "e2e", "--items", str(ITEMS), "--queries", str(QUERIES), "--concurrency", "2",
                     "--seconds", "2", "--url", gateway_url(stack[0]), "--json", str(report), "--out",
                     str(figure)]) == 0
        held = corpus_prefix(client)
        after = client.describe()
    finally:
        client.delete("videos", [video_id(p) for p in range(ITEMS)])
        client.delete("captions", [caption_id(p) for p in range(ITEMS)])
    written = json.loads(report.read_text())
    rows = written["rows"]
    (entry,) = written["footprint"]
    assert (entry["items"], entry["videos"], entry["captions"]) == (ITEMS, after.videos, after.captions)
    assert set(entry["rss_mib"]) == {"gateway", "tritonserver", "milvus"} and all(
        0 < entry["private_mib"][part] <= entry["rss_mib"][part] for part in entry["rss_mib"])
    assert entry["milvus_bytes"] > 0 and entry["store_bytes"] > 0
    assert {(r["direction"], r["users"]) for r in rows} == {(d, u) for d in ("text_to_video", "video_to_text")
                                                             for u in (1, 2)}
    for row in rows:
        assert row["failed"] == 0 and row["qps"] > 0 and 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
        assert (row["items"], row["videos"], row["captions"]) == (ITEMS, after.videos, after.captions)
        if row["users"] == 1:
            assert row["calls"] == QUERIES                       # every query once, no more
        else:
            assert row["calls"] > 0
    text = next(r for r in rows if r["direction"] == "text_to_video" and r["users"] == 1)
    assert {"parse", "backbone", "tower", "search", "fetch", "rerank"} <= set(text["stages_p50_ms"])
    assert held == ITEMS
    assert (after.videos - before.videos, after.captions - before.captions) == (ITEMS, ITEMS)
    assert figure.stat().st_size > 0
