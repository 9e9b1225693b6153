"""VSE++ baseline: build, train step, scorer batching, padding invariance, formula, ONNX parity."""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from tests.training.models.zoo_checks import (VOCAB, build, check_gradients, check_item_alone_equals_item_in_batch,
                                              check_onnx_parity, check_scorer_batching, encode, encode_vocab_text,
                                              random_arrays, random_batch, scores, training_batch)
from training.models.factory import resolve_config

pytestmark = pytest.mark.usefixtures("one_thread")
_batch = partial(random_batch, words=9, frames=7)
_model = partial(build, "vsepp")


@pytest.mark.parametrize("preset", ["fast", "paper"])
def test_builds_and_scores_both_presets(preset):
    model = _model(preset)
    out = scores(model, *_batch(model.config, batch=2))
    assert out["score"].shape == (2, 2) and out["level_scores"].shape == (1, 2, 2)
    assert model.layout.levels == ("global",)


def test_forward_backward_updates_every_parameter():
    model = _model().train()
    check_gradients(model, training_batch(*_batch(model.config, batch=6)))


def test_scorer_batched_equals_one_pair_at_a_time():
    model = _model()
    check_scorer_batching(model, *encode(model, *_batch(model.config, batch=3)))


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_item_alone_equals_item_in_padded_batch(pooling):
    model = _model(overrides=(f"text_pooling={pooling}",))
    check_item_alone_equals_item_in_batch(model, *_batch(model.config, batch=4))


def test_video_vector_and_cosine_match_numpy_reference():
    model = _model()
    text, video = _batch(model.config, batch=3)
    t, v = encode(model, text, video)
    with torch.no_grad():
        fused = model.score(t, v)["score"].numpy()
    feats, mask = video["frame_feats"].numpy(), video["frame_mask"].numpy()
    weight, bias = model.video_fc.weight.detach().numpy(), model.video_fc.bias.detach().numpy()
    expected = []
    for b in range(3):
        n = int(mask[b].sum())
        vec = feats[b, :n].mean(axis=0) @ weight.T + bias
        expected.append(vec / np.linalg.norm(vec))
    expected = np.stack(expected)
    np.testing.assert_allclose(v["video_global"].numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(v["video_index"].numpy(), expected, atol=1e-5)
    text_vec = t["text_global"].numpy()
    np.testing.assert_allclose(np.linalg.norm(text_vec, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(fused, text_vec @ expected.T, atol=1e-5)


def test_text_pooling_switch_changes_scores():
    text, video = _batch(resolve_config("vsepp", "fast"))
    last, mean = (scores(_model(overrides=(f"text_pooling={pooling}",)), text, video)["score"]
                  for pooling in ("last", "mean"))
    assert not torch.allclose(last, mean, atol=1e-3)


def test_learned_vocabulary_input():
    model = _model(overrides=VOCAB)
    assert model.layout.text.input_names == ("word_ids", "word_mask")
    out = encode_vocab_text(model)
    assert out["text_index"].shape == (2, model.config.embed_dim)


def test_towers_and_scorer_trace_to_onnx(tmp_path):
    """Traced on one batch, checked on another with other batch, word and frame sizes (dynamic axes)."""
    model = _model()
    check_onnx_parity(model, random_arrays(model.config, batch=3, words=9, frames=7, seed=0),
                      random_arrays(model.config, batch=5, words=11, frames=4, seed=1), tmp_path)
