"""Sequence encoders over padded batches that give each item the same output alone or padded."""
from __future__ import annotations

import torch
from torch import nn

from training.models.common.functional import masked_softmax
from training.models.common.legacy import InertLegacyKey


def reverse_padded(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence within its own length: x [B, T, D], mask [B, T]; padded positions stay in place.

    Written with gather so it traces to ONNX with dynamic lengths (no Python loop over items).
    """
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)           # [1, T]
    lengths = mask.sum(dim=1, keepdim=True).to(steps.dtype)                  # [B, 1]
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)         # [B, T]
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


class MaskedBiGRU(nn.Module):
    """Bidirectional GRU over right-padded sequences; directions ``"mean"``-ed (HGR) or ``"concat"``-enated.

    The backward direction runs over each sequence reversed within its length, so trailing padding never
    reaches a real step; padded outputs are zero.
    """

    def __init__(self, input_dim: int, hidden_dim: int, merge: str = "mean", num_layers: int = 1):
        super().__init__()
        if merge not in ("mean", "concat"):
            raise ValueError(f"merge must be 'mean' or 'concat', got {merge!r}")
        self.merge = merge
        self.forward_rnn = nn.GRU(input_dim, hidden_dim, num_layers=num_layers, batch_first=True)
        self.backward_rnn = nn.GRU(input_dim, hidden_dim, num_layers=num_layers, batch_first=True)
        self.output_dim = hidden_dim * (2 if merge == "concat" else 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, D], mask [B, T] -> (states [B, T, H'], last [B, H'] = final state of each direction)."""
        fwd, _ = self.forward_rnn(x)
        bwd_rev, _ = self.backward_rnn(reverse_padded(x, mask))
        bwd = reverse_padded(bwd_rev, mask)
        lengths = mask.sum(dim=1).long().clamp(min=1)
        last_index = (lengths - 1).view(-1, 1, 1).expand(-1, 1, fwd.shape[-1])
        fwd_last = fwd.gather(1, last_index).squeeze(1)   # forward state at the last real step
        bwd_last = bwd[:, 0]                               # backward state after reading the whole sequence
        if self.merge == "mean":
            states, last = (fwd + bwd) / 2, (fwd_last + bwd_last) / 2
        else:
            states, last = torch.cat([fwd, bwd], dim=-1), torch.cat([fwd_last, bwd_last], dim=-1)
        return states * mask.unsqueeze(-1).to(states.dtype), last


class AttentionPool(nn.Module):
    """Soft attention pooling: weights = masked softmax of a learned score ``x w`` per position.

    The score has no bias: one added to every logit leaves the softmax unchanged. HGR's reference code
    (cshizhe/hgr_v2t, ``ft_attn`` in encoders/sentence.py and mlvideo.py) and HANet's (Roc-Ng/HANet, same names)
    have that inert bias.
    """

    legacy_inert_keys = (InertLegacyKey("score.bias"),)

    def __init__(self, dim: int):
        super().__init__()
        self.score = nn.Linear(dim, 1, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B, T, D], mask [B, T] -> [B, D]."""
        weights = masked_softmax(self.score(x).squeeze(-1), mask, dim=1)
        return (weights.unsqueeze(-1) * x).sum(dim=1)
