"""ViSERN (Feng et al., IJCAI 2020): region graph reasoning per frame, then multi-level encoders into one space.

Video: the regions ``V`` [n, d] of each frame form a fully connected graph with edges
``R(vi, vj) = phi(vi)^T theta(vj) + theta(vi)^T phi(vj)`` (eq. 1); random-walk-normalised graph convolution
with residual ``Z = (D^-1 R V W_g) W_r + V`` (eq. 12); the mean of ``Z`` over regions is the frame feature.
Frames and words then go through the dual-encoding multi-level encoder (Dong et al., CVPR 2019) into one
D-dimensional space; the score is the cosine there.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from common.layout import TEXT_INDEX, VIDEO_INDEX
from training.models.base import RetrievalModel, Tensors
from training.models.common.functional import cosine_matrix, floor_eps, l2_normalize, masked_mean
from training.models.common.graph import WordRoles
from training.models.common.legacy import InertLegacyKey
from training.models.common.sequence import MaskedBiGRU
from training.models.common.words import WordInput
from training.models.visern.config import ViSERNConfig


DEGREE_EPS = 1e-12  # D^-1 of the literal random walk: a zero degree leaves a zero row


class RegionGraphReasoning(nn.Module):
    """Semantic correlation graph over the regions of each frame and one residual graph convolution."""

    def __init__(self, region_dim: int, graph_dim: int, normalization: str):
        super().__init__()
        if normalization not in ("random_walk", "random_walk_relu", "symmetric", "row"):
            raise ValueError(f"unknown graph normalisation {normalization!r}")
        self.normalization = normalization
        self.graph_dim = graph_dim
        self.phi = nn.Linear(region_dim, graph_dim)       # phi(v) = W_phi v + b_phi
        self.theta = nn.Linear(region_dim, graph_dim)     # theta(v) = W_theta v + b_theta
        self.gcn = nn.Linear(region_dim, region_dim, bias=False)       # W_g
        self.residual = nn.Linear(region_dim, region_dim, bias=False)  # W_r

    def relation(self, regions: torch.Tensor) -> torch.Tensor:
        """Eq. 1, symmetric by construction: regions [..., n, d] -> R [..., n, n]."""
        cross = self.phi(regions) @ self.theta(regions).transpose(-1, -2)   # phi(vi)^T theta(vj)
        return cross + cross.transpose(-1, -2)

    def transition(self, relation: torch.Tensor) -> torch.Tensor:
        """The normalised adjacency that multiplies ``V`` in eq. 12.

        D^-1 needs positive degrees, but R is a sum of dot products and can be negative (a degree can be zero or
        negative, and D^-1 R then is no random walk). The paper is silent; we take the edge weights
        ``A = exp(R / sqrt(graph_dim))``: strictly positive (the graph stays fully connected), monotone in R, and
        scaled as in the dot-product attention the paper cites (Vaswani et al.) so it does not saturate at
        large widths. Then ``D^-1 A`` is a row-stochastic transition matrix, i.e. a softmax over each row.
        Symmetric normalisation uses the same A: ``D^-1/2 A D^-1/2``, computed in the log domain
        (``exp(r_ij - (lse_i + lse_j) / 2)``, never above 1 because R is symmetric). Row-wise normalisation
        (the ablation) is the one of Li et al. 2019 (VSRN) that the paper refers to: ``R / n`` on the raw R.
        ``random_walk_relu`` is the literal reading: ``A = ReLU(R)``, ``D^-1 A``; a region whose edges are all
        non-positive has degree 0 and gathers nothing (its row is zero, the residual keeps it).
        """
        if self.normalization == "row":
            return relation / relation.shape[-1]
        if self.normalization == "random_walk_relu":
            weights = torch.relu(relation)
            return weights / weights.sum(dim=-1, keepdim=True).clamp(min=floor_eps(DEGREE_EPS, weights.dtype))
        logits = relation / math.sqrt(self.graph_dim)
        if self.normalization == "random_walk":
            return torch.softmax(logits, dim=-1)
        log_degree = torch.logsumexp(logits, dim=-1)                            # log D_ii
        return torch.exp(logits - 0.5 * (log_degree.unsqueeze(-1) + log_degree.unsqueeze(-2)))

    def forward(self, regions: torch.Tensor) -> torch.Tensor:
        """regions [..., n, d] -> relation-enhanced regions Z [..., n, d] (eq. 12)."""
        propagated = self.transition(self.relation(regions)) @ regions
        return self.residual(self.gcn(propagated)) + regions


class MultiLevelEncoder(nn.Module):
    """Dual encoding's multi-level encoder over a padded sequence, into the joint space.

    Level 1: masked mean of the inputs (global). Level 2: masked mean of BiGRU states (temporal; directions
    concatenated). Level 3: 1-D convolutions over the BiGRU states with several kernel sizes, ReLU, max over
    time (local patterns). The concatenation -> dropout -> linear -> BatchNorm (dual encoding's joint map).
    Dual encoding's text level 1 is a bag of words; ours is the mean of the word vectors, so that MiniLM
    features and learned embeddings go through the same encoder. The linear map has no bias: BatchNorm
    subtracts the mean, so a bias before it never gets a gradient.
    """

    legacy_inert_keys = (InertLegacyKey("fc.bias", folded_into="norm.running_mean"),)

    def __init__(self, input_dim: int, rnn_hidden: int, conv_channels: int, kernels: tuple[int, ...],
                 embed_dim: int, dropout: float):
        super().__init__()
        self.rnn = MaskedBiGRU(input_dim, rnn_hidden, merge="concat")
        # padding k-1 on both sides (a "full" convolution) so a sequence shorter than k still has an output.
        self.convs = nn.ModuleList(nn.Conv1d(self.rnn.output_dim, conv_channels, k, padding=k - 1) for k in kernels)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(input_dim + self.rnn.output_dim + len(kernels) * conv_channels, embed_dim, bias=False)
        self.norm = nn.BatchNorm1d(embed_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B, L, D], mask [B, L] -> [B, embed_dim]."""
        states, _ = self.rnn(x, mask)                                    # [B, L, 2H], zero at padding
        levels = [masked_mean(x, mask), masked_mean(states, mask)]
        levels += [self.conv_max(conv, states, mask) for conv in self.convs]
        return self.norm(self.fc(self.dropout(torch.cat(levels, dim=-1))))

    @staticmethod
    def conv_max(conv: nn.Conv1d, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ReLU(conv) max-pooled over the output steps that see at least one real step.

        Output step t covers input steps t-k+1 .. t, so it is real when t < length + k - 1. States are zero at
        padding, as in the item's own zero border; the steps beyond are set to 0, which cannot change a max of
        ReLU outputs over a non-empty set of real steps.
        """
        out = torch.relu(conv(states.transpose(1, 2)))                  # [B, C, L + k - 1]
        steps = torch.arange(out.shape[-1], device=out.device).unsqueeze(0)
        lengths = mask.sum(dim=1, keepdim=True)
        real = (steps < lengths + (conv.kernel_size[0] - 1)).to(out.dtype)  # [B, L + k - 1]
        return (out * real.unsqueeze(1)).max(dim=-1).values


class ViSERN(RetrievalModel):
    def __init__(self, config: ViSERNConfig):
        super().__init__(config)
        c = config
        region_dim = c.video.region_dim
        self.reasoning = None if c.reasoning == "none" else RegionGraphReasoning(region_dim, c.graph_dim, c.reasoning)
        self.video_encoder = MultiLevelEncoder(region_dim, c.rnn_hidden, c.conv_channels, c.video_kernels,
                                               c.embed_dim, c.dropout)
        self.words = WordInput(c.text)
        self.word_roles = WordRoles(c.text.word_dim) if c.word_roles else None
        self.text_encoder = MultiLevelEncoder(c.text.word_dim, c.rnn_hidden, c.conv_channels, c.text_kernels,
                                              c.embed_dim, c.dropout)

    def frame_features(self, regions: torch.Tensor) -> torch.Tensor:
        """regions [B, T, n, d] -> frame features [B, T, d]: reasoning (unless ablated), then the region mean.
        Every frame has all n regions (no region mask)."""
        if self.reasoning is not None:
            regions = self.reasoning(regions)
        return regions.mean(dim=2)

    def encode_text(self, inputs: Tensors) -> dict[str, torch.Tensor]:
        words = self.words(inputs)
        if self.word_roles is not None:
            words = self.word_roles.from_inputs(words, inputs)
        embed = self.text_encoder(words, inputs["word_mask"])
        return {"text_embed": embed, TEXT_INDEX: l2_normalize(embed)}

    def encode_video(self, inputs: Tensors) -> dict[str, torch.Tensor]:
        mask = inputs["frame_mask"]
        frames = self.frame_features(inputs["region_feats"]) * mask.unsqueeze(-1)
        embed = self.video_encoder(frames, mask)
        return {"video_embed": embed, VIDEO_INDEX: l2_normalize(embed)}

    def score(self, text: Tensors, video: Tensors) -> dict[str, torch.Tensor]:
        sim = cosine_matrix(text["text_embed"], video["video_embed"])
        return self.scorer_output([sim], sim)
