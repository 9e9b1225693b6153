"""VSE++ baseline (Faghri et al.): mean-pooled frames and a BiGRU over words, one vector each, cosine."""
from __future__ import annotations

import torch
from torch import nn

from common.layout import TEXT_INDEX, VIDEO_INDEX
from training.models.base import RetrievalModel, Tensors
from training.models.common.functional import cosine_matrix, l2_normalize, masked_mean
from training.models.common.sequence import MaskedBiGRU
from training.models.common.words import WordInput
from training.models.vsepp.config import VSEPPConfig


class VSEPP(RetrievalModel):
    def __init__(self, config: VSEPPConfig):
        super().__init__(config)
        self.words = WordInput(config.text)
        self.rnn = MaskedBiGRU(config.text.word_dim, config.rnn_hidden, merge="concat")
        self.text_fc = nn.Linear(self.rnn.output_dim, config.embed_dim)
        self.video_fc = nn.Linear(config.video.frame_dim, config.embed_dim)

    def encode_text(self, inputs: Tensors) -> dict[str, torch.Tensor]:
        mask = inputs["word_mask"]
        states, last = self.rnn(self.words(inputs), mask)
        pooled = last if self.config.text_pooling == "last" else masked_mean(states, mask)
        vector = l2_normalize(self.text_fc(pooled))
        return {"text_global": vector, TEXT_INDEX: vector}

    def encode_video(self, inputs: Tensors) -> dict[str, torch.Tensor]:
        pooled = masked_mean(inputs["frame_feats"], inputs["frame_mask"])
        vector = l2_normalize(self.video_fc(pooled))
        return {"video_global": vector, VIDEO_INDEX: vector}

    def score(self, text: Tensors, video: Tensors) -> dict[str, torch.Tensor]:
        sim = cosine_matrix(text["text_global"], video["video_global"])
        return self.scorer_output([sim], sim)
