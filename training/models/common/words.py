"""The word-level text input every model reads: frozen MiniLM word features or learned word embeddings."""
from __future__ import annotations

import torch
from torch import nn

from training.models.config import TextInputConfig


class WordInput(nn.Module):
    """``inputs`` -> word vectors ``[B, W, word_dim]``: the ``word_feats`` as given (kind ``minilm``) or an
    ``nn.Embedding`` of ``word_ids`` (kind ``vocab``, id 0 = padding). Padded words are zero either way."""

    def __init__(self, config: TextInputConfig):
        super().__init__()
        self.kind = config.kind
        self.output_dim = config.word_dim
        self.embedding = nn.Embedding(config.vocab_size, config.word_dim, padding_idx=0) if config.kind == "vocab" else None

    def forward(self, inputs) -> torch.Tensor:
        mask = inputs["word_mask"].unsqueeze(-1)
        if self.embedding is None:
            return inputs["word_feats"] * mask
        return self.embedding(inputs["word_ids"]) * mask
