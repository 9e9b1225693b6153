"""HANet: build, train step and loss, scorer batching, padding invariance, top-k MIL, SeMe selection, Jaccard,
fusion, alignment-level ablations, ONNX."""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from common.errors import ConfigError
from tests.training.models.zoo_checks import (build, check_gradients, check_item_alone_equals_item_in_batch,
                                              check_onnx_parity, check_scorer_batching, encode, random_arrays,
                                              random_batch, scores)
from training.models.common.matching import jaccard_matrix
from training.models.factory import resolve_config
from training.models.hanet.model import descending_ranks, topk_mil_pool

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = ("embed_dim=32", "concepts.num_verbs=12", "concepts.num_nouns=16", "local_actions=3", "local_entities=4",
         "se_reduction=4")
SIZES = {"words": 9, "frames": 11, "verbs": 3, "nouns": 4}
_arrays = partial(random_arrays, **SIZES)
_batch = partial(random_batch, **SIZES)


def _model(preset="fast", overrides=SMALL):
    model = build("hanet", preset, overrides)
    with torch.no_grad():  # non-trivial BatchNorm running statistics, as after training
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model


def _labels(config, batch, seed=0):
    rng = np.random.default_rng(seed)
    labels = {"verb_labels": torch.from_numpy((rng.random((batch, config.concepts.num_verbs)) < 0.2).astype(np.float32)),
            "noun_labels": torch.from_numpy((rng.random((batch, config.concepts.num_nouns)) < 0.2).astype(np.float32)),
            "video_ids": torch.arange(batch)}
    labels["verb_video_labels"], labels["noun_video_labels"] = labels["verb_labels"], labels["noun_labels"]
    return labels


@pytest.mark.parametrize("preset", ["fast", "paper"])
def test_builds_and_scores_both_presets(preset):
    # The presets size their concept heads from data ("auto"); built without data, a model takes sizes.
    model = _model(preset, overrides=("concepts.num_verbs=40", "concepts.num_nouns=50"))
    text, video = _batch(model.config, batch=2)
    out = scores(model, text, video)
    assert out["score"].shape == (2, 2) and out["level_scores"].shape == (7, 2, 2)
    assert model.layout.levels == ("individual_action", "individual_entity", "local_action", "local_entity", "global",
                                   "concept_action", "concept_entity")
    assert torch.isfinite(out["score"]).all()


def test_forward_backward_updates_every_parameter():
    model = _model().train()
    text, video = _batch(model.config, batch=6)
    check_gradients(model, {**text, **video, **_labels(model.config, 6)})


def _numpy_hinge(scores, margin=0.2):
    pos = np.diag(scores)
    cost_t2v = np.clip(margin + scores - pos[:, None], 0, None)
    cost_v2t = np.clip(margin + scores - pos[None, :], 0, None)
    np.fill_diagonal(cost_t2v, 0)
    np.fill_diagonal(cost_v2t, 0)
    return (cost_t2v.max(1) + cost_v2t.max(0)).mean()


def _numpy_bce(p, y):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()


def test_loss_combination_matches_numpy():
    model = _model()
    text, video = _batch(model.config, batch=5)
    batch = {**text, **video, **_labels(model.config, 5)}
    with torch.no_grad():
        t, v = model.encode_text(model.text_inputs(batch)), model.encode_video(model.video_inputs(batch))
        out = model.loss(t, v, batch)
        levels = model.score(t, v)["level_scores"].numpy().astype(np.float64)
    y_v, y_n = batch["verb_labels"].numpy(), batch["noun_labels"].numpy()
    bce_video = _numpy_bce(v["video_verb_concepts"].numpy(), y_v) + _numpy_bce(v["video_noun_concepts"].numpy(), y_n)
    bce_text = _numpy_bce(t["text_verb_concepts"].numpy(), y_v) + _numpy_bce(t["text_noun_concepts"].numpy(), y_n)
    expected = _numpy_hinge(levels[:5].mean(0)) + 0.1 * _numpy_hinge(levels[5:].mean(0)) + 0.01 * (bce_video + bce_text)
    assert out["loss"].item() == pytest.approx(expected, abs=1e-5)
    assert out["bce_video"].item() == pytest.approx(bce_video, abs=1e-5)


def test_loss_rejects_labels_of_the_wrong_size():
    model = _model()
    text, video = _batch(model.config, batch=3)
    batch = {**text, **video, **_labels(model.config, 3)}
    batch["noun_labels"] = batch["noun_labels"][:, :5]
    with torch.no_grad(), pytest.raises(ConfigError, match="noun_labels"):
        model.loss(model.encode_text(text), model.encode_video(video), batch)


def test_scorer_batched_equals_one_pair_at_a_time():
    model = _model()
    check_scorer_batching(model, *encode(model, *_batch(model.config, batch=3)))


def test_item_alone_equals_item_in_padded_batch():
    model = _model()
    check_item_alone_equals_item_in_batch(model, *_batch(model.config, batch=4))


def test_descending_ranks_literal():
    scores = torch.tensor([[[0.3], [0.9], [0.1], [0.5], [0.99]]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]])   # the padded 0.99 ranks last
    assert descending_ranks(scores, mask)[0, :, 0].tolist() == [2, 0, 3, 1, 4]


def test_topk_mil_pool_literal():
    # 3 valid frames: k = ceil(3 / 8) = 1 -> the max; the padded frames (0.95, 0.97) are ignored.
    probs = torch.tensor([[0.2, 0.6, 0.4, 0.95, 0.97]]).unsqueeze(-1)
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0]])
    assert topk_mil_pool(probs, mask).item() == pytest.approx(0.6)
    # 9 valid frames: k = ceil(9 / 8) = 2 -> mean of the two largest (0.9, 0.8); 17 valid: k = 3.
    nine = torch.tensor([[0.1, 0.9, 0.3, 0.2, 0.8, 0.4, 0.5, 0.0, 0.7]]).unsqueeze(-1)
    assert topk_mil_pool(nine, torch.ones(1, 9)).item() == pytest.approx(0.85)
    seventeen = torch.linspace(0, 1, 17).view(1, 17, 1)
    assert topk_mil_pool(seventeen, torch.ones(1, 17)).item() == pytest.approx((1 + 15 / 16 + 14 / 16) / 3)
    # batched: each item its own k, one column per concept
    both = torch.zeros(2, 9, 2)
    both[0, :3, 0], both[1] = torch.tensor([0.2, 0.6, 0.4]), torch.cat([nine[0], nine[0] / 2], dim=1)
    got = topk_mil_pool(both, torch.tensor([[1.0] * 3 + [0.0] * 6, [1.0] * 9]))
    np.testing.assert_allclose(got.numpy(), [[0.6, 0.0], [0.85, 0.425]], atol=1e-6)


def test_jaccard_literal_and_numpy():
    a, b = torch.tensor([[0.2, 0.5]]), torch.tensor([[0.4, 0.1], [0.2, 0.5]])
    np.testing.assert_allclose(jaccard_matrix(a, b).numpy(), [[(0.2 + 0.1) / (0.4 + 0.5), 1.0]], atol=1e-6)
    rng = np.random.default_rng(0)
    x, y = rng.random((3, 7)).astype(np.float32), rng.random((4, 7)).astype(np.float32)
    expected = np.array([[np.minimum(x[i], y[j]).sum() / (np.maximum(x[i], y[j]).sum() + 1e-8) for j in range(4)]
                         for i in range(3)])
    np.testing.assert_allclose(jaccard_matrix(torch.from_numpy(x), torch.from_numpy(y)).numpy(), expected, atol=1e-6)
    assert jaccard_matrix(torch.zeros(1, 3), torch.zeros(1, 3)).item() == 0.0  # the epsilon keeps it finite


def test_seme_local_features_match_numpy_selection():
    """Local action = mean of the SE features over the 5-frame clip centred on the most confident valid frame
    of each of the top-N_a video concepts (cut at the video's ends); local entity = mean over the 3 most
    confident valid frames of each of the top-N_e concepts. The SE block itself is checked against NumPy too."""
    model = _model()
    _, video = _batch(model.config, batch=3)
    feats, mask = video["frame_feats"], video["frame_mask"]
    with torch.no_grad():
        out = model.encode_video(video)
        valid = mask.unsqueeze(-1)
        actions, entities = model.video_action_map(feats) * valid, model.video_entity_map(feats) * valid
        action_probs, entity_probs = model.video_verb_classifier(actions), model.video_noun_classifier(entities)
        se_actions, se_entities = model.action_se(actions, mask), model.entity_se(entities, mask)
    p = {k: x.numpy().astype(np.float64) for k, x in model.action_se.state_dict().items()}
    for b in range(3):
        n = int(mask[b].sum())
        y = actions[b, :n].numpy() @ p["project.weight"].T + p["project.bias"]
        hidden = np.maximum(y.mean(0) @ p["excite.0.weight"].T + p["excite.0.bias"], 0)
        gate = 1 / (1 + np.exp(-(hidden @ p["excite.2.weight"].T + p["excite.2.bias"])))
        np.testing.assert_allclose(se_actions[b, :n].numpy(), y * gate, atol=1e-5)

        a_probs, e_probs = action_probs[b, :n].numpy(), entity_probs[b, :n].numpy()
        top_a = np.argsort(-out["video_verb_concepts"][b].numpy())[:3]
        for slot, concept in enumerate(top_a):
            centre = int(np.argmax(a_probs[:, concept]))
            clip = range(max(0, centre - 2), min(n, centre + 3))
            expected = se_actions[b, list(clip)].numpy().mean(0)
            np.testing.assert_allclose(out["video_local_actions"][b, slot].numpy(), expected, atol=1e-5)
        top_e = np.argsort(-out["video_noun_concepts"][b].numpy())[:4]
        for slot, concept in enumerate(top_e):
            frames = np.argsort(-e_probs[:, concept])[:3]
            expected = se_entities[b, frames].numpy().mean(0)
            np.testing.assert_allclose(out["video_local_entities"][b, slot].numpy(), expected, atol=1e-5)


def test_video_concepts_are_top_k_mil_of_frame_classifiers():
    model = _model()
    _, video = _batch(model.config, batch=3)
    with torch.no_grad():
        out = model.encode_video(video)
        valid = video["frame_mask"].unsqueeze(-1)
        actions = model.video_action_map(video["frame_feats"]) * valid
    conv, bn = model.video_verb_classifier.conv, model.video_verb_classifier.norm
    w = conv.weight.detach().numpy()                                                # [K, D, 5], no bias
    scale = bn.weight.detach().numpy() / np.sqrt(bn.running_var.numpy() + bn.eps)
    for b in range(3):
        n = int(video["frame_mask"][b].sum())
        x = np.pad(actions[b, :n].numpy(), ((2, 2), (0, 0)))                         # zero padding of the k=5 conv
        logits = np.stack([np.einsum("kdj,jd->k", w, x[t:t + 5]) for t in range(n)])
        probs = 1 / (1 + np.exp(-((logits - bn.running_mean.numpy()) * scale + bn.bias.detach().numpy())))
        k = int(np.ceil(n / 8))
        expected = -np.sort(-probs, axis=0)[:k].mean(0)
        np.testing.assert_allclose(out["video_verb_concepts"][b].numpy(), expected, atol=1e-5)


def test_fusion_is_mean_of_alignment_and_mean_of_concept_scores():
    model = _model()
    t, v = encode(model, *_batch(model.config, batch=3))
    with torch.no_grad():
        out = model.score(t, v)
    levels = out["level_scores"].numpy()
    np.testing.assert_allclose(out["score"].numpy(), (levels[:5].mean(0) + levels[5:].mean(0)) / 2, atol=1e-6)
    np.testing.assert_allclose(levels[4], t["text_index"].numpy() @ v["video_index"].numpy().T, atol=1e-5)
    np.testing.assert_allclose(levels[5], jaccard_matrix(t["text_verb_concepts"], v["video_verb_concepts"]).numpy())


@pytest.mark.parametrize("switch, levels", [
    ("individual_alignment=false", ("local_action", "local_entity", "global")),
    ("local_alignment=false", ("individual_action", "individual_entity", "global")),
    ("global_alignment=false", ("individual_action", "individual_entity", "local_action", "local_entity")),
])
def test_each_alignment_switch_changes_levels_and_scores(switch, levels):
    full = _model()
    ablated = _model(overrides=SMALL + (switch,))
    assert ablated.layout.levels == levels + ("concept_action", "concept_entity")
    text, video = _batch(full.config)
    full_out, ablated_out = scores(full, text, video), scores(ablated, text, video)
    assert not torch.allclose(full_out["score"], ablated_out["score"], atol=1e-4)
    kept = [full.layout.levels.index(name) for name in ablated.layout.levels]
    torch.testing.assert_close(ablated_out["level_scores"], full_out["level_scores"][kept])


def test_no_alignment_level_is_a_config_error():
    with pytest.raises(ConfigError, match="at least one"):
        resolve_config("hanet", "fast", ("individual_alignment=false", "local_alignment=false",
                                         "global_alignment=false"))


def test_towers_and_scorer_trace_to_onnx(tmp_path):
    """Traced on one batch, checked on another with other batch, word, node and frame sizes (dynamic axes;
    the check batch has 10 frames, so the MIL k is 2 for some videos and 1 for others)."""
    model = _model()
    check_onnx_parity(model, _arrays(model.config, batch=3, frames=7),
                      _arrays(model.config, batch=5, seed=1, words=11, frames=10), tmp_path)


@pytest.mark.parametrize("name", ["hanet", "mcsan"])
def test_auto_concept_heads_need_data_but_the_layout_builds(name):
    """Presets say ``auto``: the torch-free layout still builds (a named concept dimension), and a model built
    without data is refused with the override that gives it sizes."""
    config = resolve_config(name, "fast")
    assert config.concepts.is_auto("verbs") and config.concepts.is_auto("nouns")
    layout = config.layout()
    if name == "hanet":
        spec = {s.name: s for s in layout.video.outputs}["video_verb_concepts"]
        assert spec.shape == ("batch", "verb_concepts")
    with pytest.raises(ConfigError, match=r"concepts.num_\w+ is 'auto'.*--set concepts"):
        build(name, "fast", ())


def test_concept_bce_ignores_concepts_only_other_captions_mention():
    """The reference's concept loss: a concept of the video's other captions (in ``*_video_labels`` but not the
    caption's own labels) is left out of the BCE; ``concept_targets: caption`` counts it as a negative."""
    model = _model()
    text, video = _batch(model.config, batch=4)
    batch = {**text, **video, **_labels(model.config, 4)}
    gen = torch.Generator().manual_seed(1)
    extra = {f"{k}_video_labels": (batch[f"{k}_labels"] + (torch.rand(batch[f"{k}_labels"].shape, generator=gen) < 0.3)
                                   .float()).clamp(max=1) for k in ("verb", "noun")}
    with torch.no_grad():
        ignoring, own_only = model(batch | extra), model(batch)
        t = model.encode_text(model.text_inputs(batch))
    expected = 0.0
    for kind in ("verb", "noun"):
        p = t[f"text_{kind}_concepts"].clamp(1e-7, 1 - 1e-7).double().numpy()
        y = batch[f"{kind}_labels"].numpy()
        keep = 1 - (extra[f"{kind}_video_labels"].numpy() - y)
        assert keep.min() == 0
        expected += (keep * -(y * np.log(p) + (1 - y) * np.log(1 - p))).sum() / keep.sum()
    assert ignoring["bce_text"].item() == pytest.approx(expected, rel=1e-5)
    assert ignoring["bce_text"].item() != pytest.approx(own_only["bce_text"].item(), rel=1e-3)
    caption_model = _model(overrides=SMALL + ("concept_targets=caption",))
    caption_model.load_state_dict(model.state_dict())
    with torch.no_grad():
        counted = caption_model(batch | extra)
    assert counted["bce_text"].item() == pytest.approx(own_only["bce_text"].item(), rel=1e-6)
