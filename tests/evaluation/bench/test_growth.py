"""``strata bench growth``: the fits on figures whose answer is known, a report it cannot read named, and one run
against the session's real stack at two tiny sizes (the corpus it filled deleted after, since other tests count the
stack's corpus)."""
from __future__ import annotations

import json
import math

import pytest

from clients.cli import main
from common.connect import gateway_url
from evaluation.bench.corpus import caption_id, video_id
from evaluation.bench.growth import fit_line, growth

SIZES, QUERIES = (10, 30), 6


def _row(direction, items, p50):
    return {"direction": direction, "users": 1, "items": items, "videos": items, "captions": items,
            "p50_ms": p50, "p99_ms": 2 * p50}


def test_fit_line_recovers_a_known_line_and_its_power_law():
    fit = fit_line([1_000, 10_000, 100_000], [3.0 + 2e-4 * x for x in (1_000, 10_000, 100_000)])
    assert fit["intercept"] == pytest.approx(3.0) and fit["per_10k"] == pytest.approx(2.0)
    assert fit["ratio"] == pytest.approx(23.0 / 3.2)
    quadratic = fit_line([10, 100], [1.0, 100.0])   # y = x^2 / 100: exponent 2 through the ends
    assert quadratic["exponent"] == pytest.approx(2.0)
    flat = fit_line([10, 100, 1_000], [5.0, 5.0, 5.0])
    assert flat["per_10k"] == pytest.approx(0.0, abs=1e-9) and flat["exponent"] == pytest.approx(0.0)


def test_growth_fits_each_direction_memory_and_disk_against_items_held():
    rows = [_row(d, n, p) for d, base in (("text_to_video", 20.0), ("video_to_text", 8.0))
            for n, p in ((1_000, base), (10_000, base + 9.0))]
    footprints = [{"items": n, "videos": n, "captions": n, "private_mib": {"gateway": 100 + n / 1_000},
                   "milvus_bytes": 5_000 * 2 * n, "store_bytes": None} for n in (1_000, 10_000)]
    fits = growth(rows, footprints)
    assert set(fits) == {"text_to_video p50_ms", "text_to_video p99_ms", "video_to_text p50_ms",
                         "video_to_text p99_ms", "gateway private memory", "Milvus on disk"}   # no local store
    # 9 ms more over 18,000 more items held: 5 ms per 10,000.
    assert fits["text_to_video p50_ms"]["per_10k"] == pytest.approx(5.0)
    assert fits["video_to_text p99_ms"]["ratio"] == pytest.approx(34.0 / 16.0)
    assert fits["gateway private memory"]["per_10k"] == pytest.approx(5.0)   # 1 MiB per 2,000 held
    assert fits["Milvus on disk"]["per_10k"] * 2**20 / 10_000 == pytest.approx(5_000)   # bytes per item


def test_a_report_it_cannot_fit_is_named(tmp_path, capsys):
    bad, one_size = tmp_path / "other.json", tmp_path / "one.json"
    bad.write_text(json.dumps({"rows": []}))
    one_size.write_text(json.dumps({"rows": [_row("text_to_video", 10, 5.0)], "footprint": []}))
    for path, message in ((bad, "other.json: not a strata bench e2e report"),
                          (tmp_path / "missing.json", "missing.json: no such file"),
                          (one_size, "at least two corpus sizes, got [10]")):
        assert main(["bench", "growth", "--from", str(path)]) != 0
        assert message in capsys.readouterr().err


def test_bench_growth_measures_two_sizes_through_the_gateway(stack, client, tmp_path):
    before = client.describe()
    report, figure = tmp_path / "growth.json", tmp_path / "growth.png"
    try:
        assert main(["bench", "growth", "--items", *map(str, SIZES), "--queries", str(QUERIES),
                     "--url", gateway_url(stack[0]), "--json", str(report), "--out", str(figure)]) == 0
    finally:
        client.delete("videos", [video_id(p) for p in range(max(SIZES))])
        client.delete("captions", [caption_id(p) for p in range(max(SIZES))])
    written = json.loads(report.read_text())
    assert written["sizes"] == list(SIZES)
    assert {(r["direction"], r["items"]) for r in written["rows"]} == {
        (d, n) for d in ("text_to_video", "video_to_text") for n in SIZES}
    assert all(r["users"] == 1 and r["calls"] == QUERIES and r["failed"] == 0 for r in written["rows"])
    fits = written["fits"]
    held = [before.videos + before.captions + 2 * n for n in SIZES]
    assert fits["text_to_video p50_ms"]["sizes"] == held
    assert {"gateway private memory", "tritonserver private memory", "milvus private memory",
            "Milvus on disk", "tensor store on disk"} <= set(fits)
    assert all(math.isfinite(fit["per_10k"]) for fit in fits.values())
    assert figure.stat().st_size > 0
    # The same figures fitted again from the report give the same fits.
    again = tmp_path / "again.json"
    e2e_like = tmp_path / "e2e.json"
    e2e_like.write_text(json.dumps({"rows": written["rows"], "footprint": written["footprint"]}))
    assert main(["bench", "growth", "--from", str(e2e_like), "--json", str(again), "--out", str(figure)]) == 0
    assert json.loads(again.read_text())["fits"] == fits
