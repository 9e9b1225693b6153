"""Training losses, each one tested function. The scores they take come from a model's scorer."""
from __future__ import annotations

from typing import Literal, Optional

import torch
import torch.nn.functional as F

from training.models.config import LossConfig


def hinge_triplet_loss(scores: torch.Tensor, config: LossConfig, video_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Bidirectional hinge triplet loss on a ``[texts, videos]`` score matrix whose diagonal holds the positives.

    With ``config.max_violation`` only the hardest negative of each query counts (VSE++), else all negatives
    are summed. With ``config.same_video_positive`` and ``video_ids`` given, pairs that share a video are
    not negatives. Returns the mean over the batch of (text->video + video->text) terms.
    """
    if scores.dim() != 2 or scores.shape[0] != scores.shape[1]:
        raise ValueError(f"hinge_triplet_loss needs a square [B, B] score matrix, got {tuple(scores.shape)}")
    batch = scores.shape[0]
    positive = scores.diagonal()
    not_negative = torch.eye(batch, dtype=torch.bool, device=scores.device)
    if config.same_video_positive and video_ids is not None:
        not_negative = not_negative | (video_ids[:, None] == video_ids[None, :])
    # text i as the query: the positive video is i, negatives are other videos j (row i).
    cost_t2v = (config.margin + scores - positive[:, None]).clamp(min=0).masked_fill(not_negative, 0)
    # video j as the query: the positive caption is j, negatives are other captions i (column j).
    cost_v2t = (config.margin + scores - positive[None, :]).clamp(min=0).masked_fill(not_negative, 0)
    if config.max_violation:
        return (cost_t2v.max(dim=1).values + cost_v2t.max(dim=0).values).mean()
    return (cost_t2v.sum(dim=1) + cost_v2t.sum(dim=0)).mean()


Reduction = Literal["mean", "batch"]


def _reduce(per_entry: torch.Tensor, weight: Optional[torch.Tensor], reduction: Reduction) -> torch.Tensor:
    """``mean``: the mean over the entries that count (``weight`` 1; all without a weight). ``batch``: the sum over
    the last dimension (the vocabulary), then the mean over the batch, as MCSAN's Eq. 35."""
    if weight is not None:
        per_entry = per_entry * weight
    if reduction == "batch":
        return per_entry.sum(dim=-1).mean()
    if weight is None:
        return per_entry.mean()
    return per_entry.sum() / weight.sum().clamp(min=1)


def bce_loss(probs: torch.Tensor, targets: torch.Tensor, eps: float = 1e-7, weight: Optional[torch.Tensor] = None,
             reduction: Reduction = "mean") -> torch.Tensor:
    """Binary cross-entropy on probabilities (sigmoid already applied); entries of ``weight`` 0 are ignored."""
    probs = probs.clamp(eps, 1 - eps)
    return _reduce(F.binary_cross_entropy(probs, targets, reduction="none"), weight, reduction)


def focal_bce_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0,
                   reduction: Reduction = "mean") -> torch.Tensor:
    """Focal binary cross-entropy (Lin et al.): ``-a_t (1 - p_t)^gamma log(p_t)``; ``reduction`` as ``_reduce``.

    ``a_t`` is ``alpha`` for positives and ``1 - alpha`` for negatives. MCSAN's Eq. 35 prints ``alpha (1 - p)^gamma``
    on the negative term as well, but defers to Lin et al. for alpha and gamma; this is Lin et al.'s form.
    """
    log_p = F.logsigmoid(logits)
    log_not_p = F.logsigmoid(-logits)
    p = log_p.exp()
    positive = -alpha * (1 - p).pow(gamma) * log_p
    negative = -(1 - alpha) * p.pow(gamma) * log_not_p
    return _reduce(targets * positive + (1 - targets) * negative, None, reduction)


def distribution_kl_loss(input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MCSAN's distribution constraint ``KLDivLoss(F_v, F_t)`` (Eq. 38-40) between two ``[B, D]`` feature batches.

    As PyTorch's ``KLDivLoss(log_softmax(input), softmax(target))``: each row becomes a distribution over the
    feature dimensions by a softmax, and the result is ``KL(P_target || P_input)`` summed over the dimensions
    and averaged over the rows (``reduction="batchmean"``, the true KL; PyTorch's default ``"mean"`` would also
    divide by D). Row b of both matrices is one aligned pair (caption b, video b).
    """
    log_p_input = F.log_softmax(input, dim=-1)
    log_p_target = F.log_softmax(target, dim=-1)
    return (log_p_target.exp() * (log_p_target - log_p_input)).sum(dim=-1).mean()
