"""The learned word-embedding input (the papers' GloVe-style setting): a vocabulary of training-caption words.

Torch-free. Words are lower-cased; ``<pad>`` is id 0 and ``<unk>`` id 1; the rest are the words seen at
least ``min_count`` times, most frequent first (ties alphabetical), so a build is deterministic.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from common.errors import ConfigError, DataError, read_json_file
from common.files import write_atomic

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
VOCAB_FORMAT = "strata-vocab-v1"


def normalize_word(word: str) -> str:
    return word.strip().lower()


class Vocabulary:
    def __init__(self, words: Sequence[str], min_count: int = 1):
        words = list(words)
        if words[:2] != [PAD, UNK]:
            raise DataError(f"a vocabulary must start with {PAD!r}, {UNK!r}; got {words[:2]}")
        if len(set(words)) != len(words):
            dup = next(w for w, c in Counter(words).items() if c > 1)
            raise DataError(f"vocabulary word {dup!r} appears more than once")
        self.words = tuple(words)
        self.min_count = min_count
        self._ids = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, captions: Iterable[Sequence[str]], min_count: int = 1) -> "Vocabulary":
        """From the word lists of the training captions."""
        if min_count < 1:
            raise ConfigError(f"vocabulary min_count must be >= 1, got {min_count}")
        counts = Counter(w for words in captions for w in map(normalize_word, words) if w)
        kept = sorted((w for w, c in counts.items() if c >= min_count and w not in (PAD, UNK)),
                      key=lambda w: (-counts[w], w))
        return cls([PAD, UNK, *kept], min_count)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return normalize_word(word) in self._ids

    def id(self, word: str) -> int:
        return self._ids.get(normalize_word(word), UNK_ID)

    def encode(self, words: Sequence[str]) -> list[int]:
        return [self.id(w) for w in words]

    def encode_batch(self, batch: Sequence[Sequence[str]], max_words: int) -> tuple[np.ndarray, np.ndarray]:
        """Ids ``int64 [B, W]`` (``<pad>`` after each caption) and the word mask ``float32 [B, W]``,
        W = the longest caption cut to ``max_words``."""
        width = max(1, min(max_words, max((len(words) for words in batch), default=0)))
        ids = np.full((len(batch), width), PAD_ID, np.int64)
        mask = np.zeros((len(batch), width), np.float32)
        for b, words in enumerate(batch):
            row = self.encode(words[:width])
            ids[b, :len(row)] = row
            mask[b, :len(row)] = 1.0
        return ids, mask

    def save(self, path: str | Path) -> Path:
        data = {"format": VOCAB_FORMAT, "min_count": self.min_count, "words": list(self.words)}
        return write_atomic(path, json.dumps(data, ensure_ascii=False, indent=0))

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        path = Path(path)
        data = read_json_file(path, "vocabulary file")
        if not isinstance(data, dict) or data.get("format") != VOCAB_FORMAT:
            raise DataError(f"{path}: not a Strata vocabulary (expected format {VOCAB_FORMAT!r})")
        words, min_count = data.get("words"), data.get("min_count")
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise DataError(f"{path}: 'words' must be a list of strings")
        if not isinstance(min_count, int) or isinstance(min_count, bool):
            raise DataError(f"{path}: 'min_count' must be an integer, got {min_count!r}")
        try:
            return cls(words, min_count)
        except DataError as err:
            raise DataError(f"{path}: {err}") from None
