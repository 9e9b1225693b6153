"""Every model of the zoo and every ablation on a real SynthVTR batch: forward, backward, batched == pairwise."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from training.engine.data import load_prepared
from training.engine.runner import to_tensors
from training.models import create_model, list_models
from training.models.ablations import ABLATIONS

CASES = [(m, None) for m in list_models()] + [(m, a) for m in list_models() for a in ABLATIONS[m]]


@pytest.fixture(scope="module")
def batches(tiny_data_config):
    """One prepared dataset per model (each model asks for its own text input, regions and concept sizes)."""
    cache = {}

    def get(model: str):
        if model not in cache:
            data = load_prepared(tiny_data_config, model, "fast")
            cache[model] = (data, data.train_batch(data.pairs("trn")[:8]))
        return cache[model]

    return get


def test_ablation_table_names_only_known_models():
    assert set(ABLATIONS) == set(list_models())


@pytest.mark.parametrize("model_name, ablation", CASES, ids=lambda x: str(x))
def test_forward_backward_and_pairwise_scores(batches, model_name, ablation):
    data, batch = batches(model_name)
    torch.manual_seed(0)
    overrides = data.model_overrides() + list(ABLATIONS[model_name].get(ablation, ()))
    model = create_model(model_name, "fast", overrides=overrides)
    tensors = to_tensors(batch, batch.keys())
    out = model(tensors)
    assert torch.isfinite(out["loss"]) and out["loss"] > 0
    out["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)

    model.eval()
    with torch.no_grad():
        text = model.encode_text(model.text_inputs(tensors))
        video = model.encode_video(model.video_inputs(tensors))
        full = model.score(text, video)
        n = 4
        for i in range(n):
            for j in range(n):
                one_t = {k: v[i:i + 1] for k, v in text.items()}
                one_v = {k: v[j:j + 1] for k, v in video.items()}
                pair = model.score(one_t, one_v)
                np.testing.assert_allclose(pair["score"][0, 0].item(), full["score"][i, j].item(), atol=1e-5)
                np.testing.assert_allclose(pair["level_scores"][:, 0, 0].numpy(), full["level_scores"][:, i, j].numpy(),
                                           atol=1e-5)
    assert full["level_scores"].shape[0] == len(model.layout.levels)


def test_attested_twins_are_the_twins_whose_events_a_training_caption_describes(tiny_data_config):
    """data.role_switch_attested keeps exactly the twins whose every (verb, agent, patient) some training caption
    has, so none can be told from its caption by an event that no caption describes."""
    from dataclasses import replace

    from training.text.switch import role_events

    attested = load_prepared(replace(tiny_data_config, role_switch_negatives=True, role_switch_attested=True),
                             "hgr", "fast")
    every = load_prepared(replace(tiny_data_config, role_switch_negatives=True), "hgr", "fast")
    for data in (attested, every):  # the attested twins' text features first: they must not stand in for all twins'
        assert len(data.text_batch(list(data.switched.values()))["word_mask"]) == len(data.switched)
    events = lambda s: role_events(attested.parsed[s].tokens, attested.parsed[s].graph)  # noqa: E731
    described = frozenset().union(*(events(s) for caps in attested.splits["trn"].captions for s in caps))
    kept = {s: t for s, t in every.switched.items() if events(t) <= described}
    assert attested.switched == kept and 0 < len(kept) < len(every.switched)
    with pytest.raises(ValueError, match="role_switch_negatives"):
        replace(tiny_data_config, role_switch_attested=True)


def test_twins_attested_by_pairs_are_those_whose_verb_role_pairs_training_captions_have(tiny_data_config):
    """data.role_switch_attested_by=pairs keeps the twins whose every verb-agent and verb-patient pair some
    training caption has: the attested events' twins and twins that are new combinations of attested pairs."""
    from dataclasses import replace

    from training.text.switch import role_events, role_pairs

    config = replace(tiny_data_config, role_switch_negatives=True, role_switch_attested=True)
    by_pairs = load_prepared(replace(config, role_switch_attested_by="pairs"), "hgr", "fast")
    by_events = load_prepared(config, "hgr", "fast")
    every = load_prepared(replace(tiny_data_config, role_switch_negatives=True), "hgr", "fast")
    assert len(by_pairs.text_batch(list(by_pairs.switched.values()))["word_mask"]) == len(by_pairs.switched)
    pairs = lambda s: role_pairs(role_events(by_pairs.parsed[s].tokens, by_pairs.parsed[s].graph))  # noqa: E731
    described = frozenset().union(*(pairs(s) for caps in by_pairs.splits["trn"].captions for s in caps))
    assert by_pairs.switched == {s: t for s, t in every.switched.items() if pairs(t) <= described}
    assert by_events.switched.items() < by_pairs.switched.items() < every.switched.items()
    with pytest.raises(ValueError, match="role_switch_attested"):
        replace(tiny_data_config, role_switch_negatives=True, role_switch_attested_by="pairs")


@pytest.mark.parametrize("model_name", list_models())
def test_role_switched_twins_are_extra_negatives(tiny_data_config, model_name):
    """data.role_switch_negatives: training batches carry each caption's twin (parsed from its role graph), and
    the loss adds the hinge margin + s(twin, v) - s(caption, v) on the fused score."""
    from dataclasses import replace

    from common.layout import SWITCHED_INDEX

    data = load_prepared(replace(tiny_data_config, role_switch_negatives=True), model_name, "fast")
    assert data.switched and all(data.parsed[t] for t in data.switched.values())
    batch = data.train_batch(data.pairs("trn")[:8])
    assert len(batch[SWITCHED_INDEX]) > 0
    torch.manual_seed(0)
    model = create_model(model_name, "fast", overrides=data.model_overrides()).eval()
    tensors = to_tensors(batch, batch.keys())
    with torch.no_grad():
        out = model(tensors)
        plain = model({k: v for k, v in tensors.items() if not k.startswith("switched_")})
        text = model.encode_text(model.text_inputs(tensors))
        video = model.encode_video(model.video_inputs(tensors))
        twins = data.text_batch([data.switched[s] for _, s in (data.pairs("trn")[i] for i in batch[SWITCHED_INDEX])])
        twin_scores = model.score(model.encode_text(to_tensors(twins, model.layout.text.input_names)), video)["score"]
        scores = model.score(text, video)["score"]
    index = batch[SWITCHED_INDEX]
    expected = np.maximum(model.config.loss.margin + twin_scores.numpy()[np.arange(len(index)), index]
                          - np.diagonal(scores.numpy())[index], 0).mean()
    assert out["switch_rank"].item() == pytest.approx(expected, rel=1e-4, abs=1e-6)
    assert out["loss"].item() == pytest.approx(plain["loss"].item() + expected, rel=1e-4, abs=1e-6)
