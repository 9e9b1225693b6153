"""Per-item tensor records and the batches the towers and the scorer take (torch-free).

A tower answers a padded batch; the gateway stores each item alone, cut to the length it really has on every
ragged axis (frames, verbs, nouns: the valid prefix its input mask declares), and stacks candidates again,
zero-padded to the longest, before scoring. Padding is zero with mask 0, exactly as the encoders pad, so a
candidate scores the same whatever batch it is stacked into.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from common.errors import DataError
from common.layout import AXIS_MASKS, TensorSpec

Record = dict[str, np.ndarray]
BATCH_AXES = ("batch", "texts", "videos")


def axis_lengths(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each ragged axis's length per item, from the canonical input masks present in ``inputs``."""
    return {axis: np.asarray(inputs[mask]).sum(axis=1).round().astype(np.int64)
            for axis, mask in AXIS_MASKS.items() if mask in inputs}


def split_items(specs: Sequence[TensorSpec], outputs: Mapping[str, np.ndarray],
                lengths: Mapping[str, np.ndarray]) -> list[Record]:
    """A tower's batch outputs -> one record per item, each ragged axis cut to that item's length."""
    size = len(next(iter(outputs.values())))
    items: list[Record] = [{} for _ in range(size)]
    for spec in specs:
        if spec.name not in outputs:
            continue
        value = outputs[spec.name]
        ragged = [(axis - 1, dim) for axis, dim in enumerate(spec.shape) if isinstance(dim, str) and dim not in BATCH_AXES]
        for i in range(size):
            index = tuple(slice(None) if dim not in lengths else slice(0, int(lengths[dim][i])) for _, dim in ragged)
            items[i][spec.name] = value[i][index] if ragged else value[i]
    return items


def stack_items(specs: Sequence[TensorSpec], items: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Records -> a float32/int64 batch for ``specs`` (e.g. the scorer's video inputs), ragged axes zero-padded to
    the longest item (at least 1, so no axis is empty)."""
    if not items:
        raise DataError("cannot stack an empty list of items")
    batch: dict[str, np.ndarray] = {}
    for spec in specs:
        arrays = []
        for i, item in enumerate(items):
            if spec.name not in item:
                raise DataError(f"stored item {i} has no tensor {spec.name!r} (stored: {', '.join(sorted(item))})")
            arrays.append(np.asarray(item[spec.name]))
        rank = len(spec.shape) - 1
        if any(a.ndim != rank for a in arrays):
            raise DataError(f"{spec.name}: stored items must have rank {rank}, got {sorted({a.ndim for a in arrays})}")
        shape = tuple(max(1, max(a.shape[d] for a in arrays)) if isinstance(spec.shape[d + 1], str)
                      else spec.shape[d + 1] for d in range(rank))
        out = np.zeros((len(arrays), *shape), np.dtype(spec.dtype))
        for i, a in enumerate(arrays):
            out[(i, *(slice(0, n) for n in a.shape))] = a
        batch[spec.name] = out
    return batch
