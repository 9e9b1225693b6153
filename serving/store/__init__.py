"""The tensor store: each indexed item's scorer inputs and source features, by id (torch-free).

``open_store("lmdb:PATH")`` or a plain path: LMDB, the embedded default; ``open_store("lance:URI")``, a path
ending in ``.lance``, or an ``s3://``/``gs://`` URI: a Lance dataset, for shared or object storage.
"""
from __future__ import annotations

from pathlib import Path

from serving.store.base import TensorStore
from training.errors import ConfigError

SCHEMES = ("lmdb:", "lance:", "s3://", "gs://")


def open_store(uri: str | Path, readonly: bool = False) -> TensorStore:
    text = str(uri)
    if text.startswith("lance:") or text.endswith(".lance") or text.startswith(("s3://", "gs://")):
        from serving.store.lance_store import LanceStore

        return LanceStore(text.removeprefix("lance:"), readonly)
    if text.startswith("lmdb:") or "://" not in text and ":" not in text.split("/")[0]:
        from serving.store.lmdb_store import LmdbStore

        return LmdbStore(text.removeprefix("lmdb:"), readonly)
    raise ConfigError(f"tensor store {text!r}: unknown kind; use a folder (LMDB), lmdb:PATH, lance:URI, "
                      f"a .lance path, s3:// or gs://")
