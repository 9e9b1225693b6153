"""``open_store`` picks the backend from the URI and names the known schemes when it cannot."""
from __future__ import annotations

import pytest

from common.errors import ConfigError
from serving.store import open_store
from serving.store.lance_store import LanceStore
from serving.store.lmdb_store import LmdbStore


@pytest.mark.parametrize("uri, kind", [
    ("lmdb:{tmp}/a", LmdbStore), ("{tmp}/b", LmdbStore), ("lmdb:{tmp}/c.lance", LmdbStore),
    ("lance:{tmp}/d", LanceStore), ("{tmp}/e.lance", LanceStore), ("{tmp}/f.lance/", LanceStore),
])
def test_scheme_or_suffix_picks_the_store(tmp_path, uri, kind):
    with open_store(uri.format(tmp=tmp_path)) as store:
        assert type(store) is kind


def test_a_path_object_is_a_plain_path(tmp_path):
    with open_store(tmp_path / "lmdb:odd") as store:
        assert type(store) is LmdbStore


def test_unknown_scheme_is_a_config_error():
    with pytest.raises(ConfigError, match=r"unknown scheme 'redis'; known: lmdb, lance, s3, gs, az"):
        open_store("redis://localhost/0")
