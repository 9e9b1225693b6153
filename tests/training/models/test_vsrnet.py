"""VSR-Net: build, train step, scorer batching, padding invariance, formulas (NumPy references), ablations, ONNX."""
from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
import torch
from scipy.special import erf

from common.errors import ConfigError
from tests.training.models.zoo_checks import (VOCAB, build, check_gradients, check_item_alone_equals_item_in_batch,
                                              check_onnx_parity, check_scorer_batching, encode, encode_vocab_text,
                                              np64, np_layer_norm, np_linear, np_query_key_value, random_arrays, random_batch,
                                              training_batch)
from training.models.ablations import ABLATIONS
from training.models.common.transformer import TransformerEncoder, sinusoidal_positions
from training.models.factory import resolve_config
from training.models.vsrnet.model import AttentionAggregation

pytestmark = pytest.mark.usefixtures("one_thread")
SIZES = {"words": 9, "frames": 6, "regions": 5}
_arrays = partial(random_arrays, **SIZES)
_batch = partial(random_batch, **SIZES)
_model = partial(build, "vsrnet")


# -- NumPy references (written here, independent of the modules under test) -----------------------------------
def _np_gelu(x):
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


def _np_softmax(x, mask, axis):
    x = np.where(mask > 0, x, -np.inf)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _np_block(x, mask, block):
    """One pre-LN Transformer block on one sequence x [L, D] with key mask [L]."""
    heads = block.attn.heads
    length, dim = x.shape
    q, k, v = np_query_key_value(np_layer_norm(x, block.attn_norm), block.attn.qkv)
    split = lambda a: a.reshape(length, heads, dim // heads).transpose(1, 0, 2)   # [H, L, dh]
    q, k, v = split(q), split(k), split(v)
    weights = _np_softmax(q @ k.transpose(0, 2, 1) / math.sqrt(dim // heads), mask[None, None, :], axis=-1)
    attended = (weights @ v).transpose(1, 0, 2).reshape(length, dim)
    x = x + np_linear(attended, block.attn.out)
    hidden = _np_gelu(np_linear(np_layer_norm(x, block.mlp_norm), block.mlp[0]))
    return x + np_linear(hidden, block.mlp[2])


def _np_aggregate(x, mask, agg):
    """COOT attention aggregation of one sequence x [L, D] -> [D]."""
    heads = agg.heads
    scores = np_linear(_np_gelu(np_linear(x, agg.score[0])), agg.score[2])      # [L, H]
    weights = _np_softmax(scores, mask[:, None], axis=0)
    per_head = x.reshape(x.shape[0], heads, -1)                                   # [L, H, D/H]
    return (weights[:, :, None] * per_head).sum(0).reshape(-1)


def _np_cos(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T


# -- build, train, batching, padding ---------------------------------------------------------------------------
@pytest.mark.parametrize("preset", ["fast", "paper"])
def test_builds_and_scores_both_presets(preset):
    model = _model(preset)
    text, video = _batch(model.config, batch=2, frames=3, regions=4)
    t, v = encode(model, text, video)
    out = model.score(t, v)
    assert out["score"].shape == (2, 2) and out["level_scores"].shape == (2, 2, 2)
    assert model.layout.levels == ("relation", "global")
    assert model.layout.video.input_names == ("frame_feats", "frame_mask", "region_feats")
    assert t["text_index"].shape == (2, model.config.embed_dim)


def test_paper_preset_follows_the_paper():
    config = resolve_config("vsrnet", "paper")
    assert (config.embed_dim, config.layers, config.relation_weight, config.loss.margin) == (1024, 4, 0.5, 0.2)
    assert (config.video.frame_dim, config.video.region_dim) == (2560, 2048)


def test_loss_is_the_public_trainers_per_space_hinge_over_all_negatives():
    """0.5 L_global + 0.5 L_relation, each the hinge summed over every in-batch negative (margin 0.2) on its own
    space's cosine; objective=fused keeps Strata's former hinge on the fused score as a named option."""
    model = _model()
    assert (model.config.objective, model.config.loss.max_violation, model.config.loss.margin) == ("per_space", False, 0.2)
    text, video = _batch(model.config, batch=5)
    batch = training_batch(text, video)
    with torch.no_grad():
        t, v = encode(model, text, video)
        out = model.loss(t, v, batch)
        levels = model.score(t, v)["level_scores"].double().numpy()
    expected = []
    for s in levels:
        pos = np.diag(s)
        cost_t2v = np.maximum(0.2 + s - pos[:, None], 0)
        cost_v2t = np.maximum(0.2 + s - pos[None, :], 0)
        np.fill_diagonal(cost_t2v, 0)
        np.fill_diagonal(cost_v2t, 0)
        expected.append((cost_t2v.sum(axis=1) + cost_v2t.sum(axis=0)).mean())
    assert out["rank_relation"].item() == pytest.approx(expected[0], rel=1e-5)
    assert out["rank_global"].item() == pytest.approx(expected[1], rel=1e-5)
    assert out["loss"].item() == pytest.approx(0.5 * expected[0] + 0.5 * expected[1], rel=1e-5)
    fused = _model(overrides=("objective=fused", "loss.max_violation=true"))
    fused.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert set(fused.loss(t, v, batch)) == {"loss", "rank"}


def test_forward_backward_updates_every_parameter():
    model = _model().train()
    check_gradients(model, training_batch(*_batch(model.config, batch=6)))


def test_scorer_batched_equals_one_pair_at_a_time():
    model = _model()
    check_scorer_batching(model, *encode(model, *_batch(model.config, batch=3)))


@pytest.mark.parametrize("overrides", [(), ("relation_encoder=temporal",), ("relation_encoder=spatial",)])
def test_item_alone_equals_item_in_padded_batch(overrides):
    model = _model(overrides=overrides)
    check_item_alone_equals_item_in_batch(model, *_batch(model.config, batch=4))


# -- formulas ----------------------------------------------------------------------------------------------------
def test_sinusoidal_positions_literal_values():
    pe = sinusoidal_positions(3, 4).numpy()
    expected = np.array([[0, 1, 0, 1],
                         [math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)],
                         [math.sin(2), math.cos(2), math.sin(0.02), math.cos(0.02)]])
    np.testing.assert_allclose(pe, expected, atol=1e-6)


def test_masked_transformer_matches_numpy_reference():
    torch.manual_seed(1)
    encoder = TransformerEncoder(dim=8, layers=2, heads=2, mlp_dim=16, positional=True).eval()
    x = torch.randn(2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.float32)
    with torch.no_grad():
        out = encoder(x, mask).numpy()
    positions = np.array([[math.sin(p / 10000 ** (i / 8)) if i % 2 == 0 else math.cos(p / 10000 ** ((i - 1) / 8))
                           for i in range(8)] for p in range(5)])
    for b in range(2):
        h = np64(x[b]) + positions
        for block in encoder.blocks:
            h = _np_block(h, np64(mask[b]), block)
        n = int(mask[b].sum())
        np.testing.assert_allclose(out[b, :n], h[:n], atol=1e-5)
        assert np.all(out[b, n:] == 0)


def test_attention_aggregation_matches_numpy_reference():
    torch.manual_seed(2)
    agg = AttentionAggregation(dim=6, hidden=5, heads=3)
    x = torch.randn(2, 4, 6)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.float32)
    with torch.no_grad():
        out = agg(x, mask).numpy()
    for b in range(2):
        np.testing.assert_allclose(out[b], _np_aggregate(np64(x[b]), np64(mask[b]), agg), atol=1e-6)


@pytest.mark.parametrize("lam", [0.5, 0.3])
def test_fused_score_and_exact_index_view(lam):
    model = _model(overrides=(f"relation_weight={lam}",))
    t, v = encode(model, *_batch(model.config, batch=3))
    out = model.score(t, v)
    cos_r = _np_cos(np64(t["text_embed"]), np64(v["video_relation"]))
    cos_v = _np_cos(np64(t["text_embed"]), np64(v["video_global"]))
    np.testing.assert_allclose(out["level_scores"].numpy(), np.stack([cos_r, cos_v]), atol=1e-6)
    np.testing.assert_allclose(out["score"].numpy(), lam * cos_r + (1 - lam) * cos_v, atol=1e-6)
    # The index view is exact: inner product of the index vectors == the fused score.
    np.testing.assert_allclose((t["text_index"] @ v["video_index"].T).numpy(), out["score"].numpy(), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(t["text_index"].numpy(), axis=1), 1.0, atol=1e-6)


def test_relation_branch_mean_of_regions_matches_numpy_reference():
    """VR_m: F_r = aggregation over real frames of the mean over regions of the projected regions."""
    model = _model(overrides=("branches=relation", "relation_encoder=mean"))
    text, video = _batch(model.config, batch=3)
    t, v = encode(model, text, video)
    regions, mask = np64(video["region_feats"]), np64(video["frame_mask"])
    expected = np.stack([_np_aggregate(np_linear(regions[b], model.region_fc).mean(axis=1), mask[b], model.relation_pool)
                         for b in range(3)])
    np.testing.assert_allclose(np64(v["video_relation"]), expected, atol=1e-5)
    # One level: the score is that cosine, and the index view is norm(F_r).
    np.testing.assert_allclose(model.score(t, v)["score"].numpy(), _np_cos(np64(t["text_embed"]), expected), atol=1e-5)
    np.testing.assert_allclose(np64(v["video_index"]), expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-5)


def test_text_embedding_matches_numpy_reference():
    model = _model()
    text, _ = _batch(model.config, batch=3)
    with torch.no_grad():
        t = model.encode_text(model.text_inputs(text))
    words, mask = np64(text["word_feats"]), np64(text["word_mask"])
    expected = np.stack([_np_aggregate(np_linear(words[b], model.text_fc), mask[b], model.text_pool) for b in range(3)])
    np.testing.assert_allclose(np64(t["text_embed"]), expected, atol=1e-5)


# -- ablations ---------------------------------------------------------------------------------------------------
# The named ablations (VSR-Net's Table 1 rows) and a non-default fusion weight.
VARIANTS = [*ABLATIONS["vsrnet"].values(), ("relation_weight=0.8",)]


def test_each_ablation_changes_the_scores():
    text, video = _batch(resolve_config("vsrnet", "fast"), batch=4)
    default = _model()
    base = default.score(*encode(default, text, video))["score"]
    for overrides in VARIANTS:
        model = _model(overrides=overrides)
        scores = model.score(*encode(model, text, video))["score"]
        assert not torch.allclose(scores, base, atol=1e-4), overrides


def test_variant_layouts_take_only_their_inputs():
    vg, vr = resolve_config("vsrnet", "fast", ("branches=global",)), resolve_config("vsrnet", "fast", ("branches=relation",))
    assert vg.layout().video.input_names == ("frame_feats", "frame_mask") and vg.layout().levels == ("global",)
    assert vr.layout().video.input_names == ("frame_mask", "region_feats") and vr.layout().levels == ("relation",)
    with pytest.raises(ConfigError, match="relation_weight"):
        resolve_config("vsrnet", "fast", ("relation_weight=1.5",))
    with pytest.raises(ConfigError, match="relation_encoder"):
        resolve_config("vsrnet", "fast", ("branches=global", "relation_encoder=mean"))


def test_learned_vocabulary_input():
    model = _model(overrides=VOCAB)
    assert model.layout.text.input_names == ("word_ids", "word_mask")
    out = encode_vocab_text(model)
    assert out["text_index"].shape == (2, model.config.embed_dim)


# -- ONNX --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("branches", ["both", "global", "relation"])
def test_towers_and_scorer_trace_to_onnx(tmp_path, branches):
    """Traced on one batch, checked on another with other batch, word, frame and region counts (dynamic axes)."""
    model = _model(overrides=(f"branches={branches}",))
    check_onnx_parity(model, _arrays(model.config, batch=3, words=9, frames=6, regions=5, seed=0),
                      _arrays(model.config, batch=5, words=11, frames=4, regions=7, seed=1), tmp_path)
