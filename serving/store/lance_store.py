"""The tensor store as one Lance dataset (a local path or an object-storage URI such as ``s3://bucket/name.lance``).

Columns: ``id`` (string) and ``record`` (``encode_record`` bytes). Each ``put`` is one ``merge_insert`` on ``id``:
one new dataset version, committed whole, so readers (in any process) see all of it or none; concurrent writers
are reconciled by Lance's optimistic commits. ``get`` maps ids to row positions through a map of the ``id``
column, rebuilt only when the dataset's version changes (one cheap version check per call), then ``take``s the
rows and decodes them without copying their bytes.
"""
from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa

from common.errors import DataError
from serving.store.base import Record, TensorStore, check_ids, storage_failures
from serving.store.record import decode_record, encode_record

SCHEMA = pa.schema([pa.field("id", pa.string(), nullable=False), pa.field("record", pa.large_binary())])


class LanceStore(TensorStore):
    """Records in the Lance dataset at ``uri`` (created, empty, unless ``readonly``)."""

    def __init__(self, uri: str | Path, readonly: bool = False, storage_options: dict[str, str] | None = None):
        super().__init__(str(uri), readonly)
        self._storage_options = storage_options
        try:
            self._dataset = lance.dataset(self.location, storage_options=storage_options)
        except ValueError as err:
            if readonly:
                raise DataError(f"tensor store not found: {self.location} is not a Lance dataset ({err})") from None
            empty = pa.Table.from_pylist([], schema=SCHEMA)
            self._dataset = lance.write_dataset(empty, self.location, mode="create", storage_options=storage_options)
        self._positions: dict[str, int] = {}
        self._positions_version: int | None = None
        self._closed = False

    def _current(self) -> lance.LanceDataset:
        """The dataset at its latest version (another process may have written since)."""
        if self._closed:
            raise DataError(f"tensor store {self.location} is closed")
        latest = self._dataset.latest_version
        if latest != self._dataset.version:
            self._dataset = self._dataset.checkout_version(latest)
        return self._dataset

    def _position_of(self) -> dict[str, int]:
        """Row position by id at the latest version (writes update ``self._dataset`` in place)."""
        dataset = self._current()
        if self._positions_version != dataset.version:
            ids = dataset.to_table(columns=["id"]).column("id").to_pylist()
            self._positions = {item_id: row for row, item_id in enumerate(ids)}
            self._positions_version = dataset.version
        return self._positions

    @storage_failures(OSError)
    def put(self, items: Sequence[tuple[str, Mapping[str, np.ndarray]]]) -> None:
        self._check_writable("put")
        check_ids([item_id for item_id, _ in items])
        latest = {item_id: encode_record(record) for item_id, record in items}  # the last record of an id wins
        if not latest:
            return
        table = pa.table({"id": list(latest), "record": list(latest.values())}, schema=SCHEMA)
        self._current().merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(table)

    @storage_failures(OSError)
    def get(self, ids: Sequence[str], fields: Collection[str] | None = None) -> list[Record | None]:
        check_ids(ids)
        positions = self._position_of()
        found = [(slot, positions[item_id]) for slot, item_id in enumerate(ids) if item_id in positions]
        records: list[Record | None] = [None] * len(ids)
        if found:
            column = self._dataset.take([row for _, row in found], columns=["record"]).column("record")
            for (slot, _), value in zip(found, column):
                records[slot] = decode_record(value.as_buffer(), fields)
        return records

    @storage_failures(OSError)
    def delete(self, ids: Sequence[str]) -> int:
        self._check_writable("delete")
        check_ids(ids)
        positions = self._position_of()
        existing = sorted({item_id for item_id in ids if item_id in positions})
        if existing:
            table = pa.table({"id": existing, "record": pa.nulls(len(existing), pa.large_binary())}, schema=SCHEMA)
            self._dataset.merge_insert("id").when_matched_delete().execute(table)
        return len(existing)

    @storage_failures(OSError)
    def ids(self) -> list[str]:
        return list(self._position_of())

    def __len__(self) -> int:
        return self._current().count_rows()

    def __contains__(self, item_id: object) -> bool:
        return isinstance(item_id, str) and item_id in self._position_of()

    def close(self) -> None:
        self._closed = True
        self._positions, self._positions_version = {}, None

    def drop(self) -> None:
        self._check_writable("drop")
        self.close()
        lance.LanceDataset.drop(self.location, storage_options=self._storage_options)
