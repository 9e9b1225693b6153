"""Role-switched twins from the parser's role graph: swapped agent/patient spans, nothing else changes."""
from __future__ import annotations

import pytest

from training.text.parser import parse_captions
from training.text.switch import role_events, role_pairs, switch_roles


@pytest.mark.parametrize("caption, twin", [
    ("a dog chases a cat in the park", "a cat chases a dog in the park"),
    ("a small girl is being pushed by the boy and then the cat jumps",
     "a boy is being pushed by the small girl and then the cat jumps"),
    ("a man runs", None),                       # no patient
])
def test_agent_and_patient_spans_swap(caption, twin):
    (parsed,) = parse_captions([caption])
    assert switch_roles(parsed.tokens, parsed.graph) == twin


def test_the_twin_parses_with_the_roles_switched():
    (parsed,) = parse_captions(["a dog chases a cat"])
    (twin,) = parse_captions([switch_roles(parsed.tokens, parsed.graph)])
    assert twin.triplets == (("cat", "chase", "dog"),) and parsed.triplets == (("dog", "chase", "cat"),)


def test_role_events_are_the_verbs_with_agent_and_patient_and_move_with_the_switch():
    (parsed,) = parse_captions(["a small girl is being pushed by the boy"])
    assert role_events(parsed.tokens, parsed.graph) == {("pushed", "boy", "small girl")}
    (twin,) = parse_captions([switch_roles(parsed.tokens, parsed.graph)])
    assert role_events(twin.tokens, twin.graph) == {("pushed", "small girl", "boy")}
    (intransitive,) = parse_captions(["a man runs"])
    assert role_events(intransitive.tokens, intransitive.graph) == frozenset()


def test_role_pairs_part_each_event_into_its_verb_agent_and_verb_patient_pairs():
    events = frozenset({("chases", "dog", "cat"), ("chases", "boy", "ball")})
    assert role_pairs(events) == {("chases", "ARG0", "dog"), ("chases", "ARG1", "cat"),
                                  ("chases", "ARG0", "boy"), ("chases", "ARG1", "ball")}
    new = frozenset({("chases", "dog", "ball")})        # a new event of seen pairs
    assert not new <= events and role_pairs(new) <= role_pairs(events)
    switched = frozenset({("chases", "cat", "dog")})    # a cat never chases in these events
    assert not role_pairs(switched) <= role_pairs(events)


def test_the_module_does_not_use_synthvtrs_perturbation_code():
    import training.text.switch as module

    source = open(module.__file__).read()
    assert "training.synth" not in source and "perturb import" not in source
