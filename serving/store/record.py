"""One item's tensors as bytes: a small JSON header, then raw little-endian buffers. Never pickled.

Layout: ``b"SREC"``, the header's length (uint32, little-endian), the header (UTF-8 JSON:
``{"format": RECORD_FORMAT, "size": payload bytes, "arrays": [{"name", "dtype", "shape", "offset"}, ...]}``), zero
padding to a multiple of ``ALIGN``, then the payload: each array's C-order bytes at its ``offset``, itself a multiple
of ``ALIGN``. A header without ``format`` was written before the field existed, in this same layout, and is read as
format 1; a record of a newer format is refused (upgrade Strata). Formats 2 and 3 have format 1's layout; format 2
says that a video's record may hold its frames' times (``frame_times``), which a format-1 record never does (its
video answers "no timing" in the temporal evidence), and format 3 that a caption's record may hold its nodes' words
(``node_words``), which earlier ones never do (their captions are parsed again for their evidence).
Decoding checks the structure (magic, header, dtypes, shapes, bounds, total length); the payload's bits are not
checksummed, as that would cost more than the fetch itself. Checked headers are cached (items share a few layouts).
"""
from __future__ import annotations

import functools
import json
import math
import struct
from collections.abc import Collection, Mapping

import numpy as np

from common.errors import DataError

MAGIC = b"SREC"
ALIGN = 16
DTYPES = ("bool", "uint8", "int8", "int32", "int64", "float16", "float32", "float64")
_LITTLE_ENDIAN = {name: np.dtype(name).newbyteorder("<") for name in DTYPES}
_PREFIX = struct.Struct("<4sI")
_ENTRY_KEYS = {"name", "dtype", "shape", "offset"}
RECORD_FORMAT = 3                 # 2: a video's record may hold ``frame_times``; 3: a caption's ``node_words``
READABLE_FORMATS = (1, 2, 3)      # the same layout, written before frame times (1) or node words (2) were kept


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def encode_record(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Serialise named arrays (dtypes in ``DTYPES``, any shape, 0-d and empty included); ``DataError`` if one cannot be.

    A NumPy scalar is stored as a 0-d array."""
    entries, buffers, offset = [], [], 0
    for name, array in arrays.items():
        if not isinstance(name, str) or not name:
            raise DataError(f"record array name must be a non-empty string, got {name!r}")
        if not isinstance(array, np.ndarray | np.generic):
            raise DataError(f"record array {name!r}: expected a numpy array, got {type(array).__name__}")
        if array.dtype.name not in _LITTLE_ENDIAN:
            raise DataError(f"record array {name!r}: dtype {array.dtype} cannot be stored; one of {', '.join(DTYPES)}")
        data = np.ascontiguousarray(array, dtype=_LITTLE_ENDIAN[array.dtype.name]).tobytes()
        entries.append({"name": name, "dtype": array.dtype.name, "shape": list(array.shape), "offset": offset})
        buffers.append(data + bytes(_aligned(len(data)) - len(data)))
        offset += len(buffers[-1])
    header = json.dumps({"format": RECORD_FORMAT, "size": offset, "arrays": entries}, separators=(",", ":")).encode()
    start = _PREFIX.size + len(header)
    return b"".join([_PREFIX.pack(MAGIC, len(header)), header, bytes(_aligned(start) - start), *buffers])


def decode_record(data: bytes | memoryview, fields: Collection[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays of an encoded record (those named in ``fields`` if given), as views of ``data`` (no copy);
    ``DataError`` if it is corrupt."""
    view = memoryview(data).cast("B")
    if len(view) < _PREFIX.size:
        raise DataError(f"tensor record truncated: {len(view)} bytes, shorter than its {_PREFIX.size}-byte prefix")
    magic, header_len = _PREFIX.unpack_from(view)
    if magic != MAGIC:
        raise DataError(f"not a tensor record: starts with {bytes(magic)!r}, expected {MAGIC!r}")
    if _PREFIX.size + header_len > len(view):
        raise DataError(f"tensor record truncated: header of {header_len} bytes, record of {len(view)}")
    end, layout = _layout(bytes(view[_PREFIX.size:_PREFIX.size + header_len]))
    if end != len(view):
        problem = "truncated" if end > len(view) else "has trailing bytes"
        raise DataError(f"tensor record {problem}: {len(view)} bytes, header says {end}")
    return {name: np.ndarray(shape, dtype, view, offset) for name, dtype, shape, offset in layout
            if fields is None or name in fields}


@functools.lru_cache(maxsize=4096)  # items of one model share a few layouts (one per frame count)
def _layout(header: bytes) -> tuple[int, tuple[tuple[str, np.dtype, tuple[int, ...], int], ...]]:
    """A checked header: the record's total length and each array's (name, dtype, shape, absolute offset)."""
    try:
        parsed = json.loads(header)
        size, entries, found = parsed["size"], parsed["arrays"], parsed.get("format", 1)
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise DataError(f"tensor record header is corrupt: {err}") from None
    if found not in READABLE_FORMATS:
        if isinstance(found, int) and found > RECORD_FORMAT:
            raise DataError(f"tensor record format {found} was written by a newer Strata (this one reads format "
                            f"{RECORD_FORMAT}): upgrade Strata to read this store")
        raise DataError(f"tensor record format {found!r} is not one this Strata reads (format {RECORD_FORMAT}): "
                        f"index these items again (a swap to a new version re-embeds them into a fresh store)")
    if not isinstance(size, int) or not isinstance(entries, list):
        raise DataError("tensor record header is corrupt: 'size' must be an integer and 'arrays' a list")
    start = _aligned(_PREFIX.size + len(header))
    return start + size, tuple(_check_entry(entry, start, size) for entry in entries)


def _check_entry(entry: object, start: int, size: int) -> tuple[str, np.dtype, tuple[int, ...], int]:
    if not isinstance(entry, dict) or entry.keys() != _ENTRY_KEYS:
        raise DataError(f"tensor record header is corrupt: array entry {entry!r} needs keys {sorted(_ENTRY_KEYS)}")
    name, dtype, shape, offset = entry["name"], entry["dtype"], entry["shape"], entry["offset"]
    if not isinstance(name, str) or not name:
        raise DataError(f"tensor record header is corrupt: bad array name {name!r}")
    if dtype not in _LITTLE_ENDIAN:
        raise DataError(f"tensor record array {name!r}: unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise DataError(f"tensor record array {name!r}: bad shape {shape!r}")
    nbytes = math.prod(shape) * _LITTLE_ENDIAN[dtype].itemsize
    if not isinstance(offset, int) or offset < 0 or offset + nbytes > size:
        raise DataError(f"tensor record array {name!r}: {nbytes} bytes at offset {offset!r} "
                        f"lie outside the {size}-byte payload")
    return name, _LITTLE_ENDIAN[dtype], tuple(shape), start + offset
