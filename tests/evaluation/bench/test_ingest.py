"""``strata bench ingest`` and the corpus's ``fill`` against the session's real stack: each indexes exactly the
counts it reports (ids of the benchmark corpus, deleted after, since other tests count the stack's corpus)."""
from __future__ import annotations

import json

from clients.cli import main
from common.connect import gateway_url
from evaluation.bench.corpus import caption_id, corpus_prefix, fill, video_id

START, COUNT, FLOOR = 900_000, 20, 6


def _delete(client, positions: range) -> None:
    client.delete("videos", [video_id(p) for p in positions])
    client.delete("captions", [caption_id(p) for p in positions])


def test_bench_ingest_indexes_what_it_reports_and_its_floor_the_next_positions(stack, client, tmp_path):
    before = client.describe()
    out = tmp_path / "ingest.json"
    try:
        assert main(["bench", "ingest", "--videos", str(COUNT), "--captions", str(COUNT), "--batch", "8",
                     "--floor-items", str(FLOOR), "--start", str(START), "--url", gateway_url(stack[0]),
                     "--json", str(out)]) == 0
        after = client.describe()
        floor_ids = [video_id(p) for p in range(START + COUNT, START + COUNT + FLOOR)]
        floor_scored = client.score_videos("a person", floor_ids)
    finally:
        _delete(client, range(START, START + COUNT + FLOOR))
    figures = json.loads(out.read_text())
    assert (figures["start"], figures["batch"]) == (START, 8)
    for kind, had, has in (("videos", before.videos, after.videos), ("captions", before.captions, after.captions)):
        assert figures[kind]["total"] - had == COUNT   # the service's run, before the floor's
        assert (figures[kind]["items"], figures[kind]["indexed"]) == (COUNT, COUNT)
        assert has - had == COUNT + FLOOR
        floor = figures["floor"][kind]
        assert floor["items"] == FLOOR and floor["items_per_s"] > 0 and floor["ceiling_per_s"] > 0
    # the floor wrote what the gateway serves: its videos are found by id and scored
    assert sorted(hit.id for hit in floor_scored.hits) == sorted(floor_ids)
    assert client.describe().videos == before.videos


def test_fill_indexes_the_missing_corpus_positions_with_their_captions(client):
    before = client.describe()
    try:
        first = fill(client, 3, log=lambda *_: None, batch=2, show=False)
        assert corpus_prefix(client) == 3
        again = fill(client, 5, log=lambda *_: None, batch=2, show=False)
        after = client.describe()
    finally:
        _delete(client, range(5))
    assert {kind: figures["indexed"] for kind, figures in first.items()} == {"videos": 3, "captions": 3}
    # the second fill adds positions 3 and 4 and indexes the batch before them (positions 1 and 2) again
    assert {kind: figures["items"] for kind, figures in again.items()} == {"videos": 4, "captions": 4}
    assert (after.videos, after.captions) == (before.videos + 5, before.captions + 5)
    assert corpus_prefix(client) == 0
