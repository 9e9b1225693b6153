"""MCSAN: build, train step, scorer batching, padding invariance, Eq. 8-23 formulas, fusion, index view,
losses, ablations, ONNX."""
from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
import torch

from tests.training.models.zoo_checks import (VOCAB, build, check_gradients, check_item_alone_equals_item_in_batch,
                                              check_onnx_parity, check_scorer_batching, encode, encode_vocab_text,
                                              np64, np_layer_norm, np_query_key_value, random_arrays, random_batch,
                                              scores)
from training.losses import focal_bce_loss, hinge_triplet_loss
from training.models.mcsan.model import ActionConvs, RelationshipEncoder, circulant

pytestmark = pytest.mark.usefixtures("one_thread")
LABELS = {"noun_labels": "num_nouns", "verb_labels": "num_verbs", "triplet_labels": "num_triplets"}  # concepts.*
SMALL = ("concepts.num_nouns=12", "concepts.num_verbs=10", "concepts.num_triplets=8")
SIZES = {"words": 9, "frames": 7, "verbs": 3, "nouns": 4}
_arrays = partial(random_arrays, **SIZES)


def _batch(config, labels=False, **kw):
    """Text and video inputs in one dict, with random concept labels when ``labels``."""
    text, video = random_batch(config, **{**SIZES, **kw})
    batch = {**text, **video}
    if labels:
        size = text["word_mask"].shape[0]
        gen = torch.Generator().manual_seed(1)
        batch["video_ids"] = torch.arange(size)
        for key, field in LABELS.items():
            batch[key] = (torch.rand(size, getattr(config.concepts, field), generator=gen) < 0.3).float()
            # the video's labels: the caption's own and the concepts of its other captions
            other = (torch.rand(batch[key].shape, generator=gen) < 0.3).float()
            batch[key.replace("_labels", "_video_labels")] = (batch[key] + other).clamp(max=1)
    return batch


def _model(preset="fast", overrides=SMALL):
    return build("mcsan", preset, overrides)


@pytest.mark.parametrize("preset", ["fast", "paper"])
def test_builds_and_scores_both_presets(preset):
    model = _model(preset, overrides=SMALL)
    assert model.config.loss.margin == 0.25
    assert (model.config.attribute_weight, model.config.kl_weight) == (0.1, 0.001)
    batch = _batch(model.config, batch=2)
    out = scores(model, batch, batch)
    assert model.layout.levels == ("global", "entity", "action", "relationship")
    assert out["score"].shape == (2, 2) and out["level_scores"].shape == (4, 2, 2)


def test_forward_backward_updates_every_parameter():
    model = _model().train()
    out = check_gradients(model, _batch(model.config, labels=True, batch=6))
    assert set(out) == {"loss", "rank", "attribute", "kl"}
    assert all(out[k].item() > 0 for k in out)


@pytest.mark.parametrize("targets", ["video", "caption"])
def test_loss_is_rank_plus_weighted_focal_and_kl(targets):
    """Eq. 35: the focal BCE sums over the vocabulary and averages over the batch; the caption's features take its
    own concepts, the video's the union over the video's captions (or the caption's, as an option)."""
    model = _model(overrides=SMALL + (f"video_attribute_targets={targets}",))
    batch = _batch(model.config, labels=True)
    with torch.no_grad():
        text, video = encode(model, batch, batch)
        out = model.loss(text, video, batch)
        attribute = 0.0
        for level, key in (("entity", "noun_labels"), ("action", "verb_labels"), ("relationship", "triplet_labels")):
            video_key = key.replace("_labels", "_video_labels") if targets == "video" else key
            for side, prefix, labels in ((text, "text", key), (video, "video", video_key)):
                per_entry = focal_bce_loss(model.attribute_heads[level](side[f"{prefix}_{level}"]), batch[labels],
                                           0.25, 2.0) * batch[labels].numel()
                attribute = attribute + per_entry / batch[labels].shape[0]
    assert out["attribute"].item() == pytest.approx(attribute.item(), rel=1e-5)
    expected = out["rank"] + 0.1 * out["attribute"] + 0.001 * out["kl"]
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_level_rank_adds_a_hinge_per_level():
    model = _model(overrides=SMALL + ("level_rank_weight=0.5",))
    batch = _batch(model.config, labels=True)
    with torch.no_grad():
        text, video = encode(model, batch, batch)
        out = model.loss(text, video, batch)
        levels = scores(model, batch, batch)["level_scores"]
    expected = sum(hinge_triplet_loss(s, model.config.loss, batch["video_ids"]) for s in levels)
    assert out["level_rank"].item() == pytest.approx(expected.item(), rel=1e-6)
    plain = out["rank"] + 0.1 * out["attribute"] + 0.001 * out["kl"]
    assert out["loss"].item() == pytest.approx((plain + 0.5 * expected).item(), rel=1e-6)


def test_scorer_batched_equals_one_pair_at_a_time():
    model = _model()
    batch = _batch(model.config, batch=3)
    check_scorer_batching(model, *encode(model, batch, batch))


def test_item_alone_equals_item_in_padded_batch():
    model = _model()
    batch = _batch(model.config, batch=4, frames=9)
    assert batch["word_mask"].sum() < batch["word_mask"].numel() and batch["frame_mask"].sum() < batch["frame_mask"].numel()
    check_item_alone_equals_item_in_batch(model, batch, batch)


# -- formulas against NumPy references written here --------------------------------------------------------
def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_circulant_literal():
    c = circulant(torch.tensor([1.0, 2.0, 3.0]))
    assert c.tolist() == [[1.0, 2.0, 3.0], [3.0, 1.0, 2.0], [2.0, 3.0, 1.0]]


def test_scores_match_numpy_circular_correlation_and_cosines():
    """Eq. 23 by the definition [a * b]_k = sum_i a_i b_{(k + i) mod d} with a = video, b = text; Eq. 30-33."""
    model = _model()
    gen = torch.Generator().manual_seed(5)
    dims = {"global": model.config.global_dim, "entity": 256, "action": 256, "relationship": 256}
    text = {f"text_{k}": torch.randn(3, d, generator=gen) for k, d in dims.items()}
    video = {f"video_{k}": torch.randn(2, d, generator=gen) for k, d in dims.items()}
    with torch.no_grad():
        out = model.score(text, video)
    w, bias = np64(model.global_fc.weight)[0], model.global_fc.bias.item()
    d = w.shape[0]
    expected = np.zeros((4, 3, 2))
    for ti in range(3):
        for vj in range(2):
            a, b = _unit(np64(video["video_global"][vj])), _unit(np64(text["text_global"][ti]))
            corr = np.array([sum(a[i] * b[(k + i) % d] for i in range(d)) for k in range(d)])
            expected[0, ti, vj] = 1 / (1 + math.exp(-(w @ corr + bias)))
            for n, level in enumerate(("entity", "action", "relationship"), start=1):
                expected[n, ti, vj] = _unit(np64(text[f"text_{level}"][ti])) @ _unit(np64(video[f"video_{level}"][vj]))
    np.testing.assert_allclose(out["level_scores"].numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(out["score"].numpy(), expected.mean(axis=0), atol=1e-5)


def test_index_inner_product_is_the_linearised_fused_score():
    """<text_index, video_index> * sqrt(L) * |q| = sum of local cosines + (FC(v * t) - b) / 4 per pair."""
    model = _model()
    batch = _batch(model.config, batch=3)
    with torch.no_grad():
        t, v = encode(model, batch, batch)
        levels = model.score(t, v)["level_scores"].numpy().astype(np.float64)
    w, bias = np64(model.global_fc.weight)[0], model.global_fc.bias.item()
    d = w.shape[0]
    for ti in range(3):
        tg = _unit(np64(t["text_global"][ti]))
        u = np.array([sum(w[k] * tg[(i + k) % d] for k in range(d)) for i in range(d)])  # v . u = w . (v * t)
        q = np.concatenate([u / 4] + [_unit(np64(t[f"text_{lv}"][ti])) for lv in ("entity", "action", "relationship")])
        np.testing.assert_allclose(t["text_index"][ti].numpy(), q / np.linalg.norm(q), atol=1e-5)
        for vj in range(3):
            logit = math.log(levels[0, ti, vj] / (1 - levels[0, ti, vj]))
            linearised = levels[1:, ti, vj].sum() + (logit - bias) / 4
            inner = float(t["text_index"][ti] @ v["video_index"][vj])
            assert inner * 2 * np.linalg.norm(q) == pytest.approx(linearised, abs=1e-4)
    np.testing.assert_allclose(np.linalg.norm(v["video_index"].numpy(), axis=1), 1.0, atol=1e-5)


def test_video_residual_branch_and_entity_conv_match_numpy():
    """Eq. 8 then Eq. 16 (Conv1d k=1 + ReLU), max over the valid frames."""
    model = _model()
    batch = _batch(model.config)
    with torch.no_grad():
        _, v = encode(model, batch, batch)
    fc, conv = model.video_branches["entity"], model.video_entity
    weight, conv_w, conv_b = np64(fc.weight), np64(conv.weight)[:, :, 0], np64(conv.bias)
    for b in range(4):
        n = int(batch["frame_mask"][b].sum())
        frames = np64(batch["frame_feats"][b, :n])
        branch = np.maximum(frames + frames @ weight.T + np64(fc.bias), 0)
        per_frame = np.maximum(branch @ conv_w.T + conv_b, 0)
        np.testing.assert_allclose(v["video_entity"][b].numpy(), per_frame.max(axis=0), atol=1e-5)


def test_video_global_attends_frames_before_the_bigru():
    """Eq. 11-12: alpha = softmax over valid frames of F^g W; the BiGRU reads alpha * F^g (Eq. 13-15)."""
    model = _model()
    batch = _batch(model.config)
    with torch.no_grad():
        _, v = encode(model, batch, batch)
    fc, attn = model.video_branches["global"], np64(model.video_attention.weight)[0]
    inputs = torch.zeros_like(batch["frame_feats"])
    for b in range(4):
        n = int(batch["frame_mask"][b].sum())
        frames = np64(batch["frame_feats"][b, :n])
        branch = np.maximum(frames + frames @ np64(fc.weight).T + np64(fc.bias), 0)
        logits = branch @ attn
        alpha = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        inputs[b, :n] = torch.from_numpy(alpha[:, None] * branch).float()
    with torch.no_grad():
        _, last = model.video_rnn(inputs, batch["frame_mask"])
    np.testing.assert_allclose(v["video_global"].numpy(), last.numpy(), atol=1e-5)
    assert v["video_global"].shape[1] == model.config.global_dim


def test_action_convolutions_match_numpy():
    """Eq. 17: sum of beta_k ReLU(Conv1d_k), k = 2, 3, 5, 'same' length with zeros beyond the sequence."""
    torch.manual_seed(2)
    module = ActionConvs(3, 4)
    with torch.no_grad():
        module.beta.copy_(torch.tensor([0.5, -1.0, 2.0]))
    x = torch.randn(1, 6, 3)
    with torch.no_grad():
        got = module(x)[0].numpy()
    seq = np64(x[0])
    expected = np.zeros((6, 4))
    for beta, conv in zip((0.5, -1.0, 2.0), module.convs):
        k, w, bias = conv.kernel_size[0], np64(conv.weight), np64(conv.bias)
        left = (k - 1) - (k - 1) // 2
        padded = np.concatenate([np.zeros((left, 3)), seq, np.zeros(((k - 1) // 2, 3))])
        for t in range(6):
            window = padded[t:t + k]                                 # [k, 3]
            out = np.einsum("oik,ki->o", w, window) + bias
            expected[t] += beta * np.maximum(out, 0)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_relationship_encoder_matches_numpy():
    """Eq. 2-6: positions, multi-head self-attention over the valid steps, post-LayerNorm residuals, FFN, mean."""
    torch.manual_seed(3)
    enc = RelationshipEncoder(input_dim=5, dim=8, heads=2, ffn_dim=6, layers=1).eval()
    x = torch.randn(1, 4, 5)
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    with torch.no_grad():
        got = enc(x * mask.unsqueeze(-1), mask)[0].numpy()
    n, dim, heads = 3, 8, 2
    h = np64(x[0, :n]) @ np64(enc.project.weight).T + np64(enc.project.bias)
    pos = np.zeros((n, dim))
    for p in range(n):
        for i in range(0, dim, 2):
            pos[p, i] = math.sin(p / 10000 ** (i / dim))
            pos[p, i + 1] = math.cos(p / 10000 ** (i / dim))
    h = h + pos
    layer = enc.layers[0]
    q, k, v = np_query_key_value(h, layer.attention.qkv)
    hd = dim // heads
    attended = np.zeros((n, dim))
    for head in range(heads):
        s = slice(head * hd, (head + 1) * hd)
        logits = q[:, s] @ k[:, s].T / math.sqrt(hd)
        weights = np.exp(logits - logits.max(1, keepdims=True))
        weights /= weights.sum(1, keepdims=True)
        attended[:, s] = weights @ v[:, s]
    attended = attended @ np64(layer.attention.out.weight).T + np64(layer.attention.out.bias)
    h = np_layer_norm(attended + h, layer.attention_norm)
    ffn = np.maximum(h @ np64(layer.ffn[0].weight).T + np64(layer.ffn[0].bias), 0) @ np64(layer.ffn[2].weight).T + np64(layer.ffn[2].bias)
    h = np_layer_norm(h + ffn, layer.ffn_norm)
    np.testing.assert_allclose(got, h.mean(axis=0), atol=1e-5)


def test_text_levels_match_numpy():
    """Global = projection of the sentence embedding; entity / action = mean of the graph's noun / verb nodes."""
    model = _model()
    batch = _batch(model.config)
    with torch.no_grad():
        t, _ = encode(model, batch, batch)
        states, _ = model.word_rnn(batch["word_feats"], batch["word_mask"])
        _, verbs, nouns = model.graph(states, batch["word_mask"], (states.sum(1) / batch["word_mask"].sum(1, keepdim=True)),
                                      batch["verb_spans"], batch["verb_mask"], batch["noun_spans"], batch["noun_mask"],
                                      batch["noun_roles"], batch["noun_verb_edges"])
    proj = model.text_global
    np.testing.assert_allclose(t["text_global"].numpy(), np64(batch["sent_feat"]) @ np64(proj.weight).T + np64(proj.bias), atol=1e-5)
    for b in range(4):
        nv, nn_ = int(batch["verb_mask"][b].sum()), int(batch["noun_mask"][b].sum())
        np.testing.assert_allclose(t["text_action"][b].numpy(), np64(verbs[b, :nv]).mean(0), atol=1e-5)
        np.testing.assert_allclose(t["text_entity"][b].numpy(), np64(nouns[b, :nn_]).mean(0), atol=1e-5)


# -- ablations ------------------------------------------------------------------------------------------------
def test_without_relationship_drops_the_level():
    full, ablated = _model(), _model(overrides=SMALL + ("relationship=false",))
    batch = _batch(full.config)
    assert ablated.layout.levels == ("global", "entity", "action")
    assert "text_relationship" not in ablated.layout.text.output_names
    assert ablated.layout.text.spec("text_index").shape[1] == ablated.config.global_dim + 2 * ablated.config.embed_dim
    a, b = scores(full, batch, batch), scores(ablated, batch, batch)
    assert b["level_scores"].shape[0] == 3
    assert not torch.allclose(a["score"], b["score"], atol=1e-4)


@pytest.mark.parametrize("switch", ["relationship=false", "distribution_constraints=false", "focal=false"])
def test_each_ablation_changes_scores_after_a_training_step(switch):
    """The KL and focal switches change only the loss, so they change the scores after one step."""
    def after_step(overrides):
        model = _model(overrides=SMALL + overrides).train()
        batch = _batch(model.config, labels=True, batch=6)
        out = model(batch)
        out["loss"].backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 1.0 * p.grad
        model.eval()
        return out, scores(model, batch, batch)["score"]

    (full_loss, full), (abl_loss, ablated) = after_step(()), after_step((switch,))
    if switch == "distribution_constraints=false":
        assert abl_loss["kl"].item() == 0 and full_loss["kl"].item() > 0
    if switch == "focal=false":
        assert abl_loss["attribute"].item() > full_loss["attribute"].item()  # plain BCE does not down-weight
    assert not torch.allclose(full, ablated, atol=1e-5)


def test_learned_vocabulary_input():
    model = _model(overrides=SMALL + VOCAB)
    assert model.layout.text.input_names[:2] == ("word_ids", "word_mask")
    out = encode_vocab_text(model)
    assert out["text_index"].shape == (2, model.config.index_dim)


def test_towers_and_scorer_trace_to_onnx(tmp_path):
    """Traced on one batch, checked on another with other batch, word, node and frame sizes (dynamic axes)."""
    model = _model()
    check_onnx_parity(model, _arrays(model.config, batch=3),
                      _arrays(model.config, batch=5, seed=1, words=11, frames=4, verbs=2, nouns=6), tmp_path)
