"""Both stores keep the TensorStore semantics: upsert, order, None for unknown ids, atomic puts, drop, readers
in another process, and (LMDB) a map that grows."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from common.errors import ConfigError, DataError
from serving.store import open_store
from serving.store.lmdb_store import LmdbStore


def make_record(seed: int, frames: int) -> dict[str, np.ndarray]:
    """An HGR-like record with ``frames`` frames (T varies per item)."""
    rng = np.random.default_rng(seed)
    return {"video_event": rng.standard_normal(8).astype(np.float16),
            "video_actions": rng.standard_normal((frames, 8)).astype(np.float16),
            "video_frame_mask": np.ones(frames, np.float16),
            "frame_feats": rng.standard_normal((frames + 2, 6)).astype(np.float32),
            "frame_ids": np.arange(frames, dtype=np.int64)}


def assert_same(got, want):
    assert got is not None and list(got) == list(want)
    for name in want:
        assert got[name].dtype == want[name].dtype
        np.testing.assert_array_equal(got[name], want[name])


@pytest.fixture(params=["lmdb", "lance"])
def uri(request, tmp_path):
    return f"lmdb:{tmp_path / 'store'}" if request.param == "lmdb" else str(tmp_path / "store.lance")


def test_put_get_upsert_delete(uri):
    records = {f"video{i}": make_record(i, 3 + i) for i in range(6)}
    with open_store(uri) as store:
        store.put(list(records.items()))
        assert len(store) == 6 and sorted(store.ids()) == sorted(records)
        assert "video2" in store and "nope" not in store and "" not in store and 3 not in store
        got = store.get(["video4", "nope", "video0", "video4"])
        assert got[1] is None
        for record, name in zip(got, ["video4", "nope", "video0", "video4"]):
            if name != "nope":
                assert_same(record, records[name])
        replacement = {"video_event": np.zeros(4, np.float32)}
        store.put([("video1", replacement), ("video9", records["video0"]), ("video9", records["video5"])])
        assert len(store) == 7
        assert_same(store.get(["video1"])[0], replacement)
        assert_same(store.get(["video9"])[0], records["video5"])  # the last record of an id in one call wins
        assert store.delete(["video1", "video1", "nope"]) == 1
        assert "video1" not in store and store.get(["video1"]) == [None] and len(store) == 6
        assert store.get([]) == [] and store.delete([]) == 0


def test_reopen_readonly_sees_data_and_refuses_writes(uri):
    with open_store(uri) as store:
        store.put([("a", make_record(1, 4))])
    with open_store(uri, readonly=True) as store:
        assert_same(store.get(["a"])[0], make_record(1, 4))
        for action in (lambda: store.put([("b", make_record(2, 2))]), lambda: store.delete(["a"]), store.drop):
            with pytest.raises(ConfigError, match="read-only"):
                action()


def test_readonly_open_of_a_missing_store_is_refused(tmp_path):
    for uri in (f"lmdb:{tmp_path / 'none'}", str(tmp_path / "none.lance")):
        with pytest.raises(DataError, match="not found"):
            open_store(uri, readonly=True)


def test_bad_ids_are_refused(uri):
    with open_store(uri) as store:
        for bad in ("", "x" * 512, 7):
            with pytest.raises(DataError, match="store id"):
                store.put([(bad, make_record(0, 1))])
        assert len(store) == 0


def test_a_put_is_all_or_none(uri):
    with open_store(uri) as store:
        store.put([("kept", make_record(0, 2))])
        broken = {"video_event": np.array([object()], dtype=object)}
        with pytest.raises(DataError, match="dtype object"):
            store.put([("kept", make_record(1, 5)), ("new", make_record(2, 2)), ("broken", broken)])
        assert store.ids() == ["kept"]
        assert_same(store.get(["kept"])[0], make_record(0, 2))


def test_drop_deletes_everything(uri, tmp_path):
    store = open_store(uri)
    store.put([("a", make_record(0, 2))])
    store.drop()
    assert list(tmp_path.iterdir()) == []
    with open_store(uri) as fresh:
        assert len(fresh) == 0


READER = textwrap.dedent("""
    import sys
    from serving.store import open_store
    with open_store(sys.argv[1], readonly=True) as store:
        first, unknown = store.get(["v1", "zzz"])
        print(len(store), float(first["frame_feats"].sum()), unknown)
""")


def test_another_process_reads_while_the_writer_stays_open(uri):
    with open_store(uri) as store:
        store.put([("v0", make_record(0, 3)), ("v1", make_record(1, 7))])
        out = subprocess.run([sys.executable, "-c", READER, uri], capture_output=True, text=True, check=True).stdout
        assert out.split() == ["2", repr(float(make_record(1, 7)["frame_feats"].sum())), "None"]
        store.put([("v1", make_record(5, 2)), ("v2", make_record(2, 2))])  # the writer goes on; the reader sees it
        out = subprocess.run([sys.executable, "-c", READER, uri], capture_output=True, text=True, check=True).stdout
        assert out.split() == ["3", repr(float(make_record(5, 2)["frame_feats"].sum())), "None"]


def test_lmdb_map_grows_when_full(tmp_path):
    with LmdbStore(tmp_path / "small", map_size=64 * 1024) as store:
        big = {f"v{i}": {"frame_feats": np.full((64, 64), i, np.float32)} for i in range(40)}  # 16 KB each, 640 KB in all
        store.put(list(big.items()))
        assert store._env.info()["map_size"] >= 640 * 1024
        assert len(store) == 40 and float(store.get(["v39"])[0]["frame_feats"][0, 0]) == 39


def test_fields_read_only_the_arrays_asked_for(uri):
    records = {f"video{i}": make_record(i, 2 + i) for i in range(3)}
    with open_store(uri) as store:
        store.put(list(records.items()))
        got = store.get(["video2", "nope", "video0"], fields={"video_event", "video_frame_mask"})
        assert got[1] is None
        for record, name in ((got[0], "video2"), (got[2], "video0")):
            assert_same(record, {k: records[name][k] for k in ("video_event", "video_frame_mask")})
            assert not record["video_event"].flags.writeable


def test_storage_gone_under_the_store_is_store_unavailable_and_the_gateway_says_retry(tmp_path):
    import shutil

    from serving.gateway.errors import failure
    from serving.store.base import StoreUnavailable

    location = tmp_path / "store.lance"
    with open_store(str(location)) as store:
        store.put([("video0", make_record(0, 2))])
        shutil.rmtree(location)       # the disk or bucket under it went away
        for call in (lambda: store.get(["video0"]), lambda: store.put([("video1", make_record(1, 2))]),
                     lambda: store.delete(["video0"])):
            with pytest.raises(StoreUnavailable, match="store.lance") as err:
                call()
            answer = failure(err.value)
            assert (answer.code, answer.reason, answer.metadata, answer.retry_after_s) == (
                "UNAVAILABLE", "BACKEND_UNAVAILABLE", {"backend": "store"}, 1.0)
            assert str(tmp_path) not in answer.message    # the caller is told what to do, the log where
