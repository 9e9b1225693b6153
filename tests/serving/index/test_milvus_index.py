"""MilvusIndex against a real Milvus Lite server: search exactness and order, upserts, deletes, counts, state."""
from __future__ import annotations

import numpy as np
import pytest

from common.errors import ConfigError, DataError
from serving.index.milvus_index import MAX_BATCH_ROWS, SCHEMA_VERSION, STATE_COLLECTION, MilvusIndex
from serving.index.spec import IndexSpec


def numpy_top(vectors: np.ndarray, ids: list[str], queries: np.ndarray, limit: int) -> list[list[tuple[str, float]]]:
    """The reference: exhaustive inner products, best first, ties by id ascending."""
    scores = queries.astype(np.float64) @ vectors.astype(np.float64).T
    return [sorted(zip(ids, row.tolist()), key=lambda p: (-p[1], p[0]))[:limit] for row in scores]


def video_rows(vectors: np.ndarray, prefix: str = "v") -> list[dict]:
    return [{"id": f"{prefix}{i:04d}", "vector": v, "source": f"file{i}.mp4", "duration": float(i)}
            for i, v in enumerate(vectors)]


def test_search_equals_numpy_inner_products(index):
    ix, name = index
    rng = np.random.default_rng(0)
    vectors = (rng.standard_normal((300, 24)) * rng.uniform(0.5, 2.0, (300, 1))).astype(np.float32)  # not unit-norm
    ix.ensure_collection(name, 24, "videos")
    assert ix.upsert(name, video_rows(vectors)) == 300
    queries = rng.standard_normal((4, 24)).astype(np.float32)
    got = ix.search(name, queries, limit=25)
    want = numpy_top(vectors, [f"v{i:04d}" for i in range(300)], queries, 25)
    for hits, ref in zip(got, want):
        assert [h[0] for h in hits] == [r[0] for r in ref]
        np.testing.assert_allclose([h[1] for h in hits], [r[1] for r in ref], rtol=1e-5, atol=1e-5)


def test_equal_scores_are_ordered_by_id(index):
    ix, name = index
    ix.ensure_collection(name, 4, "videos")
    same = np.array([1, 0, 0, 0], np.float32)
    rows = [{"id": i, "vector": same} for i in ("d", "b", "e", "a", "c")]
    rows += [{"id": f"x{i}", "vector": np.array([0.5, 0, 0, 0], np.float32)} for i in range(10)]
    ix.upsert(name, rows)
    query = np.array([[2, 0, 0, 0]], np.float32)
    assert [h[0] for h in ix.search(name, query, limit=3)[0]] == ["a", "b", "c"]   # the tie straddles the cut
    assert [h[0] for h in ix.search(name, query, limit=7)[0]] == ["a", "b", "c", "d", "e", "x0", "x1"]
    assert all(h[1] == 2.0 for h in ix.search(name, query, limit=5)[0])


def test_rerun_of_an_interrupted_ingest_leaves_each_item_once(index):
    ix, name = index
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((120, 8)).astype(np.float32)
    ix.ensure_collection(name, 8, "videos")
    ix.upsert(name, video_rows(vectors[:70]))          # interrupted after 70
    ix.upsert(name, video_rows(vectors))               # the rerun writes all 120 again
    assert ix.count(name) == 120
    ix.upsert(name, [{"id": "v0003", "vector": np.ones(8, np.float32), "source": "new.mp4", "duration": 9.5}])
    assert ix.count(name) == 120
    row = ix.get(name, ["v0003"], ["source", "duration", "vector"])["v0003"]
    assert row["source"] == "new.mp4" and row["duration"] == 9.5
    np.testing.assert_array_equal(row["vector"], np.ones(8, np.float32))
    # the same id twice in one call: the last row wins
    ix.upsert(name, [{"id": "dup", "vector": np.zeros(8, np.float32)}, {"id": "dup", "vector": np.ones(8, np.float32)}])
    assert ix.count(name) == 121
    np.testing.assert_array_equal(ix.get(name, ["dup"], ["vector"])["dup"]["vector"], np.ones(8, np.float32))


def test_batches_beyond_one_call(index):
    ix, name = index
    n = 2 * MAX_BATCH_ROWS + 300
    ix.ensure_collection(name, 4, "captions")
    vectors = np.random.default_rng(2).standard_normal((n, 4)).astype(np.float32)
    assert ix.upsert(name, [{"id": f"c{i}", "vector": v} for i, v in enumerate(vectors)]) == n
    assert ix.count(name) == n


def test_delete_and_exact_count(index):
    ix, name = index
    vectors = np.random.default_rng(3).standard_normal((40, 4)).astype(np.float32)
    ix.ensure_collection(name, 4, "videos")
    ix.upsert(name, video_rows(vectors))
    ix.upsert(name, video_rows(vectors[:10]))
    assert ix.count(name) == 40
    assert ix.delete(name, ["v0000", "v0001", "missing"]) == 2
    assert ix.delete(name, ["v0000"]) == 0
    assert ix.count(name) == 38
    assert ix.exists(name, ["v0000", "v0002", "missing"]) == {"v0002"}
    assert "v0000" not in {h[0] for h in ix.search(name, vectors[:1], limit=40)[0]}
    ix.upsert(name, video_rows(vectors[:1]))
    assert ix.count(name) == 39


def test_get_and_metadata_round_trip(index):
    ix, name = index
    ix.ensure_collection(name + "_v", 3, "videos")
    ix.ensure_collection(name + "_c", 3, "captions")
    v = np.array([0.25, -1.5, 3.0], np.float32)
    ix.upsert(name + "_v", [{"id": "vid/1", "vector": v, "source": "clips/a b.mp4", "duration": 12.5},
                            {"id": "vid/2", "vector": v}])
    videos = ix.get(name + "_v", ["vid/1", "vid/2", "nope"], ["source", "duration", "vector"])
    assert set(videos) == {"vid/1", "vid/2"}
    assert videos["vid/1"]["source"] == "clips/a b.mp4" and videos["vid/1"]["duration"] == 12.5
    assert videos["vid/2"]["source"] == "" and videos["vid/2"]["duration"] == -1.0
    np.testing.assert_array_equal(videos["vid/1"]["vector"], v)
    text = 'A dog chases a "cat" — über den Zaun'
    ix.upsert(name + "_c", [{"id": "cap1", "vector": v, "text": text, "video_id": "vid/1"},
                            {"id": "cap2", "vector": -v, "text": "orphan"}])
    captions = ix.get(name + "_c", ["cap1", "cap2"])
    assert captions == {"cap1": {"text": text, "video_id": "vid/1"}, "cap2": {"text": "orphan", "video_id": ""}}
    hits = ix.search(name + "_c", v[None], limit=5, filter='video_id == "vid/1"')
    assert [h[0] for h in hits[0]] == ["cap1"]
    assert [h[0] for h in ix.search(name + "_v", v[None], limit=5, filter="duration > 0")[0]] == ["vid/1"]


def test_mismatches_are_refused(index):
    ix, name = index
    ix.ensure_collection(name, 8, "videos")
    ix.ensure_collection(name, 8, "videos")                    # the same again is fine
    with pytest.raises(ConfigError, match="dim 8"):
        ix.ensure_collection(name, 16, "videos")
    with pytest.raises(ConfigError, match="videos"):
        ix.ensure_collection(name, 8, "captions")
    with pytest.raises(ConfigError, match="kind"):
        ix.ensure_collection(name + "_x", 8, "frames")
    with pytest.raises(DataError, match="dim is 8"):
        ix.upsert(name, [{"id": "a", "vector": np.zeros(4, np.float32)}])
    with pytest.raises(DataError, match="unknown field"):
        ix.upsert(name, [{"id": "a", "vector": np.zeros(8, np.float32), "text": "captions only"}])
    with pytest.raises(DataError, match="id"):
        ix.upsert(name, [{"vector": np.zeros(8, np.float32)}])
    with pytest.raises(DataError, match=r"\[q, 8\]"):
        ix.search(name, np.zeros((1, 4), np.float32), limit=3)
    with pytest.raises(DataError, match="no collection"):
        ix.count(name + "_missing")
    assert ix.count(name) == 0


def spy_on_search_params(ix: MilvusIndex, monkeypatch) -> list[dict]:
    """The search_params of every search the index sends to Milvus (the real search still runs)."""
    client, seen = ix._client(), []
    real = client.search

    def search(*args, **kwargs):
        seen.append(kwargs["search_params"])
        return real(*args, **kwargs)

    monkeypatch.setattr(client, "search", search)
    return seen


def test_ivf_flat_index_is_made_and_searched_with_nprobe(index, monkeypatch):
    ix, name = index
    rng = np.random.default_rng(4)
    vectors = rng.standard_normal((200, 8)).astype(np.float32)
    assert ix.ensure_collection(name, 8, "videos", IndexSpec("IVF_FLAT", nlist=8)) == IndexSpec("IVF_FLAT", nlist=8)
    ix.upsert(name, video_rows(vectors))
    other = MilvusIndex(ix.uri, nprobe=3)                     # another process reads the index from Milvus
    assert other.index_of(name) == IndexSpec("IVF_FLAT", nlist=8)
    seen = spy_on_search_params(ix, monkeypatch)
    hits = ix.search(name, vectors[:1], limit=5)[0]
    assert len(hits) == 5 and hits == sorted(hits, key=lambda p: (-p[1], p[0]))
    ix.search(name, vectors[:1], limit=5, nprobe=2)
    ix.search(name, vectors[:1], limit=5, nprobe=500)         # more than the collection's nlist: all of them
    assert seen == [{"metric_type": "IP", "params": {"nprobe": nprobe}} for nprobe in (8, 2, 8)]  # default 16 > 8
    assert other.search_params(name) == {"metric_type": "IP", "params": {"nprobe": 3}}
    other.close()


def test_flat_searches_carry_no_nprobe_and_settings_give_the_index_its_nprobe(index, milvus, monkeypatch):
    from common.settings import Settings

    ix, name = index
    assert ix.ensure_collection(name, 8, "videos") == IndexSpec("FLAT")
    ix.upsert(name, video_rows(np.eye(8, dtype=np.float32)))
    seen = spy_on_search_params(ix, monkeypatch)
    assert ix.search(name, np.eye(8, dtype=np.float32)[:1], limit=1, nprobe=4)[0][0][0] == "v0000"
    assert seen == [{"metric_type": "IP"}]
    chosen = MilvusIndex.from_settings(Settings(milvus_uri=milvus[1], index_type="IVF_FLAT", index_nprobe=7))
    assert chosen.nprobe == 7
    chosen.close()
    with pytest.raises(ConfigError, match="nprobe"):
        MilvusIndex(milvus[1], nprobe=0)


def test_the_search_consistency_setting_reaches_milvus_and_an_unknown_level_is_refused(index, milvus, monkeypatch):
    """Session: this client's own writes are visible to its searches (what the level promises on any Milvus)."""
    from common.settings import Settings

    _, name = index
    session = MilvusIndex.from_settings(Settings(milvus_uri=milvus[1], search_consistency="Session"))
    session.ensure_collection(name, 8, "videos")
    session.upsert(name, video_rows(np.eye(8, dtype=np.float32)))
    client, seen = session._client(), []
    real = client.search
    monkeypatch.setattr(client, "search", lambda *a, **kw: seen.append(kw["consistency_level"]) or real(*a, **kw))
    assert session.search(name, np.eye(8, dtype=np.float32)[2:3], limit=1)[0][0][0] == "v0002"
    assert seen == ["Session"]
    session.close()
    with pytest.raises(ValueError, match="search_consistency must be one of Strong, Bounded, Session, Eventually"):
        Settings(search_consistency="Weak")
    with pytest.raises(ConfigError, match="consistency must be one of"):
        MilvusIndex(milvus[1], consistency="strong")


def test_an_existing_collection_keeps_its_index_and_says_so(index, monkeypatch, caplog):
    ix, name = index
    ivf = IndexSpec("IVF_FLAT", nlist=4)
    ix.ensure_collection(name, 8, "videos", ivf)
    fresh = MilvusIndex(ix.uri)                               # as a gateway started with other settings
    with caplog.at_level("WARNING", logger="strata.index"):
        assert fresh.ensure_collection(name, 8, "videos", IndexSpec("FLAT")) == ivf
    assert "keeps its index IVF_FLAT(nlist=4); FLAT was asked for" in caplog.text
    assert "swap to a new version, or drop the collection and index again" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="strata.index"):
        fresh.ensure_collection(name, 8, "videos", ivf)   # the same: nothing to say
    assert caplog.text == ""
    fresh.upsert(name, video_rows(np.eye(8, dtype=np.float32)))
    seen = spy_on_search_params(fresh, monkeypatch)
    fresh.search(name, np.eye(8, dtype=np.float32)[:1], limit=2)
    assert seen == [{"metric_type": "IP", "params": {"nprobe": 4}}]   # searched as the index in force needs
    fresh.close()


def test_hnsw_on_milvus_lite_is_refused_with_the_fix_and_leaves_no_collection(index):
    """Milvus Lite builds FLAT and IVF_FLAT only: Milvus itself refuses HNSW, and the collection pymilvus made
    before asking for the index is dropped again."""
    ix, name = index
    with pytest.raises(ConfigError, match=r"HNSW\(M=16, efConstruction=200\) index .*Milvus Lite builds FLAT and "
                                          r"IVF_FLAT only: set index_type to one of those, or milvus_uri"):
        ix.ensure_collection(name, 8, "videos", IndexSpec("HNSW", m=16, ef_construction=200))
    assert not ix.has(name)


def test_state_record_round_trip(index):
    ix, _ = index
    key = "test-active-model"
    ix.delete_state(key)
    assert ix.get_state(key) is None
    ix.set_state(key, {"model": "hgr", "version": 3, "collection": "hgr_v3"})
    assert ix.get_state(key) == {"model": "hgr", "version": 3, "collection": "hgr_v3"}
    ix.set_state(key, {"model": "hgr", "version": 4})
    other = MilvusIndex(ix.uri)                                # another replica reads the same record
    assert other.get_state(key) == {"model": "hgr", "version": 4}
    other.close()
    assert STATE_COLLECTION not in ix.collections()
    with pytest.raises(DataError):
        ix.set_state(key, ["not", "a", "dict"])


def test_unreachable_milvus(tmp_path):
    from serving.index.milvus_index import IndexUnavailable
    from serving.process import free_port

    ix = MilvusIndex(f"http://127.0.0.1:{free_port()}", timeout_s=2)
    assert ix.ping() is False
    with pytest.raises(IndexUnavailable, match="127.0.0.1"):
        ix.collections()



def test_every_index_gets_a_connection_of_its_own(milvus):
    """pymilvus reuses a connection by alias whatever its address, so no two indexes may share an alias: an index
    dropped unclosed (as a command leaves it at exit) must not hand its connection to the next one, which may be
    given the same id() and would then talk to whatever server the first one reached."""
    from pymilvus import connections

    _, uri = milvus
    before = {alias for alias, _ in connections.list_connections()}
    for _ in range(5):
        index = MilvusIndex(uri, timeout_s=20)
        assert index.ping()
        del index                      # unclosed: its connection stays in pymilvus's table
    assert len({alias for alias, _ in connections.list_connections()} - before) == 5


def _video_collection(ix: MilvusIndex, name: str, description: str) -> None:
    """A videos collection whose description is ``description`` (as an older or newer Strata would have made it)."""
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False, description=description)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=512)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=8)
    schema.add_field("source", DataType.VARCHAR, max_length=4096)
    schema.add_field("duration", DataType.FLOAT)
    ix._create(name, schema, ix._index_params(IndexSpec()))


def test_a_collection_carries_its_schema_version_and_another_version_is_refused(index):
    ix, name = index
    ix.ensure_collection(name, 8, "videos")
    described = ix._call("describe", lambda c, **kw: c.describe_collection(name, **kw))["description"]
    assert described == f"strata:videos;schema={SCHEMA_VERSION}"
    _video_collection(ix, name + "_older", "strata:videos")     # made before descriptions named the version
    fresh = MilvusIndex(ix.uri)                                 # reads the descriptions, not this one's cache
    try:
        fresh.ensure_collection(name + "_older", 8, "videos")   # the same fields: read as version 1
        fresh.upsert(name + "_older", video_rows(np.eye(8, dtype=np.float32)[:2]))
        assert fresh.count(name + "_older") == 2
        _video_collection(ix, name + "_newer", f"strata:videos;schema={SCHEMA_VERSION + 1}")
        with pytest.raises(ConfigError, match="made by a newer Strata .*upgrade Strata"):
            fresh.ensure_collection(name + "_newer", 8, "videos")
        _video_collection(ix, name + "_old", "strata:videos;schema=0")
        with pytest.raises(ConfigError, match="schema version 0, not 1: re-embed the corpus"):
            fresh.count(name + "_old")
    finally:
        fresh.close()


def test_a_level_collection_of_another_schema_version_is_refused(index):
    from pymilvus import DataType, MilvusClient

    from serving.index.milvus_index import LevelIndex

    ix, name = index
    levels = LevelIndex(ix)
    levels.ensure(name, {"event": 4})
    assert ix._call("d", lambda c, **kw: c.describe_collection(name, **kw))["description"] == \
        f"strata:levels:event=4;schema={SCHEMA_VERSION}"
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False,
                                        description=f"strata:levels:event=4;schema={SCHEMA_VERSION + 1}")
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=512)
    schema.add_field("event", DataType.FLOAT_VECTOR, dim=4)
    params = MilvusClient.prepare_index_params()
    params.add_index("event", index_type="FLAT", metric_type="IP")
    ix._create(name + "_newer", schema, params)
    with pytest.raises(ConfigError, match="upgrade Strata"):
        levels.ensure(name + "_newer", {"event": 4})
