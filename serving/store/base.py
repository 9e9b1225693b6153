"""What every tensor store does (see :class:`TensorStore`)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

import numpy as np

from serving.store.record import encode_record

Items = Sequence[tuple[str, Mapping[str, np.ndarray]]]


class TensorStore(ABC):
    """Each indexed item's tensors by id.

    ``put`` is an upsert, atomic per call (all items or none) and durable when it returns; ``get`` answers in the
    order asked, None for an unknown id. Several processes may read while one writes.
    """

    uri: str

    @abstractmethod
    def put(self, items: Items) -> None: ...

    @abstractmethod
    def get(self, ids: Sequence[str]) -> list[dict[str, np.ndarray] | None]: ...

    @abstractmethod
    def delete(self, ids: Sequence[str]) -> int:
        """Remove ``ids``; returns how many existed."""

    @abstractmethod
    def ids(self) -> list[str]: ...

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def drop(self) -> None:
        """Delete all of the store's data (retiring a model version)."""

    @abstractmethod
    def close(self) -> None: ...

    def __contains__(self, item_id: str) -> bool:
        return self.get([item_id])[0] is not None

    def __enter__(self) -> "TensorStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def encode_items(items: Items) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs, all encoded before anything is written: an item that cannot be stored fails the call."""
    return [(item_id.encode(), encode_record(arrays)) for item_id, arrays in items]
