"""The learned word-embedding vocabulary: build, encode, save/load, bad files."""
from __future__ import annotations

import json

import numpy as np
import pytest

from common.errors import ConfigError, DataError
from training.text.vocab import PAD_ID, UNK_ID, Vocabulary

CAPTIONS = [["A", "dog", "chases", "a", "cat"], ["a", "Cat", "runs"], ["a", "dog", "sleeps"]]


def test_build_orders_by_count_with_specials_first():
    vocab = Vocabulary.build(CAPTIONS)
    assert vocab.words == ("<pad>", "<unk>", "a", "cat", "dog", "chases", "runs", "sleeps")
    assert "CAT" in vocab and "bird" not in vocab
    common = Vocabulary.build(CAPTIONS, min_count=2)
    assert common.words == ("<pad>", "<unk>", "a", "cat", "dog")
    assert common.encode(["A", "dog", "runs", "  CAT "]) == [2, 4, UNK_ID, 3]
    with pytest.raises(ConfigError, match="min_count"):
        Vocabulary.build(CAPTIONS, min_count=0)


def test_encode_batch_pads_and_cuts():
    vocab = Vocabulary.build(CAPTIONS)
    ids, mask = vocab.encode_batch([["a", "dog"], ["a", "cat", "runs", "fast"]], max_words=3)
    assert ids.dtype == np.int64 and ids.tolist() == [[2, 4, PAD_ID], [2, 3, 6]]
    assert mask.tolist() == [[1, 1, 0], [1, 1, 1]]


def test_save_load_round_trip_and_bad_files(tmp_path):
    vocab = Vocabulary.build(CAPTIONS, min_count=2)
    loaded = Vocabulary.load(vocab.save(tmp_path / "vocab.json"))
    assert loaded.words == vocab.words and loaded.min_count == 2
    assert loaded.encode(["dog", "zebra"]) == vocab.encode(["dog", "zebra"]) == [4, UNK_ID]

    bad = tmp_path / "bad.json"
    with pytest.raises(DataError, match="vocabulary file not found: .*bad.json"):
        Vocabulary.load(bad)
    bad.write_text("{not json")
    with pytest.raises(DataError, match="bad.json: not valid JSON"):
        Vocabulary.load(bad)
    bad.write_text(json.dumps({"format": "strata-vocab-v1", "min_count": 1, "words": ["dog", "cat"]}))
    with pytest.raises(DataError, match="bad.json: a vocabulary must start with '<pad>', '<unk>'"):
        Vocabulary.load(bad)
    bad.write_text(json.dumps({"format": "strata-vocab-v1", "min_count": 1, "words": ["<pad>", "<unk>", "a", "a"]}))
    with pytest.raises(DataError, match="'a' appears more than once"):
        Vocabulary.load(bad)
    bad.write_text(json.dumps({"words": ["<pad>", "<unk>"]}))
    with pytest.raises(DataError, match="not a Strata vocabulary"):
        Vocabulary.load(bad)
