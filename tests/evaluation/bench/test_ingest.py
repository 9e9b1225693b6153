"""``strata bench ingest`` and the corpus's ``fill`` against the session's real stack: each indexes exactly the
counts it reports (ids of the benchmark corpus, deleted after, since other tests count the stack's corpus)."""
from __future__ import annotations

import json

from clients.cli import main
from common.connect import gateway_url
from evaluation.bench.corpus import caption_id, fill, video_id

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


def test_fill_indexes_only_what_is_missing(client):
    before = client.describe()
    wanted = {"videos": before.videos + 3, "captions": before.captions + 2}
    try:
        first = fill(client, wanted["videos"], wanted["captions"], log=lambda *_: None, batch=2, show=False)
        again = fill(client, wanted["videos"], wanted["captions"], log=lambda *_: None, show=False)
        after = client.describe()
    finally:
        _delete(client, range(min(before.videos, before.captions), max(wanted.values())))
    assert {kind: figures["indexed"] for kind, figures in first.items()} == {"videos": 3, "captions": 2}
    assert {kind: figures["items"] for kind, figures in again.items()} == {"videos": 0, "captions": 0}
    assert (after.videos, after.captions) == (wanted["videos"], wanted["captions"])
