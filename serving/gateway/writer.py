"""The one way items enter and leave the stores (torch-free).

Commit order makes a Milvus row the mark of a committed item: an item's tensors go to the tensor store first and
its Milvus row last, so every row found by a search has its tensors; a delete removes the row first. Both writes
are upserts by id, so an interrupted ingest that is run again leaves every item exactly once. A first stage
that keeps its own rows (:mod:`serving.gateway.first_stage`) writes them between the two, and deletes them after
the main row.

A batch refused or failing half-way (its first-stage rows or its main rows refused, Milvus lost mid-batch) is
undone before the error goes up: what it wrote is removed, and an id it replaced gets its previous rows and tensors
back (read before the batch was written). The undo runs rows first and tensors last, and stops at the first step
that fails, so it never leaves a row without its tensors. The error (:class:`WriteFailed`) says how many items
of the call were committed before the batch and which id failed first.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from common.deadline import no_deadline, starting
from serving.gateway.errors import WriteFailed
from serving.index.milvus_index import metadata_fields

log = logging.getLogger("strata.gateway")


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
    def __init__(self, index, store, collection: str, kind: str, batch: int = 256, first_stage=None):
        self.index, self.store, self.collection, self.batch = index, store, collection, batch
        self.first_stage, self.kind = first_stage, kind

    def commit(self, items: Sequence[Item]) -> int:
        """Write ``items`` in batches (tensors, then rows); returns how many were written. A batch that fails is
        undone and raises :class:`WriteFailed` with the count committed before it."""
        for start in range(0, len(items), self.batch):
            chunk = items[start:start + self.batch]
            try:
                self._commit_batch(chunk)
            except Exception as err:  # noqa: BLE001 - any failure: the caller learns what was committed
                raise WriteFailed(err, start, chunk[0].id) from err
            crash_point("mid_batch")
        return len(items)

    def _commit_batch(self, chunk: Sequence[Item]) -> None:
        ids = [item.id for item in chunk]
        before = self._snapshot(ids)
        starting("store", "the tensor store")
        self.store.put([(item.id, item.record) for item in chunk])
        crash_point("after_store")
        try:
            if self.first_stage is not None:
                self.first_stage.write(self.kind, [(item.id, item.record) for item in chunk])
            self.index.upsert(self.collection, [self._row(item.id, item.vector, item.metadata) for item in chunk])
        except BaseException:
            self._undo(ids, before)
            raise

    @staticmethod
    def _row(item_id: str, vector, metadata: Mapping[str, Any]) -> dict[str, Any]:
        return {"id": item_id, "vector": np.asarray(vector, np.float32), **metadata}

    def _snapshot(self, ids: Sequence[str]) -> dict[str, tuple[dict, Mapping[str, np.ndarray]]]:
        """The committed items among ``ids``: id -> (main row, tensors), to put back if the batch fails."""
        rows = self.index.get(self.collection, ids, ["vector", *metadata_fields(self.kind)])
        if not rows:
            return {}
        starting("store", "the tensor store")
        records = self.store.get(list(rows))
        return {item_id: (row, record) for (item_id, row), record in zip(rows.items(), records) if record is not None}

    def _undo(self, ids: Sequence[str], before: Mapping[str, tuple[dict, Mapping[str, np.ndarray]]]) -> None:
        """Take a failed batch back to ``before`` (see the module docstring); log what could not be undone."""
        added = [i for i in ids if i not in before]
        old_rows = [{"id": i, **row} for i, (row, _) in before.items()]
        old_records = [(i, record) for i, (_, record) in before.items()]
        steps = []
        if self.first_stage is not None:
            steps.append(lambda: self.first_stage.delete(self.kind, added))
            if old_records:
                steps.append(lambda: self.first_stage.write(self.kind, old_records))
        steps.append(lambda: self.index.delete(self.collection, added))
        if old_rows:
            steps.append(lambda: self.index.upsert(self.collection, old_rows))
        steps.append(lambda: self.store.delete(added))
        if old_records:
            steps.append(lambda: self.store.put(old_records))
        with no_deadline():   # the undo runs even when the caller has given up
            for step in steps:
                try:
                    step()
                except Exception:  # noqa: BLE001 - stop here: later steps would leave rows without tensors
                    log.exception("could not undo a failed batch of %d item(s) in %s; writing them again (the "
                                  "writes are upserts) repairs it", len(ids), self.collection)
                    return

    def delete(self, ids: Sequence[str]) -> int:
        """Remove rows, then tensors; returns how many of ``ids`` had a row."""
        deleted = self.index.delete(self.collection, list(ids))
        if self.first_stage is not None:
            self.first_stage.delete(self.kind, list(ids))
        starting("store", "the tensor store")
        self.store.delete(list(ids))
        return deleted
