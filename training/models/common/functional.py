"""Similarity and masked pooling, written once for every model (PyTorch, ONNX-traceable).

Normalisation follows HGR's reference: ``x / sqrt(sum(x^2) + 1e-18)`` — one epsilon everywhere.
"""
from __future__ import annotations

import torch

NORM_EPS = 1e-18
NEG_INF = -1e18


def l2_normalize(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return x / torch.sqrt((x * x).sum(dim=dim, keepdim=True) + NORM_EPS)


def cosine_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every row of ``a`` [Bt, D] with every row of ``b`` [Bv, D] -> [Bt, Bv]."""
    return l2_normalize(a) @ l2_normalize(b).transpose(0, 1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Mean of ``x`` over ``dim`` counting only positions where ``mask`` is 1 (denominator at least 1)."""
    mask = mask.to(x.dtype)
    while mask.dim() < x.dim():
        mask = mask.unsqueeze(-1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax over ``dim`` with masked-out positions at ``NEG_INF`` (an all-masked row gives uniform weights)."""
    return torch.softmax(logits.masked_fill(mask == 0, NEG_INF), dim=dim)


def span_max_pool(states: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
    """Max-pool word states over each node's span.

    states [B, W, D], spans [B, K, W] (1 = word in the node's span) -> [B, K, D]; an empty span gives zeros.
    """
    expanded = states.unsqueeze(1).masked_fill(spans.unsqueeze(-1) == 0, NEG_INF)  # [B, K, W, D]
    pooled = expanded.max(dim=2).values
    has_words = (spans.sum(-1, keepdim=True) > 0).to(states.dtype)
    return pooled * has_words
