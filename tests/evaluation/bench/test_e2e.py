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


def test_bench_e2e_measures_the_floor_of_each_query_stage_in_its_own_process(stack, client, tmp_path):
    """The floor run asks the same queries with the gateway's query code here: it runs the same stages (with
    ``--evidence``, the evidence stage too), and a query there costs CPU from which a throughput ceiling follows."""
    report = tmp_path / "e2e.json"
    try:
        assert main(["bench", "e2e", "--items", str(ITEMS), "--queries", str(QUERIES), "--concurrency", "2",
                     "--seconds", "1", "--floor-queries", "5", "--evidence", "--url", gateway_url(stack[0]),
                     "--json", str(report), "--out", str(tmp_path / "e2e.png")]) == 0
    finally:
        client.delete("videos", [video_id(p) for p in range(ITEMS)])
        client.delete("captions", [caption_id(p) for p in range(ITEMS)])
    rows = json.loads(report.read_text())["rows"]
    for row in rows:
        if row["users"] != 1:
            assert "floor" not in row
            continue
        assert "evidence" in row["stages_p50_ms"]
        floor = row["floor"]
        assert floor["queries"] == 5
        assert set(floor["stages_p50_ms"]) == set(row["stages_p50_ms"])
        assert 0 < floor["p50_ms"] <= floor["p99_ms"] and floor["cpu_ms"] > 0 and floor["qps_ceiling"] > 0


def test_target_table_says_met_or_missed_beside_each_floor():
    from evaluation.bench.e2e import target_table

    def row(items, direction, users, p50, p99, qps=0.0, failed=0, floor=None):
        return {"items": items, "direction": direction, "users": users, "p50_ms": p50, "p99_ms": p99, "qps": qps,
                "failed": failed, **({"floor": floor} if floor else {})}

    floor = {"p50_ms": 4.0, "p99_ms": 9.0, "qps_ceiling": 400.0}
    rows = [row(1_000, "text_to_video", 1, 10.0, 30.0, floor={**floor, "p50_ms": 2.0}),
            row(100_000, "text_to_video", 1, 12.0, 60.0, floor=floor),
            row(100_000, "text_to_video", 8, 0, 0, qps=150.0, failed=1),
            row(1_000, "video_to_text", 1, 5.0, 8.0),
            row(100_000, "video_to_text", 1, 20.0, 25.0),
            row(100_000, "video_to_text", 8, 0, 0, qps=120.0)]
    table = target_table(rows).splitlines()
    text = [line for line in table if "text_to_video" in line]
    assert [line.split()[-1] for line in text] == ["met", "missed", "missed", "met"]   # p50, p99, QPS (1 failed), growth
    assert [line.split()[-2] for line in text] == ["4.00", "9.00", "400.00", "2.00"]   # each beside its floor
    video = [line for line in table if "video_to_text" in line]
    assert [line.split()[-1] for line in video] == ["missed", "met", "missed"] and video[0].split()[-2] == "-"
