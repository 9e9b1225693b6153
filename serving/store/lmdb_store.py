"""The embedded default tensor store: one LMDB environment (a folder) per store.

LMDB serves many reader processes beside one writer on a machine's local disk, with copy-free memory-mapped
reads; keys are item ids, values encoded records. The map grows when full.
"""
from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import lmdb
import numpy as np

from serving.store.base import Items, TensorStore, encode_items
from serving.store.record import decode_record
from training.errors import DataError

INITIAL_MAP_BYTES = 1 << 30


class LmdbStore(TensorStore):
    def __init__(self, path: str | Path, readonly: bool = False, map_size: int = INITIAL_MAP_BYTES):
        self.path = Path(path)
        self.uri = f"lmdb:{self.path}"
        if readonly and not (self.path / "data.mdb").is_file():
            raise DataError(f"no tensor store at {self.path}")
        self.path.mkdir(parents=True, exist_ok=True)
        self.env = lmdb.open(str(self.path), map_size=map_size, readonly=readonly, max_readers=512, max_dbs=0)

    def put(self, items: Items) -> None:
        pairs = encode_items(items)
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    for key, value in pairs:
                        txn.put(key, value)
                return
            except lmdb.MapFullError:
                self.env.set_mapsize(2 * self.env.info()["map_size"])

    def _read(self, work):
        try:
            with self.env.begin(buffers=False) as txn:
                return work(txn)
        except lmdb.MapResizedError:   # another process grew the map
            self.env.set_mapsize(0)
            with self.env.begin(buffers=False) as txn:
                return work(txn)

    def get(self, ids: Sequence[str]) -> list[dict[str, np.ndarray] | None]:
        def work(txn):
            values = [txn.get(i.encode()) for i in ids]
            return [None if v is None else decode_record(v) for v in values]

        return self._read(work)

    def delete(self, ids: Sequence[str]) -> int:
        with self.env.begin(write=True) as txn:
            return sum(bool(txn.delete(i.encode())) for i in ids)

    def ids(self) -> list[str]:
        return self._read(lambda txn: [key.decode() for key in txn.cursor().iternext(keys=True, values=False)])

    def __len__(self) -> int:
        return self._read(lambda txn: txn.stat()["entries"])

    def drop(self) -> None:
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)

    def close(self) -> None:
        self.env.close()
