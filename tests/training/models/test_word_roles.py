"""``word_roles`` (issue 31): HGR's role embeddings on the words of the text towers of HGR, ViSERN, VSR-Net, HANet
and MCSAN.

Off by default, where the towers are the papers' (same layout, same outputs); on, a caption and its role-switched
twin ("a dog chases a man" / "a man chases a dog") no longer meet at the same text vector. HANet and MCSAN already
read the role graph, so the option adds no input to their layouts; nor to HGR's, whose graph they come from.
"""
from __future__ import annotations

import pytest
import torch

from common.layout import TEXT_INDEX
from tests.training.models.zoo_checks import (VOCAB, build, check_gradients, check_item_alone_equals_item_in_batch,
                                              check_onnx_parity, random_arrays, random_batch, training_batch)
from training.models.common.graph import WordRoles
from training.models.config import WORD_ROLE_INPUTS
from training.models.factory import resolve_config
from training.text.roles import ROLE_INDEX

pytestmark = pytest.mark.usefixtures("one_thread")

MODELS = ("hgr", "visern", "vsrnet", "hanet", "mcsan")
ON = ("word_roles=true",)
# Small sizes; HANet's and MCSAN's presets size their concept heads from data, so the tests give the sizes.
SMALL = {
    "hgr": (),
    "visern": (),
    "vsrnet": (),
    "hanet": ("embed_dim=32", "concepts.num_verbs=12", "concepts.num_nouns=16", "local_actions=3",
              "local_entities=4", "se_reduction=4"),
    "mcsan": ("concepts.num_nouns=12", "concepts.num_verbs=10", "concepts.num_triplets=8"),
}
CONCEPT_LABELS = {"hanet": ("verbs", "nouns"), "mcsan": ("verbs", "nouns", "triplets")}
# The text outputs that read the words but not the roles of the role graph (HGR's and HANet's event, which the graph's
# root keeps from before the graph, and HANet's word states; MCSAN's relationship level); ViSERN and VSR-Net read no
# roles at all.
ROLE_BLIND_OUTPUTS = {
    "hgr": ("text_event", TEXT_INDEX),
    "visern": ("text_embed", TEXT_INDEX),
    "vsrnet": (TEXT_INDEX,),
    "hanet": ("text_global", "text_verb_words", "text_noun_words", "text_verb_concepts", "text_noun_concepts",
              TEXT_INDEX),
    "mcsan": ("text_relationship",),
}


def _build(name, overrides=()):
    return build(name, overrides=SMALL[name] + tuple(overrides))


def _word_roles(model):
    """The model's ``WordRoles`` modules by name (one when the option is on, none when off)."""
    return {name: module for name, module in model.named_modules() if isinstance(module, WordRoles)}


def _labels(name, config, batch):
    """Random concept labels for the models with concept heads (the caption's and the video's alike)."""
    gen = torch.Generator().manual_seed(1)
    labels = {}
    for kind in CONCEPT_LABELS.get(name, ()):
        key = f"{kind[:-1]}_labels"
        labels[key] = (torch.rand(batch, config.concepts.size(kind), generator=gen) < 0.3).float()
        labels[key.replace("_labels", "_video_labels")] = labels[key]
    return labels
A, DOG, CHASES, MAN = 1, 2, 3, 4


def _caption(ids, agent, patient, roles=("ARG0", "ARG1"), sent_dim=384):
    """One caption of vocabulary ids: a verb at word 2 and two noun phrases (words ``agent`` and ``patient``) with
    ``roles`` (ARG0 and ARG1); the role graph as the parser gives it. The sentence embedding (MCSAN's global level)
    is zero: the tests look at the words."""
    words = len(ids)
    verb_spans = torch.zeros(1, 1, words)
    verb_spans[0, 0, 2] = 1
    noun_spans = torch.zeros(1, 2, words)
    noun_spans[0, 0, agent] = noun_spans[0, 1, patient] = 1
    return {"word_ids": torch.tensor([ids]), "word_mask": torch.ones(1, words),
            "verb_spans": verb_spans, "verb_mask": torch.ones(1, 1), "noun_spans": noun_spans,
            "noun_mask": torch.ones(1, 2), "noun_roles": torch.tensor([[ROLE_INDEX[role] for role in roles]]),
            "noun_verb_edges": torch.ones(1, 1, 2), "sent_feat": torch.zeros(1, sent_dim)}


def _text_outputs(model, text):
    with torch.no_grad():
        return model.encode_text(model.text_inputs(text))


def _text_embed(model, text):
    return _text_outputs(model, text)["text_embed"][0]


def _twins(model):
    """The text embeddings of "a dog chases a man" and of its role-switched twin "a man chases a dog"."""
    caption = _caption([A, DOG, CHASES, A, MAN], agent=1, patient=4)
    twin = _caption([A, MAN, CHASES, A, DOG], agent=1, patient=4)
    return _text_embed(model, caption), _text_embed(model, twin)


@pytest.mark.parametrize("name", MODELS)
def test_off_by_default_keeps_the_papers_tower(name):
    for preset in ("fast", "paper"):
        assert not resolve_config(name, preset).word_roles
    off = resolve_config(name, "fast").layout().text.input_names
    on = resolve_config(name, "fast", overrides=ON).layout().text.input_names
    # The option appends the role inputs the tower lacks, and lists none twice.
    assert on == off + tuple(n for n in WORD_ROLE_INPUTS if n not in off) and len(set(on)) == len(on)
    if name in ("hgr", "hanet", "mcsan"):
        assert on == off  # the role graph's inputs already hold them
    else:
        assert not set(WORD_ROLE_INPUTS) & set(off)
    assert _word_roles(_build(name)) == {}
    assert len(_word_roles(_build(name, ON))) == 1


@pytest.mark.parametrize("name", MODELS)
def test_role_embedding_of_ones_reproduces_the_baseline_exactly(name):
    """The formula is a multiplication: with every role embedding 1 the option's tower is the baseline's, bit for
    bit (same weights otherwise)."""
    base, roles = _build(name), _build(name, ON)
    (path, module), = _word_roles(roles).items()
    missing, unexpected = roles.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and missing == [f"{path}.role_embedding.weight"]
    with torch.no_grad():
        module.role_embedding.weight.fill_(1.0)
    text, _ = random_batch(base.config)
    with torch.no_grad():
        want = base.encode_text(base.text_inputs(text))
        got = roles.encode_text(roles.text_inputs(text))
    assert want.keys() == got.keys()
    for key in want:
        assert torch.equal(want[key], got[key]), key


@pytest.mark.parametrize("name", MODELS)
def test_word_roles_move_the_role_blind_outputs_only_when_on(name):
    """The caption with the twin's word-role pairs in the caption's word order ("a dog chases a man" with the dog
    as patient and the man as agent): the role information alone, apart from word order, which the BiGRUs of
    HANet and MCSAN already read. The outputs that read the words but not the graph's roles cannot tell it from
    the caption without the option, and do with it."""
    caption = _caption([A, DOG, CHASES, A, MAN], agent=1, patient=4)
    swapped = _caption([A, DOG, CHASES, A, MAN], agent=1, patient=4, roles=("ARG1", "ARG0"))
    for overrides, differ in (((), False), (ON, True)):
        model = _build(name, VOCAB + overrides)
        got, want = _text_outputs(model, caption), _text_outputs(model, swapped)
        for key in ROLE_BLIND_OUTPUTS[name]:
            assert (not torch.allclose(got[key], want[key], atol=1e-6)) == differ, (key, overrides)
        if differ:
            assert torch.cosine_similarity(got[TEXT_INDEX][0], want[TEXT_INDEX][0], dim=0) < 0.9999


@pytest.mark.parametrize("name", ("visern", "vsrnet"))
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
    model = _build(name, ON)
    text, video = random_batch(model.config)
    check_item_alone_equals_item_in_batch(model, text, video)
    batch = text["word_mask"].shape[0]
    check_gradients(model.train(), training_batch(text, video, **_labels(name, model.config, batch)))


@pytest.mark.parametrize("name", MODELS)
def test_word_roles_trace_to_onnx(tmp_path, name):
    """The role inputs join the text tower's exported graph with dynamic verb and noun counts."""
    model = _build(name, ON)
    sizes = {"frames": 6, "regions": 5}
    check_onnx_parity(model, random_arrays(model.config, batch=3, words=9, verbs=2, nouns=3, seed=0, **sizes),
                      random_arrays(model.config, batch=5, words=11, verbs=3, nouns=4, seed=1, **sizes), tmp_path)
