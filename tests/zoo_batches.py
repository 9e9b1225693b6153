"""Random, correctly padded model inputs for unit tests of the zoo (real batches come from SynthVTR)."""
from __future__ import annotations

import numpy as np


def random_text_batch(batch: int = 4, words: int = 12, verbs: int = 3, nouns: int = 5, word_dim: int = 384,
                      sent_dim: int = 384, vocab_size: int = 50, seed: int = 0) -> dict[str, np.ndarray]:
    """Canonical text inputs with ragged lengths: item b has fewer words, verbs and nouns than the max."""
    rng = np.random.default_rng(seed)
    out = {
        "word_feats": np.zeros((batch, words, word_dim), np.float32),
        "word_ids": np.zeros((batch, words), np.int64),
        "word_mask": np.zeros((batch, words), np.float32),
        "sent_feat": rng.standard_normal((batch, sent_dim)).astype(np.float32),
        "verb_spans": np.zeros((batch, verbs, words), np.float32),
        "verb_mask": np.zeros((batch, verbs), np.float32),
        "noun_spans": np.zeros((batch, nouns, words), np.float32),
        "noun_mask": np.zeros((batch, nouns), np.float32),
        "noun_roles": np.zeros((batch, nouns), np.int64),
        "noun_verb_edges": np.zeros((batch, verbs, nouns), np.float32),
    }
    for b in range(batch):
        n_words = max(3, words - b)
        n_verbs = max(1, verbs - b % verbs)
        n_nouns = max(1, nouns - b % nouns)
        out["word_feats"][b, :n_words] = rng.standard_normal((n_words, word_dim))
        out["word_ids"][b, :n_words] = rng.integers(1, vocab_size, n_words)
        out["word_mask"][b, :n_words] = 1
        for v in range(n_verbs):
            out["verb_spans"][b, v, rng.integers(0, n_words)] = 1
            out["verb_mask"][b, v] = 1
        for n in range(n_nouns):
            start = rng.integers(0, n_words - 1)
            out["noun_spans"][b, n, start:start + 2] = 1
            out["noun_mask"][b, n] = 1
            out["noun_roles"][b, n] = rng.integers(1, 16)
            out["noun_verb_edges"][b, rng.integers(0, n_verbs), n] = 1
    return out


def random_video_batch(batch: int = 4, frames: int = 10, frame_dim: int = 256, regions: int = 6,
                       region_dim: int = 256, seed: int = 0) -> dict[str, np.ndarray]:
    """Canonical video inputs; item b has ``frames - b`` real frames (at least 2), the rest zero-padded."""
    rng = np.random.default_rng(seed)
    out = {
        "frame_feats": np.zeros((batch, frames, frame_dim), np.float32),
        "frame_mask": np.zeros((batch, frames), np.float32),
        "region_feats": np.zeros((batch, frames, regions, region_dim), np.float32),
    }
    for b in range(batch):
        n = max(2, frames - b)
        out["frame_feats"][b, :n] = rng.standard_normal((n, frame_dim))
        out["frame_mask"][b, :n] = 1
        out["region_feats"][b, :n] = rng.standard_normal((n, regions, region_dim))
    return out
