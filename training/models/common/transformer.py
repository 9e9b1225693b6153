"""A masked Transformer encoder (pre-LayerNorm blocks, GELU MLP) that traces to ONNX and ignores padding.

Block (VSR-Net eqs. 6-7, ViT style): ``x = x + MSA(LN(x))``; ``x = x + MLP(LN(x))`` with
``MLP(x) = GELU(x W1 + b1) W2 + b2``. Padded keys are removed from every softmax with the shared
``masked_softmax`` (the dtype's lowest value where the mask is 0), so a real position's output is the same
alone or inside a right-padded batch; padded positions are zeroed at the end.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from training.models.common.functional import masked_softmax
from training.models.common.legacy import InertLegacyKey


def sinusoidal_positions(length: int | torch.Tensor, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """Fixed sine/cosine position codes (Vaswani et al.) ``[length, dim]``, sin and cos interleaved.

    ``length`` may be a traced size, so the codes follow a dynamic axis in ONNX.
    """
    if dim % 2:
        raise ValueError(f"sinusoidal positions need an even dim, got {dim}")
    position = torch.arange(length, device=device).to(torch.float32).unsqueeze(1)           # [L, 1]
    inv_freq = torch.exp(torch.arange(0, dim, 2, device=device).to(torch.float32) * (-math.log(10000.0) / dim))
    angles = position * inv_freq.unsqueeze(0)                                                  # [L, dim/2]
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)                       # [L, dim]


class QueryKeyValue(nn.Module):
    """Self-attention's fused projection ``x -> (x W_q + b_q, x W_k, x W_v + b_v)``; ``bias`` is ``[b_q, b_v]``.

    There is no key bias: it adds ``q . b_k`` to every logit of a query alike, which the softmax cancels.
    Initialised as ``nn.Linear(dim, 3 dim)`` would be.
    """

    legacy_inert_keys = (InertLegacyKey("bias", part=(1, 3)),)  # the key third of the old nn.Linear's bias

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.bias = nn.Parameter(torch.empty(2 * dim))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        nn.init.uniform_(self.bias, -1 / math.sqrt(dim), 1 / math.sqrt(dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, k, v = F.linear(x, self.weight).chunk(3, dim=-1)
        bias_q, bias_v = self.bias.chunk(2)
        return q + bias_q, k, v + bias_v


class MaskedSelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention with a key padding mask."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention dim {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.head_dim = dim // heads
        self.qkv = QueryKeyValue(dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x [..., L, D] -> [..., L, D]. mask [B, L] (1 = real) needs x [B, L, D]; None = no padding, any
        leading axes (e.g. the regions of every frame, [B, T, R, D], without a reshape)."""
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(-3, -2) for t in self.qkv(x))
        logits = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)                     # [..., H, L, L]
        if mask is None:
            weights = torch.softmax(logits, dim=-1)
        else:
            weights = masked_softmax(logits, mask[:, None, None, :], dim=-1)
        attended = (self.dropout(weights) @ v).transpose(-3, -2).flatten(-2)            # [..., L, D]
        return self.out(attended)


class TransformerBlock(nn.Module):
    """``x + MSA(LN(x))`` then ``+ MLP(LN(x))`` (pre-LayerNorm)."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float = 0.0):
        super().__init__()
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = MaskedSelfAttention(dim, heads, dropout)
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.attn_norm(x), mask))
        return x + self.dropout(self.mlp(self.mlp_norm(x)))


class TransformerEncoder(nn.Module):
    """``layers`` blocks over a (optionally padded) sequence; optional sinusoidal positions added first.

    With a mask, padded positions of the output are zero. Sequences must be right-padded for the
    positions of real steps to be the same alone and in a batch (they are everywhere in Strata).
    """

    def __init__(self, dim: int, layers: int, heads: int, mlp_dim: int, dropout: float = 0.0, positional: bool = False):
        super().__init__()
        if layers < 1:
            raise ValueError(f"a Transformer encoder needs at least one layer, got {layers}")
        self.dim = dim
        self.positional = positional
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_dim, dropout) for _ in range(layers))

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x [B, L, D] with mask [B, L], or x [..., L, D] with mask None -> same shape."""
        if self.positional:
            x = x + sinusoidal_positions(x.shape[-2], self.dim, x.device).to(x.dtype)
        for block in self.blocks:
            x = block(x, mask)
        if mask is not None:
            x = x * mask.unsqueeze(-1).to(x.dtype)
        return x
