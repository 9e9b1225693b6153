"""Random, correctly padded canonical inputs for any tower layout (torch-free).

Used for tracing and, when no dataset is given, for the export's parity check. Item ``b`` of a batch is shorter
than the longest on every ragged axis, so padding and masks are exercised; padded positions are zero.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from common.layout import TowerLayout
from training.text.roles import NUM_ROLES

RAGGED = ("words", "verbs", "nouns", "frames")


def _lengths(size: int, batch: int, rng: np.random.Generator) -> np.ndarray:
    """Per-item lengths in [1, size]: the first item is full, the others random."""
    lengths = rng.integers(1, size + 1, batch)
    lengths[0] = size
    return lengths


def random_inputs(tower: TowerLayout, sizes: Mapping[str, int], seed: int = 0, vocab_size: int = 0) -> dict[str, np.ndarray]:
    """Canonical inputs of ``tower`` (a text or video tower layout); ``sizes`` gives every dynamic axis
    (``batch``, ``words``, ``verbs``, ``nouns``, ``frames``, ``regions`` as the tower needs)."""
    rng = np.random.default_rng(seed)
    names = set(tower.input_names)
    axes = {d for t in tower.inputs for d in t.shape if isinstance(d, str)}
    missing = sorted(axes - set(sizes))
    if missing:
        raise ValueError(f"sizes needed for axes {missing}")
    batch = sizes["batch"]
    length = {axis: _lengths(sizes[axis], batch, rng) for axis in RAGGED if axis in axes}
    out: dict[str, np.ndarray] = {}
    for spec in tower.inputs:
        shape = tuple(sizes[d] if isinstance(d, str) else d for d in spec.shape)
        out[spec.name] = np.zeros(shape, spec.dtype)

    def valid(axis: str, b: int) -> int:
        return int(length[axis][b])

    def fill(name: str, b: int, n: int) -> None:
        """Standard-normal features for the first ``n`` steps of item ``b``, where ``name`` is an input."""
        if name in names:
            out[name][b, :n] = rng.standard_normal((n, *out[name].shape[2:]))

    for b in range(batch):
        if "word_mask" in names:
            n_words = valid("words", b)
            out["word_mask"][b, :n_words] = 1
            fill("word_feats", b, n_words)
            if "word_ids" in names:
                out["word_ids"][b, :n_words] = rng.integers(1, max(vocab_size, 2), n_words)
        if "sent_feat" in names:
            out["sent_feat"][b] = rng.standard_normal(out["sent_feat"].shape[1])
        if "verb_mask" in names:
            n_words, n_verbs = valid("words", b), valid("verbs", b)
            out["verb_mask"][b, :n_verbs] = 1
            for v in range(n_verbs):
                out["verb_spans"][b, v, rng.integers(0, n_words)] = 1
        if "noun_mask" in names:
            n_words, n_nouns = valid("words", b), valid("nouns", b)
            out["noun_mask"][b, :n_nouns] = 1
            for n in range(n_nouns):
                start = int(rng.integers(0, n_words))
                out["noun_spans"][b, n, start:min(start + 2, n_words)] = 1
                if "noun_roles" in names:
                    out["noun_roles"][b, n] = rng.integers(1, NUM_ROLES)
                if "noun_verb_edges" in names:
                    out["noun_verb_edges"][b, rng.integers(0, valid("verbs", b)), n] = 1
        if "frame_mask" in names:
            n_frames = valid("frames", b)
            out["frame_mask"][b, :n_frames] = 1
            fill("frame_feats", b, n_frames)
            fill("region_feats", b, n_frames)
    return out
