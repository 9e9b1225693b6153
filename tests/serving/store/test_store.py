"""Tensor stores (LMDB, Lance): records round-trip without pickle; upsert, get, delete, atomic puts, other readers."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from serving.store import open_store
from serving.store.record import decode_record, encode_record
from training.errors import ConfigError, DataError


def record(seed: int, frames: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"video_event": rng.standard_normal(8).astype(np.float16),
            "video_actions": rng.standard_normal((frames, 8)).astype(np.float16),
            "frame_feats": rng.standard_normal((frames, 4)).astype(np.float32),
            "empty_levels": np.array([0, 1, 0], np.int64), "scalar": np.float32(2.5) * np.ones((), np.float32),
            "nothing": np.zeros((0, 8), np.float32)}


def assert_same(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        np.testing.assert_array_equal(a[k], b[k])


def test_record_round_trip_and_refusals():
    assert_same(decode_record(encode_record(record(0))), record(0))
    with pytest.raises(DataError, match="cannot be stored"):
        encode_record({"names": np.array(["a"], dtype=object)})
    data = encode_record(record(1))
    with pytest.raises(DataError, match="corrupt tensor record"):
        decode_record(data[:-10])
    with pytest.raises(DataError, match="corrupt tensor record"):
        decode_record(b"\xff\xff\x00\x00garbage")


@pytest.fixture(params=["lmdb", "lance"])
def store_uri(request, tmp_path):
    return str(tmp_path / "s") if request.param == "lmdb" else f"lance:{tmp_path / 's.lance'}"


def test_upsert_get_delete(store_uri):
    with open_store(store_uri) as store:
        store.put([("a", record(0)), ("b", record(1, frames=3))])
        store.put([("a", record(2))])                      # upsert replaces
        got = store.get(["b", "nosuch", "a"])
        assert got[1] is None
        assert_same(got[0], record(1, frames=3))
        assert_same(got[2], record(2))
        assert len(store) == 2 and sorted(store.ids()) == ["a", "b"] and "a" in store and "zz" not in store
        assert store.delete(["a", "nosuch"]) == 1
        assert len(store) == 1 and store.get(["a"]) == [None]
        store.drop()
    with open_store(store_uri) as fresh:
        assert len(fresh) == 0


def test_a_put_that_cannot_be_encoded_writes_nothing(store_uri):
    with open_store(store_uri) as store:
        store.put([("keep", record(0))])
        with pytest.raises(DataError):
            store.put([("x", record(1)), ("y", {"bad": np.array(["s"], dtype=object)})])
        assert sorted(store.ids()) == ["keep"]


def test_lmdb_map_grows_and_another_process_reads_while_the_writer_is_open(tmp_path):
    from serving.store.lmdb_store import LmdbStore

    store = LmdbStore(tmp_path / "s", map_size=1 << 16)       # 64 KB: the puts below need several growths
    for i in range(20):
        store.put([(f"id{i}", {"x": np.full((100, 64), i, np.float32)})])
    code = ("import sys; from serving.store import open_store; s = open_store(sys.argv[1], readonly=True); "
            "r = s.get(['id19']); print(len(s), float(r[0]['x'][0, 0]))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s")], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["20", "19.0"]
    store.close()


def test_unknown_store_kind_is_refused():
    with pytest.raises(ConfigError, match="unknown kind"):
        open_store("redis://localhost/0")


def test_store_imports_without_torch():
    code = "import sys, serving.store, serving.store.lmdb_store, serving.store.lance_store; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_bench_store_prints_every_store_side_by_side(capsys):
    from clients.cli import main

    assert main(["bench", "store", "--rows", "40", "--fetch", "10", "--repeats", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    table = {line.split()[0]: line.split()[1:] for line in lines[lines.index(next(l for l in lines if l.startswith("store"))) + 1:]}
    assert set(table) == {"lmdb", "lance", "npy-mmap"}
    assert all(float(v[0]) > 0 and float(v[2]) > 0 for v in table.values())
