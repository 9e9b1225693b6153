"""HGR: build, train step, scorer batching, padding invariance, local attentive matching, fusion, ablations, ONNX."""
from __future__ import annotations

import math
from functools import partial
from unittest.mock import patch

import numpy as np
import pytest
import torch

from tests.training.models.zoo_checks import (VOCAB, build, check_gradients, check_item_alone_equals_item_in_batch,
                                              check_onnx_parity, check_scorer_batching, encode, encode_vocab_text,
                                              random_arrays, random_batch, scores, training_batch)
from training.models.common.matching import local_attentive_match

pytestmark = pytest.mark.usefixtures("one_thread")
SIZES = {"words": 9, "frames": 7, "verbs": 3, "nouns": 4}
_arrays = partial(random_arrays, **SIZES)
_batch = partial(random_batch, **SIZES)
_model = partial(build, "hgr")


@pytest.mark.parametrize("preset", ["fast", "paper"])
def test_builds_and_scores_both_presets(preset):
    model = _model(preset)
    text, video = _batch(model.config, batch=2)
    out = scores(model, text, video)
    assert out["score"].shape == (2, 2) and out["level_scores"].shape == (3, 2, 2)
    assert model.layout.levels == ("event", "action", "entity")
    assert torch.isfinite(out["score"]).all()


def test_forward_backward_updates_every_parameter():
    model = _model().train()
    check_gradients(model, training_batch(*_batch(model.config, batch=6)))


def test_scorer_batched_equals_one_pair_at_a_time():
    model = _model()
    check_scorer_batching(model, *encode(model, *_batch(model.config, batch=3)))


def test_item_alone_equals_item_in_padded_batch():
    model = _model()
    text, video = _batch(model.config, batch=4)
    t_all, v_all = check_item_alone_equals_item_in_batch(model, text, video)
    for b in range(4):  # padded frames and nodes are zero
        f, vb = int(video["frame_mask"][b].sum()), int(text["verb_mask"][b].sum())
        assert v_all["video_actions"][b, f:].abs().sum() == 0 and t_all["text_verbs"][b, vb:].abs().sum() == 0


def test_local_attentive_matching_literal():
    """One valid node along e1; frames e1, 3 e2 and a padded frame (5, 5) that must be ignored.

    s = (1, 0); clamp and L2 over frames -> (1, 0); softmax(4 * .) -> a = (e^4, 1) / (e^4 + 1);
    the attended vector (a1, 3 a2) has cosine a1 / sqrt(a1^2 + 9 a2^2) = 1 / sqrt(1 + 9 e^-8) with the node
    (frame embeddings are attended un-normalised). The second node is padding.
    """
    nodes = torch.tensor([[[2.0, 0.0], [0.3, -7.0]]])
    node_mask = torch.tensor([[1.0, 0.0]])
    frames = torch.tensor([[[1.0, 0.0], [0.0, 3.0], [5.0, 5.0]]])
    frame_mask = torch.tensor([[1.0, 1.0, 0.0]])
    got = local_attentive_match(nodes, node_mask, frames, frame_mask).item()
    assert got == pytest.approx(1 / math.sqrt(1 + 9 * math.exp(-8)), abs=1e-6)
    # lambda = 2 instead: cos = 1 / sqrt(1 + 9 e^-4)
    got2 = local_attentive_match(nodes, node_mask, frames, frame_mask, lam=2.0).item()
    assert got2 == pytest.approx(1 / math.sqrt(1 + 9 * math.exp(-4)), abs=1e-6)


def _unit(x):
    return x / np.sqrt((x * x).sum(-1, keepdims=True) + 1e-18)


def _numpy_attention(nodes, frames, frame_mask, lam=4.0):
    """Each node's attention over the frames [N, T] for one (text, video) pair."""
    s = _unit(nodes) @ _unit(frames).T                                 # [N, T]
    x = np.where(frame_mask[None] > 0, s, 0.0).clip(min=0)
    x = x / np.maximum(np.sqrt((x * x).sum(-1, keepdims=True)), 1e-10)
    logits = np.where(frame_mask[None] > 0, lam * x, -np.inf)
    a = np.exp(logits - logits.max(-1, keepdims=True))
    return a / a.sum(-1, keepdims=True)


def _numpy_local_match(nodes, node_mask, frames, frame_mask, lam=4.0):
    """HGR's local attentive matching for one (text, video) pair, written with explicit attended vectors."""
    unit = _unit
    a = _numpy_attention(nodes, frames, frame_mask, lam)
    attended = a @ frames                                              # [N, D]
    per_node = (unit(attended) * unit(nodes)).sum(-1)
    return (per_node * node_mask).sum() / max(node_mask.sum(), 1.0)


def test_local_attentive_matching_matches_numpy_reference():
    rng = np.random.default_rng(3)
    nodes = rng.standard_normal((3, 4, 6)).astype(np.float32)
    node_mask = np.array([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], np.float32)   # last text has no node
    frames = rng.standard_normal((2, 5, 6)).astype(np.float32)
    frame_mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], np.float32)
    frames[1, 2:] = 9.0  # junk in padded frames must not matter
    got = local_attentive_match(*(torch.from_numpy(a) for a in (nodes, node_mask, frames, frame_mask))).numpy()
    expected = np.array([[_numpy_local_match(nodes[i], node_mask[i], frames[j], frame_mask[j]) for j in range(2)]
                         for i in range(3)])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.all(got[2] == 0)  # no valid node: mean over an empty set is 0 (denominator clamped to 1)


def test_the_attention_returned_is_the_one_that_weighed_the_frames():
    """``return_attention`` gives the weights the score was computed with (the temporal evidence of a hit): the NumPy
    reference's, summing to 1 over a video's frames and 0 on its padding; the score is the same either way."""
    rng = np.random.default_rng(5)
    nodes = rng.standard_normal((2, 3, 6)).astype(np.float32)
    node_mask = np.array([[1, 1, 0], [1, 0, 0]], np.float32)
    frames = rng.standard_normal((3, 5, 6)).astype(np.float32)
    frame_mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], np.float32)
    args = [torch.from_numpy(a) for a in (nodes, node_mask, frames, frame_mask)]
    scores, attention = local_attentive_match(*args, return_attention=True)
    assert torch.equal(scores, local_attentive_match(*args))
    attention = attention.numpy()
    for i in range(2):
        for j in range(3):
            valid = int(frame_mask[j].sum())
            expected = _numpy_attention(nodes[i], frames[j], frame_mask[j])
            np.testing.assert_allclose(attention[i, j, :, :valid], expected[:, :valid], atol=1e-6)
            assert np.all(attention[i, j, :, valid:] == 0)
            np.testing.assert_allclose(attention[i, j].sum(-1), 1.0, atol=1e-6)


# (texts, videos, nodes, frames, dim) where the attended vectors are cheaper (a query against its candidates), and
# where the Gram matrix is (a video against its candidate captions, a training batch).
DIRECT, GRAM = (1, 5, 2, 6, 16), (40, 2, 3, 4, 16)


@pytest.mark.parametrize("shape", [DIRECT, GRAM], ids=["direct", "gram"])
def test_attended_norms_are_one_formula_in_either_order(shape):
    """|sum_j a_j v_j|^2 in either order equals the explicit attended vectors' (NumPy), with exact gradients."""
    from training.models.common.matching import attended_sq_norms

    texts, videos, nodes, frames, dim = shape
    rng = np.random.default_rng(7)
    attention = rng.random((texts, videos, nodes, frames))
    vectors = rng.standard_normal((videos, frames, dim))
    expected = (np.einsum("tvnj,vjd->tvnd", attention, vectors) ** 2).sum(-1)
    args = (torch.tensor(attention, requires_grad=True), torch.tensor(vectors, requires_grad=True))
    np.testing.assert_allclose(attended_sq_norms(*args).detach().numpy(), expected, rtol=1e-12)
    assert torch.autograd.gradcheck(attended_sq_norms, args)


def test_the_order_is_chosen_by_cost_and_traced_graphs_go_direct():
    """Eager: direct for a query against its candidates, the Gram matrix for a training batch; traced (the exported
    scorer): direct at any shape. Either way the scorer's values are the same (the test above)."""
    from training.models.common import matching

    calls = []
    with patch.object(matching, "attended_directly", wraps=matching.attended_directly) as direct:
        for texts, videos, nodes, frames, dim in (DIRECT, GRAM):
            matching.attended_sq_norms(torch.rand(texts, videos, nodes, frames), torch.rand(videos, frames, dim))
            calls.append(direct.call_count)
        with patch.object(torch.jit, "is_tracing", return_value=True):
            texts, videos, nodes, frames, dim = GRAM
            matching.attended_sq_norms(torch.rand(texts, videos, nodes, frames), torch.rand(videos, frames, dim))
            calls.append(direct.call_count)
    assert calls == [1, 1, 2]


def test_fusion_is_mean_of_event_action_entity_and_event_is_cosine_of_index_views():
    model = _model()
    t, v = encode(model, *_batch(model.config, batch=3))
    with torch.no_grad():
        out = model.score(t, v)
    levels = out["level_scores"].numpy()
    np.testing.assert_allclose(out["score"].numpy(), levels.mean(axis=0), atol=1e-6)
    ti, vi = t["text_index"].numpy(), v["video_index"].numpy()
    np.testing.assert_allclose(np.linalg.norm(ti, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(levels[0], ti @ vi.T, atol=1e-5)
    expected_action = np.array([[_numpy_local_match(t["text_verbs"][i].numpy(), t["text_verb_mask"][i].numpy(),
                                                     v["video_actions"][j].numpy(), v["video_frame_mask"][j].numpy())
                                 for j in range(3)] for i in range(3)])
    np.testing.assert_allclose(levels[1], expected_action, atol=1e-5)


def test_video_levels_are_linear_maps_and_attention_pooled_event():
    model = _model()
    _, video = _batch(model.config, batch=2)
    with torch.no_grad():
        v = model.encode_video(video)
    feats, mask = video["frame_feats"].numpy(), video["frame_mask"].numpy()
    p = {k: x.numpy() for k, x in model.state_dict().items()}
    for b in range(2):
        n = int(mask[b].sum())
        e = feats[b, :n] @ p["video_maps.0.weight"].T + p["video_maps.0.bias"]
        a = feats[b, :n] @ p["video_maps.1.weight"].T + p["video_maps.1.bias"]
        np.testing.assert_allclose(v["video_actions"][b, :n].numpy(), a, atol=1e-5)
        logits = e @ p["video_attention.score.weight"][0]
        w = np.exp(logits - logits.max())
        pooled = (w / w.sum()) @ e
        np.testing.assert_allclose(v["video_event"][b].numpy(), pooled / np.linalg.norm(pooled), atol=1e-5)


@pytest.mark.parametrize("switch", ["graph_attention=false", "role_awareness=false", "hierarchical_video=false",
                                    "gcn_layers=2"])
def test_each_ablation_changes_the_scores(switch):
    text, video = _batch(_model().config)
    full = scores(_model(), text, video)["score"]
    ablated = scores(_model(overrides=(switch,)), text, video)["score"]
    assert not torch.allclose(full, ablated, atol=1e-4)


def test_without_hierarchical_video_all_levels_share_one_embedding():
    model = _model(overrides=("hierarchical_video=false",))
    _, video = _batch(model.config)
    with torch.no_grad():
        v = model.encode_video(video)
    assert len(model.video_maps) == 1
    assert torch.equal(v["video_actions"], v["video_entities"])


def test_learned_vocabulary_input():
    model = _model(overrides=VOCAB)
    assert model.layout.text.input_names[:2] == ("word_ids", "word_mask")
    out = encode_vocab_text(model)
    assert out["text_index"].shape == (2, model.config.embed_dim)


def test_towers_and_scorer_trace_to_onnx(tmp_path):
    """Traced on one batch, checked on another with other batch, word, node and frame sizes (dynamic axes)."""
    model = _model()
    check_onnx_parity(model, _arrays(model.config, batch=3),
                      _arrays(model.config, batch=5, seed=1, words=11, frames=4), tmp_path)
