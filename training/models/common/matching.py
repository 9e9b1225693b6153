"""Cross-modal matching functions over all (text, video) pairs: HGR's local attentive matching and the
generalised Jaccard similarity of concept probabilities (HANet). Both return ``[texts, videos]``."""
from __future__ import annotations

import torch

from training.models.common.functional import (NORM_EPS, as_divisor, floor_eps, l2_normalize, masked_softmax,
                                               sum_of_squares, widen)

LOCAL_LAMBDA = 4.0      # HGR's softmax temperature lambda over frames
ATTENTION_NORM_EPS = 1e-10  # floor of the L2 norm over frames (HGR reference: norm.clamp(min=1e-10))
JACCARD_EPS = 1e-8      # the reference has none; it keeps an all-zero pair finite


def local_attentive_match(nodes: torch.Tensor, node_mask: torch.Tensor, frames: torch.Tensor,
                          frame_mask: torch.Tensor, lam: float = LOCAL_LAMBDA) -> torch.Tensor:
    """HGR local attentive matching (Eq. 12 with the reference code's masks and "embed" fusion).

    nodes [Bt, N, D] with node_mask [Bt, N]; frames [Bv, T, D] with frame_mask [Bv, T] -> [Bt, Bv].
    For text node i and frame j, s_ij = cos(v_j, c_i); padded frames are zeroed, negatives clamped to 0,
    the result L2-normalised over frames, padded frames masked out, then softmax_j(lam * x) attends the
    frame embeddings; the node's score is the cosine of the attended vector with the node, and the pair's
    score the mean over the text's valid nodes (denominator at least 1).

    The attended vectors' norms, in whichever order costs fewer operations (:func:`attended_directly`): with unit
    nodes c^ and attention a, cos(sum_j a_j v_j, c) = sum_j a_j (v_j . c^) / |sum_j a_j v_j|, and the norm is
    either taken of the attended vectors ``[Bt, Bv, N, D]`` themselves or as sqrt(a^T G a), G = the video's frame
    Gram matrix ``[Bv, T, T]``, so that the largest intermediate is ``[Bt, Bv, N, T]`` (training batches).

    float16 / bfloat16: the similarities and the softmax stay in that dtype; every sum of squares with its epsilon
    or floor, the Gram term and the node scores are computed in float32 (no overflow of a frame's squared norm,
    no epsilon rounded to 0), and the result is cast back. float32 runs the formulas above unchanged.
    """
    dtype = nodes.dtype
    unit_nodes = l2_normalize(nodes)                                                  # [Bt, N, D]
    dots = unit_nodes.unsqueeze(1) @ frames.transpose(1, 2).unsqueeze(0)              # [Bt, Bv, N, T]: v_j . c^_i
    frame_norms = as_divisor(torch.sqrt(sum_of_squares(frames, -1, keepdim=False) + NORM_EPS), dtype)  # [Bv, T]
    valid = frame_mask.unsqueeze(0).unsqueeze(2)                                      # [1, Bv, 1, T]
    sims = dots / frame_norms.unsqueeze(0).unsqueeze(2)                               # s_ij
    weights = (sims * valid).clamp(min=0)
    # max(|x|, eps) written as sqrt(max(|x|^2, eps^2)): the same value, and no NaN gradient where x = 0.
    weight_norms = torch.sqrt(sum_of_squares(weights).clamp(min=ATTENTION_NORM_EPS ** 2))
    weights = weights / as_divisor(weight_norms, dtype)
    attention = masked_softmax(lam * weights, valid.expand_as(weights), dim=-1)       # [Bt, Bv, N, T]
    wide_attention, wide_frames = widen(attention), widen(frames)
    if attended_directly(nodes.shape[0] * nodes.shape[1], frames.shape[1], frames.shape[2]):
        attended_sq_norm = ((wide_attention @ wide_frames.unsqueeze(0)) ** 2).sum(-1)  # |sum_j a_j v_j|^2
    else:
        gram = wide_frames @ wide_frames.transpose(1, 2)                              # [Bv, T, T]
        attended_sq_norm = ((wide_attention @ gram.unsqueeze(0)) * wide_attention).sum(-1)
    node_scores = widen(attention * dots).sum(-1) / torch.sqrt(attended_sq_norm.clamp(min=0) + NORM_EPS)  # [Bt, Bv, N]
    node_mask = node_mask.unsqueeze(1)                                                # [Bt, 1, N]
    scores = (node_scores * node_mask).sum(-1) / node_mask.sum(-1).clamp(min=1)
    return scores.to(dtype) if scores.dtype != dtype else scores


def attended_directly(text_nodes: int, frames: int, dim: int) -> bool:
    """Whether :func:`local_attentive_match` builds the attended vectors (``text_nodes`` = Bt * N of them per video,
    each ``frames`` x ``dim`` operations) rather than each video's Gram matrix (``frames^2 * dim``) and the
    quadratic forms (``text_nodes * frames^2``): the one with fewer operations, so a query against its candidates
    (Bt = 1, as the service scores text -> video) goes direct and a training batch through the Gram matrix. A traced
    graph (the exported scorer, which the service runs with one side a single item) is always direct: a trace fixes
    one branch, and direct costs at most ``depth * N * frames * dim`` when the single item is the video."""
    if torch.jit.is_tracing():
        return True
    return text_nodes * frames * dim <= frames * frames * dim + text_nodes * frames * frames


def jaccard_matrix(a: torch.Tensor, b: torch.Tensor, eps: float = JACCARD_EPS) -> torch.Tensor:
    """Generalised Jaccard similarity sum_k min(a_k, b_k) / (sum_k max(a_k, b_k) + eps) of non-negative
    vectors a [Bt, K] and b [Bv, K] -> [Bt, Bv].

    Written with min + max = x + y and max - min = |x - y|, so one ``[Bt, Bv, K]`` intermediate suffices.
    """
    total = a.sum(-1).unsqueeze(1) + b.sum(-1).unsqueeze(0)                           # [Bt, Bv]
    l1 = (a.unsqueeze(1) - b.unsqueeze(0)).abs().sum(-1)                              # [Bt, Bv]
    return ((total - l1) / 2) / ((total + l1) / 2 + floor_eps(eps, a.dtype))
