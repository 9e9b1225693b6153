"""HGR (Chen et al., CVPR 2020): event / action / entity levels; global cosine + local attentive matching."""
from __future__ import annotations

import torch
from torch import nn

from common.layout import TEXT_INDEX, VIDEO_INDEX
from training.models.base import RetrievalModel, Tensors
from training.models.common.functional import cosine_matrix, l2_normalize
from training.models.common.graph import RoleGraphEncoder, WordRoles
from training.models.common.matching import local_attentive_match
from training.models.common.sequence import AttentionPool, MaskedBiGRU
from training.models.common.words import WordInput
from training.models.config import TextInputConfig
from training.models.hgr.config import HGRConfig


class HGRTextEncoder(nn.Module):
    """Words -> BiGRU (directions averaged) -> attention-pooled event -> role graph reasoning (HGR Sec. 3.1).

    Returns the raw (not normalised) event vector and the verb / noun nodes; HANet reuses it and also
    takes the word states.
    """

    def __init__(self, text: TextInputConfig, embed_dim: int, gcn_layers: int, graph_attention: bool,
                 role_awareness: bool, gcn_dropout: float, gcn_attention_dim: int = 0, input_dropout: float = 0.0,
                 word_roles: bool = False, event_from_graph: bool = False):
        super().__init__()
        self.words = WordInput(text)
        # HGR's and HANet's option (issue 31, beyond the papers): role embeddings on the words before the BiGRU.
        self.word_roles = WordRoles(text.word_dim) if word_roles else None
        self.input_dropout = nn.Dropout(input_dropout)
        self.rnn = MaskedBiGRU(text.word_dim, embed_dim, merge="mean")
        self.attention = AttentionPool(embed_dim)
        self.graph = RoleGraphEncoder(embed_dim, num_layers=gcn_layers, attention=graph_attention,
                                      use_roles=role_awareness, dropout=gcn_dropout, attention_dim=gcn_attention_dim,
                                      event_from_graph=event_from_graph)

    @classmethod
    def from_config(cls, config, graph_attention: bool = True, role_awareness: bool = True) -> "HGRTextEncoder":
        """The encoder of an HGR-family config (HGR, HANet): sizes, GCN, input dropout and the options beyond the
        papers (``word_roles``, ``event_from_graph``) from it."""
        return cls(config.text, config.embed_dim, config.gcn_layers, graph_attention, role_awareness,
                   config.gcn_dropout, config.gcn_attention_dim, config.input_dropout, config.word_roles,
                   config.event_from_graph)

    def forward(self, inputs: Tensors) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (word states [B, W, D], event [B, D], verbs [B, V, D], nouns [B, N, D])."""
        mask = inputs["word_mask"]
        words = self.words(inputs)
        if self.word_roles is not None:
            words = self.word_roles.from_inputs(words, inputs)
        states, _ = self.rnn(self.input_dropout(words), mask)
        event = self.attention(states, mask)
        event, verbs, nouns = self.graph(states, mask, event, inputs["verb_spans"], inputs["verb_mask"],
                                         inputs["noun_spans"], inputs["noun_mask"], inputs["noun_roles"],
                                         inputs["noun_verb_edges"])
        return states, event, verbs, nouns


class HGR(RetrievalModel):
    name = "hgr"

    def __init__(self, config: HGRConfig):
        super().__init__(config)
        d = config.embed_dim
        self.text_encoder = HGRTextEncoder.from_config(config, config.graph_attention, config.role_awareness)
        self.input_dropout = nn.Dropout(config.input_dropout)  # on the frame features (the reference code: 0.2)
        # Three independent linear maps of the frame features (Eq. 11), or one shared ("w/o hierarchical video").
        num_maps = 3 if config.hierarchical_video else 1
        self.video_maps = nn.ModuleList([nn.Linear(config.video.frame_dim, d) for _ in range(num_maps)])
        self.video_attention = AttentionPool(d)

    def encode_text(self, inputs: Tensors) -> dict[str, torch.Tensor]:
        _, event, verbs, nouns = self.text_encoder(inputs)
        event = l2_normalize(event)
        return {"text_event": event, "text_verbs": verbs, "text_verb_mask": inputs["verb_mask"],
                "text_nouns": nouns, "text_noun_mask": inputs["noun_mask"], TEXT_INDEX: event}

    def encode_video(self, inputs: Tensors) -> dict[str, torch.Tensor]:
        mask = inputs["frame_mask"]
        valid = mask.unsqueeze(-1)
        frames = self.input_dropout(inputs["frame_feats"])
        embeds = [m(frames) * valid for m in self.video_maps]
        event_frames, action_frames, entity_frames = embeds if len(embeds) == 3 else embeds * 3
        event = l2_normalize(self.video_attention(event_frames, mask))
        return {"video_event": event, "video_actions": action_frames, "video_entities": entity_frames,
                "video_frame_mask": mask, VIDEO_INDEX: event}

    def score(self, text: Tensors, video: Tensors) -> dict[str, torch.Tensor]:
        event = cosine_matrix(text["text_event"], video["video_event"])
        action, action_attention = local_attentive_match(text["text_verbs"], text["text_verb_mask"],
                                                         video["video_actions"], video["video_frame_mask"],
                                                         return_attention=True)
        entity, entity_attention = local_attentive_match(text["text_nouns"], text["text_noun_mask"],
                                                         video["video_entities"], video["video_frame_mask"],
                                                         return_attention=True)
        return self.scorer_output([event, action, entity], (event + action + entity) / 3,
                                  {"action": action_attention, "entity": entity_attention})
