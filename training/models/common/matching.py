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
                          frame_mask: torch.Tensor, lam: float = LOCAL_LAMBDA, return_attention: bool = False
                          ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """HGR local attentive matching (Eq. 12 with the reference code's masks and "embed" fusion).

    nodes [Bt, N, D] with node_mask [Bt, N]; frames [Bv, T, D] with frame_mask [Bv, T] -> [Bt, Bv].
    For text node i and frame j, s_ij = cos(v_j, c_i); padded frames are zeroed, negatives clamped to 0,
    the result L2-normalised over frames, padded frames masked out, then softmax_j(lam * x) attends the
    frame embeddings; the node's score is the cosine of the attended vector with the node, and the pair's
    score the mean over the text's valid nodes (denominator at least 1).

    The attended vectors' norms, in whichever order costs fewer operations (:func:`attended_sq_norms`): with unit
    nodes c^ and attention a, cos(sum_j a_j v_j, c) = sum_j a_j (v_j . c^) / |sum_j a_j v_j|, and the norm is
    either taken of the attended vectors ``[Bt, Bv, N, D]`` themselves or as sqrt(a^T G a), G = the video's frame
    Gram matrix ``[Bv, T, T]``, so that the largest intermediate is ``[Bt, Bv, N, T]`` (training batches).

    ``return_attention``: also return the attention itself, ``[Bt, Bv, N, T]`` (each node's weights over the
    frames, summing to 1 over the valid ones, 0 on padded frames): where in the video each node was found.

    float16 / bfloat16: the similarities and the softmax stay in that dtype; every sum of squares with its epsilon
    or floor, the Gram term and the node scores are computed in float32 (no overflow of a frame's squared norm,
    no epsilon rounded to 0), and the result is cast back. float32 runs the formulas above unchanged.
    """
    dtype = nodes.dtype
    unit_nodes = l2_normalize(nodes)                                                  # [Bt, N, D]
    dots = node_frame_dots(unit_nodes, frames)                                        # [Bt, Bv, N, T]: v_j . c^_i
    frame_norms = as_divisor(torch.sqrt(sum_of_squares(frames, -1, keepdim=False) + NORM_EPS), dtype)  # [Bv, T]
    valid = frame_mask.unsqueeze(0).unsqueeze(2)                                      # [1, Bv, 1, T]
    sims = dots / frame_norms.unsqueeze(0).unsqueeze(2)                               # s_ij
    weights = (sims * valid).clamp(min=0)
    # max(|x|, eps) written as sqrt(max(|x|^2, eps^2)): the same value, and no NaN gradient where x = 0.
    weight_norms = torch.sqrt(sum_of_squares(weights).clamp(min=ATTENTION_NORM_EPS ** 2))
    weights = weights / as_divisor(weight_norms, dtype)
    attention = masked_softmax(lam * weights, valid.expand_as(weights), dim=-1)       # [Bt, Bv, N, T]
    wide_attention, wide_frames = widen(attention), widen(frames)
    attended_sq_norm = attended_sq_norms(wide_attention, wide_frames)                 # |sum_j a_j v_j|^2
    node_scores = widen(attention * dots).sum(-1) / torch.sqrt(attended_sq_norm.clamp(min=0) + NORM_EPS)  # [Bt, Bv, N]
    node_mask = node_mask.unsqueeze(1)                                                # [Bt, 1, N]
    scores = (node_scores * node_mask).sum(-1) / node_mask.sum(-1).clamp(min=1)
    scores = scores.to(dtype) if scores.dtype != dtype else scores
    return (scores, attention) if return_attention else scores


def node_frame_dots(nodes: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Every node's dot product with every frame, nodes ``[Bt, N, D]`` and frames ``[Bv, T, D]`` -> ``[Bt, Bv, N, T]``:
    one matrix product of all nodes with all frames, whose transposed operand ONNX Runtime reads in place (a fused
    MatMul), then the result rearranged; the frames are read once and never copied."""
    texts, nodes_per_text, dim = nodes.shape
    videos, steps, _ = frames.shape
    flat = nodes.reshape(texts * nodes_per_text, dim) @ frames.reshape(videos * steps, dim).transpose(0, 1)
    return flat.reshape(texts, nodes_per_text, videos, steps).transpose(1, 2)


def attended_directly(attention: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """|sum_j a_j v_j|^2 from the attended vectors themselves: ``Bt * N * T * D`` operations per video, as one matrix
    product per video of all its attention rows (``[Bt * N, T]``) with its frames, so that a video against many
    captions is one large product rather than one small product per caption."""
    texts, videos, nodes, steps = attention.shape
    rows = attention.permute(1, 0, 2, 3).reshape(videos, texts * nodes, steps)     # [Bv, Bt * N, T]
    norms = ((rows @ frames) ** 2).sum(-1)                                          # [Bv, Bt * N]
    return norms.reshape(videos, texts, nodes).permute(1, 0, 2)


def attended_through_gram(attention: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """|sum_j a_j v_j|^2 as a^T G a, G the video's frame Gram matrix: ``T^2 * D + Bt * N * T^2`` operations per video,
    and the largest intermediate ``[Bt, Bv, N, T]``."""
    gram = frames @ frames.transpose(1, 2)                                            # [Bv, T, T]
    return ((attention @ gram.unsqueeze(0)) * attention).sum(-1)


def attended_sq_norms(attention: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """|sum_j a_j v_j|^2 for attention ``[Bt, Bv, N, T]`` over frames ``[Bv, T, D]`` -> ``[Bt, Bv, N]``, in the order
    with fewer operations per video: a query against its candidates (text -> video, Bt = 1) goes direct; a video
    against its candidate captions and a training batch go through the Gram matrix. A traced graph (an exported
    scorer) always goes direct: a trace keeps one branch, and the service's text -> video queries (1 x depth) gain
    far more from it than its video -> text queries (depth x 1 against one video) lose."""
    texts, nodes, steps, dim = attention.shape[0], attention.shape[2], frames.shape[1], frames.shape[2]
    if torch.jit.is_tracing() or texts * nodes * steps * dim <= steps * steps * dim + texts * nodes * steps * steps:
        return attended_directly(attention, frames)
    return attended_through_gram(attention, frames)


def jaccard_matrix(a: torch.Tensor, b: torch.Tensor, eps: float = JACCARD_EPS) -> torch.Tensor:
    """Generalised Jaccard similarity sum_k min(a_k, b_k) / (sum_k max(a_k, b_k) + eps) of non-negative
    vectors a [Bt, K] and b [Bv, K] -> [Bt, Bv].

    Written with min + max = x + y and max - min = |x - y|, so one ``[Bt, Bv, K]`` intermediate suffices.
    """
    total = a.sum(-1).unsqueeze(1) + b.sum(-1).unsqueeze(0)                           # [Bt, Bv]
    l1 = (a.unsqueeze(1) - b.unsqueeze(0)).abs().sum(-1)                              # [Bt, Bv]
    return ((total - l1) / 2) / ((total + l1) / 2 + floor_eps(eps, a.dtype))
