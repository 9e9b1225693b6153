"""One item's tensors as bytes, and back: a small JSON header, then each array's raw little-endian buffer.

Never pickled. The header says each array's name, dtype, shape and byte range, so decoding is a zero-copy view
per array; a truncated or corrupt record is refused with the reason.
"""
from __future__ import annotations

import json
import struct
from collections.abc import Mapping

import numpy as np

from training.errors import DataError

DTYPES = ("float16", "float32", "int64")
_LENGTH = struct.Struct("<I")


def encode_record(arrays: Mapping[str, np.ndarray]) -> bytes:
    header, buffers, offset = [], [], 0
    for name, value in arrays.items():
        array = np.asarray(value)
        if array.dtype.name not in DTYPES:
            raise DataError(f"tensor {name!r}: dtype {array.dtype} cannot be stored (stored dtypes: {', '.join(DTYPES)})")
        data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
        header.append([name, array.dtype.name, list(array.shape), offset, len(data)])
        buffers.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    return b"".join([_LENGTH.pack(len(head)), head, *buffers])


def decode_record(data: bytes | memoryview) -> dict[str, np.ndarray]:
    view = memoryview(data)
    try:
        (length,) = _LENGTH.unpack_from(view, 0)
        header = json.loads(bytes(view[_LENGTH.size:_LENGTH.size + length]))
    except (struct.error, ValueError) as err:
        raise DataError(f"corrupt tensor record: unreadable header ({err})") from None
    body = view[_LENGTH.size + length:]
    out = {}
    for name, dtype, shape, offset, size in header:
        if dtype not in DTYPES or offset + size > len(body) or int(np.prod(shape)) * np.dtype(dtype).itemsize != size:
            raise DataError(f"corrupt tensor record: tensor {name!r} ({dtype} {shape}, bytes {offset}+{size}) does "
                            f"not fit its {len(body)}-byte body")
        out[name] = np.frombuffer(body[offset:offset + size], np.dtype(dtype).newbyteorder("<")).reshape(shape)
    return out
