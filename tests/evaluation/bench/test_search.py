"""``strata bench search`` runs end to end at a tiny size: its table, its JSON, its figure; FLAT finds the exact top-C."""
from __future__ import annotations

import json

import numpy as np

from clients.cli import main
from evaluation.bench.search import exact_top, nprobe_notes, recall, vector_ids


def test_bench_search_tiny(capsys, tmp_path):
    report, figure = tmp_path / "search.json", tmp_path / "search.png"
    assert main(["bench", "search", "--quick", "--sizes", "300", "--queries", "5", "--depths", "10", "20",
                 "--nlist", "8", "--nprobes", "1", "8", "--warmup", "1", "--dim", "16",
                 "--json", str(report), "--out", str(figure)]) == 0
    out = capsys.readouterr().out
    assert "random unit vectors" in out and "recall@C" in out
    data = json.loads(report.read_text())
    assert {"vectors", "dim", "sizes", "queries", "depths", "nlist", "nprobes", "rows"} <= set(data)
    assert data["vectors"] == "random unit vectors" and data["sizes"] == [300] and data["queries"] == 5
    rows = data["rows"]
    assert {(r["index"], r["nprobe"], r["depth"]) for r in rows} == {
        (index, nprobe, depth) for depth in (10, 20)
        for index, nprobe in (("numpy exact", 0), ("FLAT", 0), ("IVF_FLAT", 1), ("IVF_FLAT", 8))}
    for row in rows:
        assert {"size", "index", "nlist", "nprobe", "depth", "recall", "p50_ms", "p95_ms", "speedup"} <= set(row)
        assert 0.0 <= row["recall"] <= 1.0 and row["p50_ms"] > 0
        if row["index"] in ("FLAT", "numpy exact") or row["nprobe"] == 8:   # exact, or every cluster visited
            assert row["recall"] == 1.0, row
        if row["index"] == "IVF_FLAT":
            assert isinstance(row["indexed_rows"], int)
    assert figure.stat().st_size > 0


def test_recall_counts_ties_at_the_cut_off():
    corpus = np.array([[1, 0], [1, 0], [0.5, 0], [0, 1]], np.float32)
    query = np.array([1, 0], np.float32)
    assert exact_top(corpus, query, 2).tolist() == [0, 1]          # ties by row (= by id)
    ids = vector_ids(4)
    row_of = {item: i for i, item in enumerate(ids)}
    scores = corpus @ query
    assert recall([ids[1], ids[0]], scores, row_of, 1) == 1.0       # the tied twin counts at C = 1
    assert recall([ids[0], ids[2]], scores, row_of, 2) == 0.5


def test_a_recall_that_nprobe_does_not_move_is_pointed_out():
    def ivf(nprobe, value, size=1000):
        return {"index": "IVF_FLAT", "size": size, "depth": 50, "nprobe": nprobe, "recall": value, "indexed_rows": 0}

    flat = [ivf(1, 0.12), ivf(32, 0.12), ivf(1, 0.5, 2000), ivf(32, 0.9, 2000), ivf(1, 1.0, 3000), ivf(8, 1.0, 3000)]
    notes = nprobe_notes(flat)
    assert len(notes) == 1 and "at 1,000 rows, C=50, IVF_FLAT recall 0.120 at every nprobe" in notes[0]
