"""Role-switched twins from the parser's role graph: swapped agent/patient spans, nothing else changes."""
from __future__ import annotations

import pytest

from training.text.parser import parse_captions
from training.text.switch import switch_roles


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


def test_the_module_does_not_use_synthvtrs_perturbation_code():
    import training.text.switch as module

    source = open(module.__file__).read()
    assert "training.synth" not in source and "perturb import" not in source
