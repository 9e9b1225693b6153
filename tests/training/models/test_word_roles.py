"""``word_roles`` (issue 31): HGR's role embeddings on the words of ViSERN's and VSR-Net's text towers.

Off by default, where the towers are the papers' (same layout, same outputs); on, a caption and its role-switched
twin ("a dog chases a man" / "a man chases a dog") no longer meet at the same text vector.
"""
from __future__ import annotations

import pytest
import torch

from tests.training.models.zoo_checks import (VOCAB, build, check_gradients, check_item_alone_equals_item_in_batch,
                                              check_onnx_parity, random_arrays, random_batch, training_batch)
from training.models.config import WORD_ROLE_INPUTS
from training.models.factory import resolve_config
from training.text.roles import ROLE_INDEX

pytestmark = pytest.mark.usefixtures("one_thread")

MODELS = ("visern", "vsrnet")
ON = ("word_roles=true",)
A, DOG, CHASES, MAN = 1, 2, 3, 4


def _caption(ids, agent, patient):
    """One caption of vocabulary ids: a verb at word 2 and two noun phrases (words ``agent`` and ``patient``) with
    roles ARG0 and ARG1; the role graph as the parser gives it."""
    words = len(ids)
    verb_spans = torch.zeros(1, 1, words)
    verb_spans[0, 0, 2] = 1
    noun_spans = torch.zeros(1, 2, words)
    noun_spans[0, 0, agent] = noun_spans[0, 1, patient] = 1
    return {"word_ids": torch.tensor([ids]), "word_mask": torch.ones(1, words),
            "verb_spans": verb_spans, "verb_mask": torch.ones(1, 1), "noun_spans": noun_spans,
            "noun_mask": torch.ones(1, 2), "noun_roles": torch.tensor([[ROLE_INDEX["ARG0"], ROLE_INDEX["ARG1"]]]),
            "noun_verb_edges": torch.ones(1, 1, 2)}


def _text_embed(model, text):
    with torch.no_grad():
        return model.encode_text(model.text_inputs(text))["text_embed"][0]


def _twins(model):
    """The text embeddings of "a dog chases a man" and of its role-switched twin "a man chases a dog"."""
    caption = _caption([A, DOG, CHASES, A, MAN], agent=1, patient=4)
    twin = _caption([A, MAN, CHASES, A, DOG], agent=1, patient=4)
    return _text_embed(model, caption), _text_embed(model, twin)


@pytest.mark.parametrize("name", MODELS)
def test_off_by_default_keeps_the_papers_tower(name):
    config = resolve_config(name, "fast")
    assert not config.word_roles
    assert not set(WORD_ROLE_INPUTS) & set(config.layout().text.input_names)
    assert set(WORD_ROLE_INPUTS) <= set(resolve_config(name, "fast", overrides=ON).layout().text.input_names)
    assert build(name).word_roles is None


@pytest.mark.parametrize("name", MODELS)
def test_role_embedding_of_ones_reproduces_the_baseline_exactly(name):
    """The formula is a multiplication: with every role embedding 1 the option's tower is the baseline's, bit for
    bit (same weights otherwise)."""
    base, roles = build(name), build(name, overrides=ON)
    missing, unexpected = roles.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and missing == ["word_roles.role_embedding.weight"]
    with torch.no_grad():
        roles.word_roles.role_embedding.weight.fill_(1.0)
    text, _ = random_batch(base.config)
    with torch.no_grad():
        want = base.encode_text(base.text_inputs(text))
        got = roles.encode_text(roles.text_inputs(text))
    assert want.keys() == got.keys()
    for key in want:
        assert torch.equal(want[key], got[key]), key


@pytest.mark.parametrize("name", MODELS)
def test_word_roles_tell_a_caption_from_its_role_switched_twin(name):
    base = build(name, overrides=VOCAB)
    roles = build(name, overrides=VOCAB + ON)
    caption, twin = _twins(roles)
    assert torch.cosine_similarity(caption, twin, dim=0) < 0.99
    if name == "vsrnet":
        # The paper's text tower is a pointwise map and attention pooling: blind to word order, so the twins are
        # one vector without the option.
        caption, twin = _twins(base)
        assert torch.allclose(caption, twin, atol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_word_roles_keep_the_zoo_contracts(name):
    model = build(name, overrides=ON)
    text, video = random_batch(model.config)
    check_item_alone_equals_item_in_batch(model, text, video)
    check_gradients(model.train(), training_batch(text, video))


@pytest.mark.parametrize("name", MODELS)
def test_word_roles_trace_to_onnx(tmp_path, name):
    """The role inputs join the text tower's exported graph with dynamic verb and noun counts."""
    model = build(name, overrides=ON)
    sizes = {"frames": 6, "regions": 5}
    check_onnx_parity(model, random_arrays(model.config, batch=3, words=9, verbs=2, nouns=3, seed=0, **sizes),
                      random_arrays(model.config, batch=5, words=11, verbs=3, nouns=4, seed=1, **sizes), tmp_path)
