"""The tensor store's interface: the scorer inputs and source features of each indexed item, by id.

Semantics every store keeps:
- An id is a non-empty string of at most ``MAX_ID_BYTES`` UTF-8 bytes; a record is ``dict[str, np.ndarray]``
  (see ``record.py``), stored as bytes and never pickled.
- ``put`` upserts: an id already there is replaced whole; within one call the last record of an id wins. It is
  atomic (all of the call's items are written or none) and durable once it returns. Every record is encoded before
  anything is written, so a record that cannot be encoded leaves the store as it was.
- ``get`` answers in the order asked, ``None`` for an unknown id; its arrays are read-only (copy to modify). Given
  ``fields``, a record holds only the arrays of those names, and only their bytes are read out (a query's
  candidates need their tower outputs, not the source features stored beside them).
- Several processes may read one store while one process writes; a reader sees each ``put`` whole or not at all.
- ``drop`` deletes all of the store's data (retiring a model version) and closes it.
- A store opened ``readonly`` refuses ``put``, ``delete`` and ``drop`` with ``ConfigError``.
- A failure of the storage itself (files gone, object storage unreachable, LMDB out of readers) is
  :class:`StoreUnavailable`, whatever the backend's library raised; bad input stays ``DataError``.
"""
from __future__ import annotations

import errno
import functools
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence

import numpy as np

from common.errors import ConfigError, DataError, StrataError

MAX_ID_BYTES = 511  # LMDB's default key limit, kept by every store so that they stay interchangeable

Record = dict[str, np.ndarray]


class StoreUnavailable(StrataError):
    """The storage under a tensor store failed (see the module docstring); the message says which store and how."""


def storage_failures(*failures: type[BaseException]):
    """Decorator of a store method: an error of ``failures`` (the backend library's own) becomes
    :class:`StoreUnavailable`. A full disk stays an ``OSError`` (ENOSPC): it is the caller's to handle as such."""
    def decorate(method):
        @functools.wraps(method)
        def call(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except failures as err:
                if isinstance(err, OSError) and err.errno == errno.ENOSPC:
                    raise
                raise StoreUnavailable(f"tensor store {self.location}: {type(err).__name__}: {err}") from err
        return call
    return decorate


def check_ids(ids: Sequence[str]) -> list[bytes]:
    """The UTF-8 keys of ``ids``; ``DataError`` naming the first id that is not a valid one."""
    keys = []
    for item_id in ids:
        key = item_id.encode() if isinstance(item_id, str) else b""
        if not key or len(key) > MAX_ID_BYTES:
            raise DataError(f"store id must be a non-empty string of at most {MAX_ID_BYTES} UTF-8 bytes, got {item_id!r}")
        keys.append(key)
    return keys


class TensorStore(ABC):
    """Records by id (see the module docstring for the semantics every store keeps)."""

    def __init__(self, location: str, readonly: bool):
        self.location = location
        self.readonly = readonly

    @abstractmethod
    def put(self, items: Sequence[tuple[str, Mapping[str, np.ndarray]]]) -> None:
        """Upsert ``(id, record)`` pairs, all or none, durably."""

    @abstractmethod
    def get(self, ids: Sequence[str], fields: Collection[str] | None = None) -> list[Record | None]:
        """The records of ``ids`` in order, ``None`` where an id is unknown; only the arrays in ``fields`` if given."""

    @abstractmethod
    def delete(self, ids: Sequence[str]) -> int:
        """Remove ``ids``; returns how many of them existed."""

    @abstractmethod
    def ids(self) -> list[str]:
        """Every stored id."""

    @abstractmethod
    def __len__(self) -> int:
        """How many records are stored."""

    @abstractmethod
    def __contains__(self, item_id: object) -> bool:
        """Whether ``item_id`` is stored."""

    @abstractmethod
    def close(self) -> None:
        """Release the store's files and handles; closing twice is harmless."""

    @abstractmethod
    def drop(self) -> None:
        """Delete all of the store's data, then close it."""

    def _check_writable(self, action: str) -> None:
        if self.readonly:
            raise ConfigError(f"tensor store {self.location} is open read-only: cannot {action}")

    def __enter__(self) -> TensorStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r}, readonly={self.readonly})"
