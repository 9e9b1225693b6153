"""Half precision: every model of the zoo runs in float16 (``model.half()`` and CPU autocast) and agrees with
float32, and the dtype-aware masks and epsilons leave float32 exactly as the reference formulas give it.

Tolerance: ``HALF_ATOL`` = 5e-3 on scores and level scores (cosines and Jaccard ratios, all within [-1, 1]).
float16 rounds each value to a relative 2^-11 (4.9e-4); the towers and scorers chain a few dozen such roundings,
and the largest difference measured on these batches is about 1e-3 (HANet, whose top-k concept pooling can pick a
different frame of two near-tied probabilities). 5e-3 is also the tolerance the float16 tensor store already
holds against float32 scoring.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from export.onnx import export_part, torch_outputs
from export.runner import OnnxPart
from tests.training.models.zoo_checks import build, random_arrays, random_batch
from training.models.common.functional import floor_eps, l2_normalize, masked_softmax, span_max_pool
from training.models.common.matching import jaccard_matrix, local_attentive_match
from training.models.hanet.model import descending_ranks
from training.models.visern.model import RegionGraphReasoning

pytestmark = pytest.mark.usefixtures("one_thread")
HALF_ATOL = 5e-3
# The smallest configs each model's own tests use, and the batch sizes they score.
OVERRIDES = {"hanet": ("embed_dim=32", "concepts.num_verbs=12", "concepts.num_nouns=16", "local_actions=3",
                       "local_entities=4", "se_reduction=4"),
             "mcsan": ("concepts.num_nouns=12", "concepts.num_verbs=10", "concepts.num_triplets=8")}
SIZES = {"hanet": {"frames": 11, "verbs": 3, "nouns": 4}, "mcsan": {"frames": 7, "verbs": 3, "nouns": 4},
         "vsrnet": {"frames": 6, "regions": 5}, "visern": {"frames": 6, "regions": 5}}
MODELS = ("vsepp", "hgr", "hanet", "visern", "vsrnet", "mcsan")


def _half(tensors):
    return {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}


def _scores(model, text, video):
    with torch.no_grad():
        t, v = model.encode_text(model.text_inputs(text)), model.encode_video(model.video_inputs(video))
        return model.score(t, v)


@pytest.mark.parametrize("mode", ["half", "autocast"])
@pytest.mark.parametrize("name", MODELS)
def test_zoo_model_in_float16_agrees_with_float32(name, mode):
    model = build(name, "fast", OVERRIDES.get(name, ()))
    text, video = random_batch(model.config, batch=4, words=9, **SIZES.get(name, {"frames": 7}))
    expected = _scores(model, text, video)
    if mode == "half":
        got = _scores(model.half(), _half(text), _half(video))
        assert got["score"].dtype == torch.float16
    else:
        with torch.autocast("cpu", dtype=torch.float16):
            got = _scores(model, text, video)
    for key in ("score", "level_scores"):
        assert torch.isfinite(got[key]).all(), key
        torch.testing.assert_close(got[key].float(), expected[key], atol=HALF_ATOL, rtol=0, msg=key)


# -- float32: the formulas as they were written with the constants -1e18 and 1e-18 -----------------------------
def _old_l2_normalize(x):
    return x / torch.sqrt((x * x).sum(dim=-1, keepdim=True) + 1e-18)


def _old_masked_softmax(logits, mask, dim=-1):
    return torch.softmax(logits.masked_fill(mask == 0, -1e18), dim=dim)


def _old_span_max_pool(states, spans):
    pooled = states.unsqueeze(1).masked_fill(spans.unsqueeze(-1) == 0, -1e18).max(dim=2).values
    return pooled * (spans.sum(-1, keepdim=True) > 0).to(states.dtype)


def _old_local_attentive_match(nodes, node_mask, frames, frame_mask, lam=4.0):
    dots = _old_l2_normalize(nodes).unsqueeze(1) @ frames.transpose(1, 2).unsqueeze(0)
    valid = frame_mask.unsqueeze(0).unsqueeze(2)
    sims = dots / torch.sqrt((frames * frames).sum(-1) + 1e-18).unsqueeze(0).unsqueeze(2)
    weights = (sims * valid).clamp(min=0)
    weights = weights / torch.sqrt((weights * weights).sum(-1, keepdim=True).clamp(min=1e-20))
    attention = _old_masked_softmax(lam * weights, valid.expand_as(weights))
    gram = frames @ frames.transpose(1, 2)
    attended_sq_norm = ((attention @ gram.unsqueeze(0)) * attention).sum(-1)
    node_scores = (attention * dots).sum(-1) / torch.sqrt(attended_sq_norm.clamp(min=0) + 1e-18)
    node_mask = node_mask.unsqueeze(1)
    return (node_scores * node_mask).sum(-1) / node_mask.sum(-1).clamp(min=1)


def _edge_inputs(dtype=torch.float32):
    """Nodes and frames with every edge case: a padded frame, a fully padded video, a zero frame, a node with no
    positive similarity to any frame, a zero node, a text with no valid node (an empty level), and an empty span."""
    gen = torch.Generator().manual_seed(3)
    nodes = torch.randn(3, 4, 16, generator=gen)
    node_mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]], dtype=torch.float32)
    frames = torch.randn(3, 5, 16, generator=gen)
    frame_mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.float32)
    frames[0, 4] = 0                                     # padded frame, zeroed as the towers leave it
    frames[1, 1] = 0                                     # a real frame that is zero
    frames[1, 0] = -frames[1, 0].abs()
    nodes[0, 1] = frames[1, 0].abs()                     # negative cosine with video 1's only non-zero frame
    nodes[1, 1] = 0                                      # a zero node
    spans = torch.zeros(3, 4, 16 // 2)
    spans[0, 0, :3] = 1
    spans[1, 2, 5] = 1                                   # the other spans are empty
    return [t.to(dtype) for t in (nodes, node_mask, frames, frame_mask)] + [spans.to(dtype)]


def test_float32_masks_and_epsilons_are_bit_identical_to_the_reference_constants():
    nodes, node_mask, frames, frame_mask, spans = _edge_inputs()
    logits = torch.randn(3, 5, generator=torch.Generator().manual_seed(4)) * 30
    assert torch.equal(masked_softmax(logits, frame_mask), _old_masked_softmax(logits, frame_mask))
    assert torch.equal(masked_softmax(logits, frame_mask)[2], torch.full((5,), 0.2))   # fully masked: uniform
    assert torch.equal(l2_normalize(nodes), _old_l2_normalize(nodes))
    assert torch.equal(span_max_pool(nodes, spans[:, :, :4]), _old_span_max_pool(nodes, spans[:, :, :4]))
    got = local_attentive_match(nodes, node_mask, frames, frame_mask)
    # Its matrix products are taken in a cheaper order than the reference's (the dots as one product of all frames
    # with all nodes; the attended norms directly where that costs less), so equal to rounding, not bit for bit.
    torch.testing.assert_close(got, _old_local_attentive_match(nodes, node_mask, frames, frame_mask),
                               rtol=1e-6, atol=1e-6)
    assert torch.equal(got[2], torch.zeros(3))                                          # empty level scores 0
    scores = torch.rand(3, 5, 6, generator=torch.Generator().manual_seed(5))
    old_order = torch.argsort(scores.masked_fill(frame_mask.unsqueeze(-1) == 0, -1e18), dim=1, descending=True)
    old_ranks = torch.zeros_like(scores).scatter(1, old_order, torch.arange(5.0).view(1, -1, 1).expand_as(scores))
    assert torch.equal(descending_ranks(scores, frame_mask), old_ranks)


def test_float16_edge_cases_stay_finite_and_match_float32():
    args32 = _edge_inputs()
    nodes, node_mask, frames, frame_mask, spans = _edge_inputs(torch.float16)
    half = masked_softmax(frames[:, :, 0], frame_mask)
    assert torch.equal(half[2], torch.full((5,), 0.2, dtype=torch.float16))              # fully masked: uniform
    assert torch.equal(half[1, 2:], torch.zeros(3, dtype=torch.float16))                 # masked: exactly 0
    assert torch.equal(span_max_pool(nodes, spans[:, :, :4])[2], torch.zeros(4, 16, dtype=torch.float16))
    assert torch.equal(l2_normalize(nodes)[1, 1], torch.zeros(16, dtype=torch.float16))  # zero vector -> 0, not NaN
    big = torch.full((2, 256), 300.0, dtype=torch.float16)                                # sum of squares > 65504
    torch.testing.assert_close(l2_normalize(big).float(), torch.full((2, 256), 1 / 16))
    for scale in (1.0, 300.0):  # frames with norms beyond float16's square root of its largest value
        got = local_attentive_match(nodes, node_mask, frames * scale, frame_mask)
        expected = local_attentive_match(args32[0], args32[1], args32[2] * scale, args32[3])
        assert got.dtype == torch.float16 and torch.isfinite(got).all()
        torch.testing.assert_close(got.float(), expected, atol=HALF_ATOL, rtol=0)
    zero = torch.zeros(2, 6, dtype=torch.float16)
    assert torch.equal(jaccard_matrix(zero, zero), torch.zeros(2, 2, dtype=torch.float16))  # 0 / eps, not NaN
    assert floor_eps(1e-18, torch.float32) == 1e-18 and floor_eps(1e-18, torch.float16) == torch.finfo(torch.float16).tiny


def test_float16_zero_degree_region_keeps_a_zero_row():
    """ViSERN's literal random walk: a region whose edges are all non-positive gathers nothing (0 / eps = 0)."""
    graph = RegionGraphReasoning(8, 8, "random_walk_relu")
    relation = torch.tensor([[[1.0, -1.0], [-1.0, -2.0]]])
    for dtype in (torch.float32, torch.float16):
        weights = graph.transition(relation.to(dtype))
        assert torch.equal(weights[0, 1], torch.zeros(2, dtype=dtype)) and torch.isfinite(weights).all()


def test_hgr_scorer_exports_to_float16_onnx(tmp_path):
    """The scorer traced from ``model.half()`` on float16 inputs is a float16 ONNX graph that ONNX Runtime runs,
    agreeing with the float32 scorer (the serving path does not use it yet: its layout declares float32)."""
    model = build("hgr")
    text, video = random_arrays(model.config, batch=3, words=9, frames=7)
    inputs = {**torch_outputs(model, "text", text), **torch_outputs(model, "video", video)}
    expected = torch_outputs(model, "scorer", inputs)
    half = {k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in inputs.items()}
    got = OnnxPart(export_part(model.half(), "scorer", half, tmp_path / "scorer16.onnx")).run(half)
    for name, arr in expected.items():
        assert got[name].dtype == np.float16
        np.testing.assert_allclose(got[name].astype(np.float32), arr, atol=HALF_ATOL, rtol=0, err_msg=name)
