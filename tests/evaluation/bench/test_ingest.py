"""``strata bench ingest`` and the corpus's ``fill`` against the session's real stack: each indexes exactly the
counts it reports (ids of the benchmark corpus, deleted after, since other tests count the stack's corpus)."""
from __future__ import annotations

import json

from clients.cli import main
from common.connect import gateway_url
from evaluation.bench.corpus import caption_id, corpus_prefix, fill, video_id

START, COUNT = 900_000, 20


def _delete(client, positions: range) -> None:
    client.delete("videos", [video_id(p) for p in positions])
    client.delete("captions", [caption_id(p) for p in positions])


def test_bench_ingest_indexes_what_it_reports(stack, client, tmp_path):
    before = client.describe()
    out = tmp_path / "ingest.json"
    try:
        assert main(["bench", "ingest", "--videos", str(COUNT), "--captions", str(COUNT), "--batch", "8",
                     "--start", str(START), "--url", gateway_url(stack[0]), "--json", str(out)]) == 0
        after = client.describe()
    finally:
        _delete(client, range(START, START + COUNT))
    figures = json.loads(out.read_text())
    assert (figures["start"], figures["batch"]) == (START, 8)
    for kind, had, has in (("videos", before.videos, after.videos), ("captions", before.captions, after.captions)):
        assert (figures[kind]["items"], figures[kind]["indexed"], figures[kind]["total"]) == (COUNT, COUNT, has)
        assert has - had == COUNT
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
