"""Similarity and masked pooling, written once for every model (PyTorch, ONNX-traceable).

Normalisation follows HGR's reference: ``x / sqrt(sum(x^2) + 1e-18)`` — one epsilon everywhere.

Every dtype: in float32 (and float64) the formulas are the reference's, term for term. float16 and bfloat16
cannot hold the reference's constants (1e-18 is below float16's smallest number) and a sum of squares overflows
float16 at a norm of 256, so for them sums of squares, their epsilons and the divisions by a norm are computed in
float32 (``widen``) and the result is cast back. Masked positions take the dtype's lowest finite value
(``mask_value``), which exists in every floating dtype.
"""
from __future__ import annotations

import torch

NORM_EPS = 1e-18
REDUCED_PRECISION = (torch.float16, torch.bfloat16)  # dtypes whose norms and epsilons are computed in float32


def mask_value(dtype: torch.dtype) -> float:
    """The fill for masked-out positions before a softmax or a max: ``dtype``'s lowest finite value.

    A masked logit then adds exactly 0 to a softmax that has one real position (its exponent underflows), and a
    fully masked row still gives uniform weights, as the former constant -1e18 did; unlike -1e18 it exists in
    float16 (-65504) and bfloat16."""
    return torch.finfo(dtype).min


def widen(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32 when it is float16 or bfloat16; any other tensor unchanged (no graph op is added)."""
    return x.float() if x.dtype in REDUCED_PRECISION else x


def floor_eps(eps: float, dtype: torch.dtype) -> float:
    """``eps`` where ``dtype`` holds it as a normal number, else the dtype's smallest normal number (float16:
    6.1e-5), so a floor or an added epsilon never rounds to 0 and a zero divides to 0, not NaN."""
    return max(eps, torch.finfo(dtype).tiny)


def as_divisor(norm: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A norm computed by ``widen`` brought back to ``dtype`` to divide a tensor of that dtype: unchanged unless
    ``dtype`` is reduced, then floored at the dtype's smallest normal number (a zero vector divides to 0)."""
    if dtype not in REDUCED_PRECISION:
        return norm
    return norm.clamp(min=torch.finfo(dtype).tiny).to(dtype)


def sum_of_squares(x: torch.Tensor, dim: int = -1, keepdim: bool = True) -> torch.Tensor:
    """``sum(x^2)`` over ``dim``; accumulated and returned in float32 when ``x`` is float16 or bfloat16."""
    x = widen(x)
    return (x * x).sum(dim=dim, keepdim=keepdim)


def l2_normalize(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``x / sqrt(sum(x^2) + 1e-18)``; for float16 and bfloat16 computed in float32 and cast back (a unit vector
    or zero, which every dtype holds)."""
    wide = widen(x)
    unit = wide / torch.sqrt(sum_of_squares(wide, dim) + NORM_EPS)
    return unit.to(x.dtype) if wide is not x else unit


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
    """Softmax over ``dim`` with masked-out positions at ``mask_value`` (an all-masked row gives uniform weights)."""
    return torch.softmax(logits.masked_fill(mask == 0, mask_value(logits.dtype)), dim=dim)


def span_max_pool(states: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
    """Max-pool word states over each node's span.

    states [B, W, D], spans [B, K, W] (1 = word in the node's span) -> [B, K, D]; an empty span gives zeros.
    """
    expanded = states.unsqueeze(1).masked_fill(spans.unsqueeze(-1) == 0, mask_value(states.dtype))  # [B, K, W, D]
    pooled = expanded.max(dim=2).values
    has_words = (spans.sum(-1, keepdim=True) > 0).to(states.dtype)
    return pooled * has_words
