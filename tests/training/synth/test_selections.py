"""The switch-roles selection sets: their sizes, that every twin exchanges one event's agent and patient and
nothing else, that the held-out phrasings are not the generator's, and that evaluation reports them."""
from __future__ import annotations

import re

import numpy as np
import pytest

from common.config import from_dict
from common.layout import LEVEL_SCORES, SCORE
from training.synth.config import SynthConfig
from training.synth.generator import assign_splits, video_plan
from training.synth.selections import HELDOUT, MANY, SELECTION_SPLITS, SelectionConfig, selection_sets
from training.synth.world import ACTIONS, ENTITIES, SCENES, World, switched

NOUNS = {noun: e.name for e in ENTITIES for noun in e.nouns}
VERB_FORMS: dict[str, set[str]] = {}
for _action in ACTIONS:
    for _verb in _action.verbs:
        for _form in (_verb.third, _verb.gerund, _verb.participle):
            VERB_FORMS.setdefault(_form, set()).add(_action.name)
SWITCHABLE_WORDS = {"a", "the", "who", "that"}   # determiners follow the mention order, pronouns the entity


@pytest.fixture(scope="module")
def default_sets():
    return selection_sets(SynthConfig())


@pytest.fixture(scope="module")
def videos(default_sets):
    """The world and the plans of the videos the sets name."""
    config = SynthConfig()
    world, split_of = World(config.seed, config.heldout_triples), assign_splits(config)
    names = {video for sets in default_sets.values() for pairs in sets.values() for video, _, _ in pairs}
    indices = [int(name.removeprefix("video")) for name in names]
    return world, {f"video{i}": video_plan(world, config, i, split_of[i]) for i in indices}


def test_every_split_has_at_least_1000_pairs_at_the_default_size(default_sets):
    for split in SELECTION_SPLITS:
        for kind in (MANY, HELDOUT):
            pairs = default_sets[split][kind]
            assert len(pairs) >= 1000, (split, kind, len(pairs))
            per_video = np.unique([video for video, _, _ in pairs], return_counts=True)[1]
            assert (per_video == SelectionConfig().pairs_per_video).all()
            assert len({(v, p) for v, p, _ in pairs}) == len(pairs)   # no true caption twice for a video


def test_the_same_config_replays_the_same_sets(default_sets):
    assert selection_sets(SynthConfig(), splits=("tst",))["tst"] == default_sets["tst"]


def test_each_twin_exchanges_the_agent_and_patient_of_one_event_of_the_video(default_sets, videos):
    world, plans = videos
    for split in SELECTION_SPLITS:
        for kind in (MANY, HELDOUT):
            for video, positive, twin in default_sets[split][kind]:
                plan = plans[video]
                pos, neg = positive.split(), twin.split()
                assert len(pos) == len(neg), (positive, twin)
                differ = [i for i, (a, b) in enumerate(zip(pos, neg)) if a != b]
                nouns = [i for i in differ if pos[i] in NOUNS]
                assert all(pos[i] in SWITCHABLE_WORDS for i in differ if i not in nouns), (positive, twin)
                # Exactly two mentions changed, and they exchanged their entities ...
                assert len(nouns) == 2, (positive, twin)
                i, j = nouns
                x, y = NOUNS[pos[i]], NOUNS[pos[j]]
                assert (NOUNS[neg[i]], NOUNS[neg[j]]) == (y, x), (positive, twin)
                # ... which are the two participants of an event of the video, named by the verb between them,
                # whose switch is a valid event that is not in the video.
                actions = {a for w in pos[i + 1:j] for a in VERB_FORMS.get(w, ())}
                events = [e for e in plan.events if e[0] in actions and {e[1], e[2]} == {x, y}]
                assert len(events) == 1 and world.swappable(events[0]), (video, positive, plan.events)
                assert switched(events[0]) not in plan.events


def skeleton(sentence: str) -> str:
    """The sentence with entity nouns, verb forms and scene phrases replaced by slots: its construction."""
    text = " " + sentence + " "
    for phrase in sorted((" ".join(p) for s in SCENES for p in s.phrases), key=len, reverse=True):
        text = text.replace(f" {phrase} ", " S ")
    return " ".join("N" if w in NOUNS else "V" if w in VERB_FORMS else w for w in text.split())


def test_heldout_phrasings_differ_from_every_generator_template(default_sets):
    generator = [s for split in default_sets.values() for _, p, t in split[MANY] for s in (p, t)]
    heldout = [s for split in default_sets.values() for _, p, t in split[HELDOUT] for s in (p, t)]
    generator_words = {w for s in generator for w in s.split()}
    assert all(set(s.split()) - generator_words for s in heldout)          # a word the generator never writes
    assert not {skeleton(s) for s in heldout} & {skeleton(s) for s in generator}
    for pattern in (r"^there is .* (who|that) ", r" by ", r"^there is ", r" while ", r" after "):
        assert any(re.search(pattern, s) for s in heldout), pattern          # every construction asked for


class ConstantRunner:
    """Scores every pair alike: a selection is then never won (ties count against the true caption)."""

    levels = ("only",)

    def encode_text(self, inputs):
        return {"n": np.zeros(len(next(iter(inputs.values()))))}

    def encode_video(self, inputs):
        return {"n": np.zeros(len(next(iter(inputs.values()))))}

    def score(self, text, video):
        shape = (len(text["n"]), len(video["n"]))
        return {SCORE: np.zeros(shape, np.float32), LEVEL_SCORES: np.zeros((1, *shape), np.float32)}


def test_evaluation_reports_the_sets_on_val_and_both_test_splits(tiny_data_config, one_thread):
    from training.engine.data import ModelNeeds, PreparedData, ensure_dataset
    from training.engine.evaluate import evaluate_split, format_result

    ensure_dataset(tiny_data_config, progress=False)
    data = PreparedData(tiny_data_config, ModelNeeds(text_kind="vocab", regions=False, concepts=None))
    tiny = from_dict(SynthConfig, tiny_data_config.synth)
    (_, heldout, _), *_ = selection_sets(tiny, splits=("val",))["val"][HELDOUT]
    assert heldout not in data.graphs          # preparing data for training pays nothing for the sets
    for split in SELECTION_SPLITS:
        result = evaluate_split(ConstantRunner(), data, split, batch_size=64)
        kinds = {MANY, HELDOUT} | ({"switch_roles", "replace_action"} if split != "val" else set())
        assert kinds <= set(result["binary_selection"]), split
        assert result["binary_selection"][MANY] == 0.0
        sizes = result["binary_selection_sizes"][HELDOUT]
        assert sizes["pairs"] == SelectionConfig().pairs_per_video * sizes["videos"] > 0
        assert f"{HELDOUT} 0.0% ({sizes['pairs']} pairs, {sizes['videos']} videos)" in format_result(result)
    assert heldout in data.graphs
