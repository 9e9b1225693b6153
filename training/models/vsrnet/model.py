"""VSR-Net (Han et al.): a global branch and a spatio-temporal relation branch, each aligned with the text.

* Global branch: frame features -> linear -> temporal Transformer -> attention aggregation -> F_v.
* Relation branch: regions of each frame -> linear -> spatial Transformer -> mean over regions -> temporal
  Transformer -> attention aggregation -> F_r.
* Text: word features -> pointwise linear -> attention aggregation -> F_t. The paper feeds BERT token
  features (last two layers, 1536-d); Strata's canonical word input is MiniLM (or learned embeddings).
* Score (eq. 11): ``lambda cos(F_r, F_t) + (1 - lambda) cos(F_v, F_t)``.
"""
from __future__ import annotations

import torch
from torch import nn

from common.layout import TEXT_INDEX, VIDEO_INDEX
from training.losses import hinge_triplet_loss
from training.models.base import RetrievalModel, Tensors
from training.models.common.functional import l2_normalize, masked_softmax
from training.models.common.graph import WordRoles
from training.models.common.legacy import InertLegacyKey
from training.models.common.transformer import TransformerEncoder
from training.models.common.words import WordInput
from training.models.vsrnet.config import VSRNetConfig


class AttentionAggregation(nn.Module):
    """COOT's attention-aware feature aggregation: per head, weights = masked softmax over positions of
    ``GELU(x W1 + b1) W2``; head h pools its own slice of the channels, the slices are concatenated.

    W2 has no bias: a head's bias is added to all its logits alike, which its softmax over positions cancels.
    VSR-Net's eq. 9 (from COOT) writes the score without a bias term.
    """

    legacy_inert_keys = (InertLegacyKey("score.2.bias"),)

    def __init__(self, dim: int, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.score = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, heads, bias=False))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B, L, D], mask [B, L] -> [B, D]."""
        weights = masked_softmax(self.score(x), mask.unsqueeze(-1), dim=1)        # [B, L, H]
        per_head = x.unflatten(-1, (self.heads, -1))                               # [B, L, H, D/H]
        return (weights.unsqueeze(-1) * per_head).sum(dim=1).flatten(1)


class VSRNet(RetrievalModel):
    def __init__(self, config: VSRNetConfig):
        super().__init__(config)
        c = config
        d = c.embed_dim

        def transformer(positional: bool) -> TransformerEncoder:
            return TransformerEncoder(d, c.layers, c.heads, c.mlp_dim, c.dropout, positional=positional)

        def aggregation() -> AttentionAggregation:
            return AttentionAggregation(d, c.aggregation_hidden, c.aggregation_heads)

        self.words = WordInput(c.text)
        self.word_roles = WordRoles(c.text.word_dim) if c.word_roles else None
        self.text_fc = nn.Linear(c.text.word_dim, d)
        self.text_pool = aggregation()
        if "global" in c.levels:
            self.frame_fc = nn.Linear(c.video.frame_dim, d)
            self.global_temporal = transformer(positional=True)
            self.global_pool = aggregation()
        if "relation" in c.levels:
            # The paper projects regions to d* before the spatial Transformer: its parameter count (31.48M with
            # one layer, +25.19M per layer) matches three d*=1024 blocks with a 2048-d MLP plus 2560->, 2048->
            # and 1536->1024 input maps.
            self.region_fc = nn.Linear(c.video.region_dim, d)
            # Regions are an unordered set (ranked by detector confidence only): no position codes in space.
            self.spatial = transformer(positional=False) if c.relation_encoder in ("spatio_temporal", "spatial") else None
            self.relation_temporal = transformer(positional=True) if c.relation_encoder in ("spatio_temporal", "temporal") else None
            self.relation_pool = aggregation()

    # -- towers ---------------------------------------------------------------------------------------------
    def encode_text(self, inputs: Tensors) -> dict[str, torch.Tensor]:
        words = self.words(inputs)
        if self.word_roles is not None:
            words = self.word_roles.from_inputs(words, inputs)
        embed = self.text_pool(self.text_fc(words), inputs["word_mask"])
        return {"text_embed": embed, TEXT_INDEX: l2_normalize(embed)}

    def encode_video(self, inputs: Tensors) -> dict[str, torch.Tensor]:
        mask = inputs["frame_mask"]
        out: dict[str, torch.Tensor] = {}
        if "global" in self.config.levels:
            frames = self.global_temporal(self.frame_fc(inputs["frame_feats"]), mask)
            out["video_global"] = self.global_pool(frames, mask)
        if "relation" in self.config.levels:
            out["video_relation"] = self.relation_pool(self._relation_frames(inputs["region_feats"], mask), mask)
        out[VIDEO_INDEX] = self._weighted_sum([l2_normalize(out[name]) for name in self._video_levels()])
        return out

    def _relation_frames(self, regions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """regions [B, T, R, Dr] -> per-frame relation features [B, T, d]. Every frame has all R regions (no
        region mask); regions of padded frames are processed and then masked away over time."""
        x = self.region_fc(regions)                                                 # [B, T, R, d]
        if self.spatial is not None:
            x = self.spatial(x)                                                     # attention within each frame
        frames = x.mean(dim=2)                                                      # [B, T, d]
        if self.relation_temporal is not None:
            frames = self.relation_temporal(frames, mask)
        return frames

    # -- scorer ---------------------------------------------------------------------------------------------
    def _video_levels(self) -> list[str]:
        return ["video_" + level for level in self.config.levels]

    def _weighted_sum(self, per_level: list[torch.Tensor]) -> torch.Tensor:
        """Fuse per-level values in ``levels`` order: lambda for the relation level, 1 - lambda for the global
        level (a single level has weight 1). One formula for the fused score and for the index view."""
        if len(per_level) == 1:
            return per_level[0]
        lam = self.config.relation_weight
        return lam * per_level[0] + (1.0 - lam) * per_level[1]

    def score(self, text: Tensors, video: Tensors) -> dict[str, torch.Tensor]:
        t = l2_normalize(text["text_embed"])
        levels = [t @ l2_normalize(video[name]).transpose(0, 1) for name in self._video_levels()]
        return self.scorer_output(levels, self._weighted_sum(levels))

    # -- training -------------------------------------------------------------------------------------------
    def loss(self, text: Tensors, video: Tensors, batch: Tensors) -> dict[str, torch.Tensor]:
        """``per_space``: the public trainer's ``0.5 L_global + 0.5 L_relation`` (lambda and 1 - lambda), each a
        hinge on its own space's cosine. The reference sums the hinge over the batch too; here it is averaged
        over the batch like every other loss of the zoo (a constant factor, which Adam all but cancels)."""
        if self.config.objective == "fused":
            return super().loss(text, video, batch)
        scores = self.score(text, video)["level_scores"]
        per_space = [hinge_triplet_loss(s, self.config.loss, batch.get("video_ids")) for s in scores]
        parts = {f"rank_{level}": value for level, value in zip(self.config.levels, per_space)}
        return {"loss": self._weighted_sum(per_space), **parts}
