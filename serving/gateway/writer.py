"""The one way items enter and leave the stores (torch-free).

Commit order makes a Milvus row the mark of a committed item: an item's tensors go to the tensor store first and
its Milvus row last, so every row found by a search has its tensors; a delete removes the row first. Both writes
are upserts by id, so an interrupted ingest that is run again leaves every item exactly once. A first stage
that keeps its own rows (:mod:`serving.gateway.first_stage`) writes them between the two, and deletes them after
the main row.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


CRASH_ENV = "STRATA_CRASH_AT"
_reached: dict[str, int] = {}


def crash_point(point: str) -> None:
    """Test hook: with ``STRATA_CRASH_AT=POINT:N`` the process ends (exit 75, no clean-up, as a kill would) the
    N-th time it reaches ``point``. Points: ``after_store`` (a batch's tensors written, its Milvus rows not),
    ``mid_batch`` (a batch committed, the next not begun), and ``decode`` in bulk ingest. Unset: nothing happens."""
    wanted = os.environ.get(CRASH_ENV)
    if not wanted or not wanted.startswith(point + ":"):
        return
    _reached[point] = _reached.get(point, 0) + 1
    if _reached[point] == int(wanted.split(":", 1)[1]):
        os._exit(75)


@dataclass(frozen=True)
class Item:
    id: str
    record: Mapping[str, np.ndarray]   # what the tensor store keeps (scorer inputs, index view, source features)
    vector: np.ndarray                 # the index view, searched in Milvus
    metadata: Mapping[str, Any]        # the Milvus row's other fields


class Writer:
    def __init__(self, index, store, collection: str, batch: int = 256, first_stage=None, kind: str = ""):
        self.index, self.store, self.collection, self.batch = index, store, collection, batch
        self.first_stage, self.kind = first_stage, kind

    def commit(self, items: Sequence[Item]) -> int:
        """Write ``items`` in batches (tensors, then rows); returns how many were written."""
        for start in range(0, len(items), self.batch):
            chunk = items[start:start + self.batch]
            self.store.put([(item.id, item.record) for item in chunk])
            crash_point("after_store")
            if self.first_stage is not None:
                self.first_stage.write(self.kind, [(item.id, item.record) for item in chunk])
            self.index.upsert(self.collection, [{"id": item.id, "vector": np.asarray(item.vector, np.float32),
                                                 **item.metadata} for item in chunk])
            crash_point("mid_batch")
        return len(items)

    def delete(self, ids: Sequence[str]) -> int:
        """Remove rows, then tensors; returns how many of ``ids`` had a row."""
        deleted = self.index.delete(self.collection, list(ids))
        if self.first_stage is not None:
            self.first_stage.delete(self.kind, list(ids))
        self.store.delete(list(ids))
        return deleted
