"""The embedded tensor store: one LMDB environment (a directory holding ``data.mdb`` and ``lock.mdb``).

Key: the id in UTF-8; value: ``encode_record``. Any number of processes may open the directory and read while one
writes: readers never block and see whole commits only; writers, within and across processes, take turns. Each
``put`` is one write transaction, committed with fsync. When the map (LMDB's fixed address-space reservation) is
full, it is doubled and the transaction retried; readers in other processes adopt the new size on their next read.
"""
from __future__ import annotations

import shutil
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import lmdb
import numpy as np

from common.errors import DataError
from serving.store.base import Record, TensorStore, check_ids, storage_failures
from serving.store.record import decode_record, encode_record

DEFAULT_MAP_SIZE = 1 << 30  # address space only: the file grows with the data


class LmdbStore(TensorStore):
    """Records in an LMDB environment at ``path`` (created unless ``readonly``)."""

    def __init__(self, path: str | Path, readonly: bool = False, map_size: int = DEFAULT_MAP_SIZE):
        super().__init__(str(path), readonly)
        if readonly and not (Path(path) / "data.mdb").is_file():
            raise DataError(f"tensor store not found: {path} has no LMDB environment (data.mdb)")
        if not readonly:
            Path(path).mkdir(parents=True, exist_ok=True)
        try:
            self._env = lmdb.open(str(path), map_size=map_size, readonly=readonly, create=not readonly,
                                  subdir=True, max_dbs=0)
        except lmdb.Error as err:
            raise DataError(f"cannot open LMDB tensor store {path}: {err}") from None

    @contextmanager
    def _read(self, buffers: bool = False) -> Iterator[lmdb.Transaction]:
        try:
            txn = self._env.begin(buffers=buffers)
        except lmdb.MapResizedError:  # another process grew the map: adopt its size
            self._env.set_mapsize(0)
            txn = self._env.begin(buffers=buffers)
        with txn:
            yield txn

    def _write(self, job) -> object:
        """Run ``job(txn)`` in one write transaction, doubling the map until it fits."""
        while True:
            try:
                with self._env.begin(write=True) as txn:
                    return job(txn)
            except lmdb.MapFullError:
                self._env.set_mapsize(self._env.info()["map_size"] * 2)

    @storage_failures(lmdb.Error)
    def put(self, items: Sequence[tuple[str, Mapping[str, np.ndarray]]]) -> None:
        self._check_writable("put")
        keys = check_ids([item_id for item_id, _ in items])
        values = [encode_record(record) for _, record in items]

        def job(txn: lmdb.Transaction) -> None:
            for key, value in zip(keys, values):
                txn.put(key, value)
        self._write(job)

    @storage_failures(lmdb.Error)
    def get(self, ids: Sequence[str], fields: Collection[str] | None = None) -> list[Record | None]:
        keys = check_ids(ids)
        with self._read(buffers=True) as txn:  # values are views of the map, valid inside the transaction only
            values = [txn.get(key) for key in keys]
            if fields is not None:   # copy out only the arrays asked for
                return [None if value is None else _read_only(decode_record(value, fields)) for value in values]
            block = np.empty(sum(len(value) for value in values if value is not None), np.uint8)
            spans, at = [], 0
            for value in values:  # one copy into one block: steadier than one bytes object per value
                if value is None:
                    spans.append(None)
                    continue
                block[at:at + len(value)] = np.frombuffer(value, np.uint8)
                spans.append((at, at + len(value)))
                at += len(value)
        view = memoryview(block)  # records are multiples of ALIGN long, so each stays aligned in the block
        return [None if span is None else decode_record(view[span[0]:span[1]]) for span in spans]

    @storage_failures(lmdb.Error)
    def delete(self, ids: Sequence[str]) -> int:
        self._check_writable("delete")
        keys = check_ids(ids)
        return self._write(lambda txn: sum(txn.delete(key) for key in keys))

    @storage_failures(lmdb.Error)
    def ids(self) -> list[str]:
        with self._read(buffers=True) as txn:
            return [bytes(key).decode() for key in txn.cursor().iternext(values=False)]

    def __len__(self) -> int:
        return self._env.stat()["entries"]

    def __contains__(self, item_id: object) -> bool:
        try:
            (key,) = check_ids([item_id])
        except DataError:
            return False
        with self._read(buffers=True) as txn:
            return txn.get(key) is not None

    def close(self) -> None:
        self._env.close()

    def drop(self) -> None:
        self._check_writable("drop")
        self.close()
        shutil.rmtree(self.location)


def _read_only(record: Record) -> Record:
    """Copies of ``record``'s arrays, read-only as every record ``get`` answers."""
    out = {}
    for name, array in record.items():
        out[name] = array.copy()
        out[name].flags.writeable = False
    return out
