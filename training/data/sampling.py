"""Frame sampling and padding as HGR's reader does it (torch-free).

A video longer than ``max_frames`` keeps frames ``round(linspace(0, n - 1, max_frames))`` (NumPy's round: halves go
to the even neighbour, as in the reference code); a shorter one keeps every frame and is zero-padded, with a mask.
For ``n > max_frames`` the indices are strictly increasing (the step exceeds 1), so they can index an HDF5
dataset directly and only the sampled frames are read.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MAX_FRAMES = 20


def frame_indices(num_frames: int, max_frames: int = MAX_FRAMES) -> np.ndarray:
    """Indices of the frames kept from a video of ``num_frames`` frames (int64, at most ``max_frames``)."""
    if num_frames < 1:
        raise ValueError(f"a video needs at least one frame, got {num_frames}")
    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    if num_frames <= max_frames:
        return np.arange(num_frames, dtype=np.int64)
    return np.round(np.linspace(0, num_frames - 1, max_frames)).astype(np.int64)


def sample_frames(frames: np.ndarray, max_frames: int = MAX_FRAMES) -> np.ndarray:
    """Keep at most ``max_frames`` frames (axis 0) of an in-memory ``[frames, ...]`` array."""
    return frames[frame_indices(len(frames), max_frames)]


def pad_stack(arrays: Sequence[np.ndarray], length: int, dtype: str | np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Stack ragged ``[n_i, ...]`` arrays into ``[batch, length, ...]`` with zeros after each, plus a float32 mask.

    Every ``n_i`` must be <= ``length`` and the trailing shapes must agree.
    """
    if not arrays:
        raise ValueError("pad_stack needs at least one array")
    tail = arrays[0].shape[1:]
    out = np.zeros((len(arrays), length, *tail), dtype=dtype)
    mask = np.zeros((len(arrays), length), dtype=np.float32)
    for i, arr in enumerate(arrays):
        if arr.shape[1:] != tail:
            raise ValueError(f"item {i} has trailing shape {arr.shape[1:]}, item 0 has {tail}")
        if len(arr) > length:
            raise ValueError(f"item {i} has {len(arr)} steps, more than the padded length {length}")
        out[i, :len(arr)] = arr
        mask[i, :len(arr)] = 1.0
    return out, mask


def pad_rows(array: np.ndarray, rows: int) -> np.ndarray:
    """The first ``rows`` rows of ``array``, zero-padded when it has fewer (e.g. word features cached for the words
    the tokenizer kept, padded up to the caption's word count)."""
    if len(array) >= rows:
        return array[:rows]
    return np.concatenate([array, np.zeros((rows - len(array), *array.shape[1:]), array.dtype)])
