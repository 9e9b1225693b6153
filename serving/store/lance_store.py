"""A tensor store as a Lance dataset (columns ``id`` and ``record``): readable from local disk or object storage
by every replica, versioned by Lance on each write. Upserts merge on ``id``; reads filter on a B-tree index."""
from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from serving.store.base import Items, TensorStore, encode_items
from serving.store.record import decode_record

SCHEMA = pa.schema([("id", pa.string()), ("record", pa.large_binary())])


def _in(ids: Sequence[str]) -> str:
    return "id IN (" + ", ".join("'" + i.replace("'", "''") + "'" for i in ids) + ")"


class LanceStore(TensorStore):
    def __init__(self, uri: str, readonly: bool = False):
        import lance

        self.lance, self.location, self.readonly = lance, uri, readonly
        self.uri = f"lance:{uri}"

    def _dataset(self):
        try:
            return self.lance.dataset(self.location)
        except (ValueError, OSError, FileNotFoundError):
            return None

    def put(self, items: Items) -> None:
        pairs = encode_items(items)
        table = pa.table({"id": [k.decode() for k, _ in pairs], "record": [v for _, v in pairs]}, schema=SCHEMA)
        dataset = self._dataset()
        if dataset is None:
            dataset = self.lance.write_dataset(table, self.location, schema=SCHEMA)
        else:
            dataset.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(table)
            dataset = self._dataset()
        dataset.create_scalar_index("id", "BTREE", replace=True)

    def get(self, ids: Sequence[str]) -> list[dict[str, np.ndarray] | None]:
        dataset = self._dataset()
        if dataset is None or not ids:
            return [None] * len(ids)
        table = dataset.to_table(columns=["id", "record"], filter=_in(ids))
        found = dict(zip(table.column("id").to_pylist(), table.column("record").to_pylist()))
        return [None if i not in found else decode_record(found[i]) for i in ids]

    def delete(self, ids: Sequence[str]) -> int:
        dataset = self._dataset()
        if dataset is None or not ids:
            return 0
        present = dataset.count_rows(filter=_in(ids))
        dataset.delete(_in(ids))
        return present

    def ids(self) -> list[str]:
        dataset = self._dataset()
        return [] if dataset is None else dataset.to_table(columns=["id"]).column("id").to_pylist()

    def __len__(self) -> int:
        dataset = self._dataset()
        return 0 if dataset is None else dataset.count_rows()

    def drop(self) -> None:
        if "://" not in self.location:
            shutil.rmtree(Path(self.location), ignore_errors=True)
        elif self._dataset() is not None:
            self._dataset().delete("true")

    def close(self) -> None:
        pass
