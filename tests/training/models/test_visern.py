"""ViSERN: build, train step, scorer batching, padding invariance, formulas (literal and NumPy), ablations, ONNX."""
from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
import torch

from tests.training.models.zoo_checks import (VOCAB, build, check_gradients, check_item_alone_equals_item_in_batch,
                                              check_onnx_parity, check_scorer_batching, encode, encode_vocab_text,
                                              np64, np_linear, random_arrays, random_batch, training_batch)
from training.models.factory import resolve_config
from training.models.visern.model import RegionGraphReasoning

pytestmark = pytest.mark.usefixtures("one_thread")

REASONING = ("random_walk", "random_walk_relu", "symmetric", "row", "none")
SIZES = {"words": 9, "frames": 6, "regions": 5}
_arrays = partial(random_arrays, **SIZES)
_batch = partial(random_batch, **SIZES)
_model = partial(build, "visern")


# -- NumPy references (written here, independent of the modules under test) -----------------------------------
def _np_reasoning(regions, graph, mode):
    """Eqs. 1 and 12 on one frame's regions [n, d]; the edge map A = exp(R / sqrt(graph_dim)) (see the model)."""
    phi, theta = np_linear(regions, graph.phi), np_linear(regions, graph.theta)
    relation = phi @ theta.T + theta @ phi.T
    if mode == "row":
        transition = relation / relation.shape[0]
    elif mode == "random_walk_relu":
        edges = np.maximum(relation, 0)
        degree = edges.sum(axis=1)
        transition = edges / np.where(degree > 0, degree, 1.0)[:, None]
    else:
        edges = np.exp(relation / math.sqrt(graph.graph_dim))
        degree = edges.sum(axis=1)
        transition = edges / degree[:, None] if mode == "random_walk" else edges / np.sqrt(np.outer(degree, degree))
    return np_linear(np_linear(transition @ regions, graph.gcn), graph.residual) + regions


def _np_multilevel(x, states, encoder):
    """Dual encoding on one sequence of real steps: x [n, D], BiGRU states [n, 2H] -> joint vector (BN in eval)."""
    levels = [x.mean(axis=0), states.mean(axis=0)]
    for conv in encoder.convs:
        weight, bias = np64(conv.weight), np64(conv.bias)                      # [C, 2H, k], [C]
        k = weight.shape[-1]
        border = np.zeros((k - 1, states.shape[1]))
        padded = np.concatenate([border, states, border])
        outputs = [np.einsum("cik,ki->c", weight, padded[t:t + k]) + bias for t in range(len(states) + k - 1)]
        levels.append(np.maximum(np.stack(outputs), 0).max(axis=0))
    joint = np_linear(np.concatenate(levels), encoder.fc)
    bn = encoder.norm
    return (joint - np64(bn.running_mean)) / np.sqrt(np64(bn.running_var) + bn.eps) * np64(bn.weight) + np64(bn.bias)


# -- build, train, batching, padding ---------------------------------------------------------------------------
@pytest.mark.parametrize("preset", ["fast", "paper"])
def test_builds_and_scores_both_presets(preset):
    model = _model(preset)
    text, video = _batch(model.config, batch=2, frames=3, regions=4)
    t, v = encode(model, text, video)
    out = model.score(t, v)
    assert out["score"].shape == (2, 2) and out["level_scores"].shape == (1, 2, 2)
    assert model.layout.levels == ("global",)
    assert model.layout.video.input_names == ("frame_mask", "region_feats")
    assert v["video_index"].shape == (2, model.config.embed_dim)


def test_paper_preset_follows_the_paper():
    config = resolve_config("visern", "paper")
    assert (config.video.region_dim, config.embed_dim, config.reasoning, config.loss.margin) == (2048, 2048, "random_walk", 0.2)
    assert (config.video_kernels, config.text_kernels) == ((2, 3, 4, 5), (2, 3, 4))


@pytest.mark.parametrize("reasoning", REASONING)
def test_forward_backward_updates_every_parameter(reasoning):
    model = _model(overrides=(f"reasoning={reasoning}",)).train()
    check_gradients(model, training_batch(*_batch(model.config, batch=6)))
    assert (model.reasoning is None) == (reasoning == "none")


def test_scorer_batched_equals_one_pair_at_a_time():
    model = _model()
    check_scorer_batching(model, *encode(model, *_batch(model.config, batch=3)))


def test_item_alone_equals_item_in_padded_batch():
    model = _model()
    # the last item has 2 frames, fewer than the largest kernel
    check_item_alone_equals_item_in_batch(model, *_batch(model.config, batch=5))


# -- formulas ----------------------------------------------------------------------------------------------------
def _tiny_graph(normalization):
    """d = 2, graph_dim = 1, phi(v) = v[0], theta(v) = v[1], W_g = W_r = I."""
    graph = RegionGraphReasoning(region_dim=2, graph_dim=1, normalization=normalization)
    with torch.no_grad():
        graph.phi.weight.copy_(torch.tensor([[1.0, 0.0]])), graph.phi.bias.zero_()
        graph.theta.weight.copy_(torch.tensor([[0.0, 1.0]])), graph.theta.bias.zero_()
        graph.gcn.weight.copy_(torch.eye(2)), graph.residual.weight.copy_(torch.eye(2))
    return graph


def test_relation_and_normalisations_literal_values():
    """Regions a = (1, 2), b = (3, -1): R = [[4, 5], [5, -6]] (a negative self edge, positive degrees after exp)."""
    regions = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    with torch.no_grad():
        relation = _tiny_graph("random_walk").relation(regions)
        np.testing.assert_allclose(relation.numpy(), [[4, 5], [5, -6]], atol=1e-6)
        walk = _tiny_graph("random_walk").transition(relation).numpy()
        sym = _tiny_graph("symmetric").transition(relation).numpy()
        row = _tiny_graph("row").transition(relation).numpy()
        z = _tiny_graph("random_walk")(regions).numpy()
    e = math.e
    np.testing.assert_allclose(walk, [[1 / (1 + e), e / (1 + e)], [1 / (1 + e ** -11), e ** -11 / (1 + e ** -11)]], atol=1e-6)
    np.testing.assert_allclose(walk.sum(axis=1), 1.0, atol=1e-6)
    d0, d1 = e ** 4 + e ** 5, e ** 5 + e ** -6
    np.testing.assert_allclose(sym, [[e ** 4 / d0, e ** 5 / math.sqrt(d0 * d1)], [e ** 5 / math.sqrt(d0 * d1), e ** -6 / d1]], atol=1e-6)
    np.testing.assert_allclose(row, [[2, 2.5], [2.5, -3]], atol=1e-6)
    with torch.no_grad():  # the literal random walk: ReLU(R) = [[4, 5], [5, 0]], rows divided by 9 and 5
        literal = _tiny_graph("random_walk_relu").transition(relation).numpy()
        lonely = _tiny_graph("random_walk_relu").transition(-relation.abs()).numpy()
    np.testing.assert_allclose(literal, [[4 / 9, 5 / 9], [1, 0]], atol=1e-6)
    np.testing.assert_allclose(lonely, 0.0)  # no positive edge: degree 0, the region gathers nothing
    np.testing.assert_allclose(z, walk @ regions.numpy() + regions.numpy(), atol=1e-5)   # Z = P V + V with W = I


@pytest.mark.parametrize("reasoning", REASONING)
def test_frame_features_match_numpy_reference(reasoning):
    model = _model(overrides=(f"reasoning={reasoning}",))
    _, video = _batch(model.config, batch=2)
    with torch.no_grad():
        frames = model.frame_features(video["region_feats"]).numpy()
    regions = np64(video["region_feats"])
    for b in range(2):
        for t in range(int(video["frame_mask"][b].sum())):
            z = regions[b, t] if reasoning == "none" else _np_reasoning(regions[b, t], model.reasoning, reasoning)
            np.testing.assert_allclose(frames[b, t], z.mean(axis=0), atol=1e-5)


@pytest.mark.parametrize("tower", ["video", "text"])
def test_multilevel_encoder_matches_numpy_reference(tower):
    model = _model()
    encoder = model.video_encoder if tower == "video" else model.text_encoder
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():  # non-trivial BatchNorm statistics
        encoder.norm.running_mean.copy_(torch.randn(encoder.norm.num_features, generator=generator))
        encoder.norm.running_var.copy_(torch.rand(encoder.norm.num_features, generator=generator) + 0.5)
    text, video = _batch(model.config, batch=5)
    if tower == "video":
        x, mask = model.frame_features(video["region_feats"]).detach() * video["frame_mask"].unsqueeze(-1), video["frame_mask"]
    else:
        x, mask = text["word_feats"], text["word_mask"]
    with torch.no_grad():
        out = encoder(x, mask).numpy()
        states, _ = encoder.rnn(x, mask)   # the shared BiGRU (tested with its own module)
    for b in range(5):
        n = int(mask[b].sum())
        expected = _np_multilevel(np64(x[b, :n]), np64(states[b, :n]), encoder)
        np.testing.assert_allclose(out[b], expected, atol=1e-4)


def test_score_is_the_joint_space_cosine_and_index_is_normalised():
    model = _model()
    t, v = encode(model, *_batch(model.config, batch=3))
    a, b = np64(t["text_embed"]), np64(v["video_embed"])
    a, b = a / np.linalg.norm(a, axis=1, keepdims=True), b / np.linalg.norm(b, axis=1, keepdims=True)
    out = model.score(t, v)
    np.testing.assert_allclose(out["score"].numpy(), a @ b.T, atol=1e-6)
    np.testing.assert_allclose(out["level_scores"][0].numpy(), a @ b.T, atol=1e-6)
    np.testing.assert_allclose(np64(t["text_index"]), a, atol=1e-6)
    np.testing.assert_allclose(np64(v["video_index"]), b, atol=1e-6)


# -- ablations ---------------------------------------------------------------------------------------------------
def test_each_reasoning_ablation_changes_the_scores():
    text, video = _batch(resolve_config("visern", "fast"), batch=4)
    scores = {}
    for reasoning in REASONING:
        model = _model(overrides=(f"reasoning={reasoning}",))
        scores[reasoning] = model.score(*encode(model, text, video))["score"]
    for reasoning in REASONING[1:]:
        assert not torch.allclose(scores[reasoning], scores["random_walk"], atol=1e-4), reasoning


def test_learned_vocabulary_input():
    model = _model(overrides=VOCAB)
    assert model.layout.text.input_names == ("word_ids", "word_mask")
    out = encode_vocab_text(model)
    assert out["text_index"].shape == (2, model.config.embed_dim)


# -- ONNX --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reasoning", REASONING)
def test_towers_and_scorer_trace_to_onnx(tmp_path, reasoning):
    """Traced on one batch, checked on another with other batch, word, frame and region counts (dynamic axes)."""
    model = _model(overrides=(f"reasoning={reasoning}",))
    check_onnx_parity(model, _arrays(model.config, batch=3, words=9, frames=6, regions=5, seed=0),
                      _arrays(model.config, batch=5, words=11, frames=4, regions=7, seed=1), tmp_path)
