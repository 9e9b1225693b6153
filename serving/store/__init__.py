"""The gateway's tensor store: each indexed item's scorer inputs and source features, by id (torch-free).

``open_store(uri)`` picks the backend from the URI: ``lmdb:PATH`` or a plain path is an LMDB environment (the
embedded default); ``lance:PATH``, a path ending in ``.lance`` or an object-storage URI (``s3://``, ``gs://``,
``az://``) is a Lance dataset.
"""
from __future__ import annotations

import re
from pathlib import Path

from common.errors import ConfigError
from serving.store.base import TensorStore
from serving.store.record import decode_record, encode_record

OBJECT_STORE_SCHEMES = ("s3", "gs", "az")
SCHEMES = ("lmdb", "lance", *OBJECT_STORE_SCHEMES)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")  # two characters at least, so that C:\ stays a path

__all__ = ["SCHEMES", "TensorStore", "decode_record", "encode_record", "open_store"]


def open_store(uri: str | Path, readonly: bool = False) -> TensorStore:
    """Open (or create, unless ``readonly``) the tensor store at ``uri``; ``ConfigError`` for an unknown scheme."""
    text = str(uri)
    match = None if isinstance(uri, Path) else _SCHEME.match(text)
    scheme = match.group(1).lower() if match else None
    if scheme is not None and scheme not in SCHEMES:
        raise ConfigError(f"tensor store {text!r}: unknown scheme {scheme!r}; known: {', '.join(SCHEMES)}, or a plain path")
    if scheme in ("lmdb", "lance"):
        text = text[match.end():]
    if scheme == "lance" or scheme in OBJECT_STORE_SCHEMES or (scheme is None and text.rstrip("/").endswith(".lance")):
        from serving.store.lance_store import LanceStore
        return LanceStore(text, readonly=readonly)
    from serving.store.lmdb_store import LmdbStore
    return LmdbStore(text, readonly=readonly)
