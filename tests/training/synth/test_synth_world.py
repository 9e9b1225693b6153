"""SynthVTR world, captions, perturbations and features: the honesty properties, checked directly."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from training.synth.captions import CaptionPlan, render, sample_captions
from training.synth.config import SynthConfig
from training.synth.features import Renderer
from training.synth.perturb import (hard_negatives, incomplete_event, replace_action, replace_person,
                                    replace_scene, switch_roles)
from training.synth.world import VideoPlan, World, switched

WORLD = World(seed=0, heldout_fraction=0.1)


def _videos(n: int, seed: int = 0) -> list[VideoPlan]:
    rng = np.random.default_rng(seed)
    return [WORLD.sample_plan(rng, int(rng.integers(1, 4)), unseen=bool(i % 4 == 0)) for i in range(n)]


def test_a_triple_and_its_role_switch_are_equally_likely_and_held_out_together():
    for t in WORLD.all_triples:
        if WORLD.swappable(t):
            assert WORLD.weights[t] == WORLD.weights[switched(t)]
            assert (t in WORLD.heldout) == (switched(t) in WORLD.heldout)
    assert WORLD.heldout and all(t[2] is not None for t in WORLD.heldout)


def test_every_action_and_entity_role_stays_in_training_triples():
    seen = WORLD.seen_triples
    for t in WORLD.heldout:
        assert any(s[0] == t[0] for s in seen)
        assert any(s[1] == t[1] for s in seen) and any(s[2] == t[2] for s in seen)


def test_unseen_plans_hold_exactly_one_heldout_triple_and_seen_plans_none():
    rng = np.random.default_rng(1)
    for _ in range(200):
        seen = WORLD.sample_plan(rng, 3, unseen=False)
        unseen = WORLD.sample_plan(rng, 3, unseen=True)
        assert not set(seen.events) & WORLD.heldout
        assert len(set(unseen.events) & WORLD.heldout) == 1


def test_captions_paraphrase_with_passives_partial_descriptions_and_scene_positions():
    plans = [p for v in _videos(60) for p in sample_captions(WORLD, v, np.random.default_rng(2), 5)]
    sentences = [render(WORLD, p).sentence for p in plans]
    assert any(" by a " in s or " by the " in s for s in sentences)                        # passive voice
    assert any(s.startswith(("in ", "on ", "at ")) for s in sentences)                     # scene first
    assert any(p.scene is None for p in plans)                                             # no scene phrase
    video = next(v for v in _videos(60) if len(v.events) == 3)
    caps = sample_captions(WORLD, video, np.random.default_rng(3), 12)
    assert len(caps[0].clauses) == 3 and caps[0].scene == video.scene                      # the full one
    assert any(len(c.clauses) < 3 for c in caps[1:])                                       # partial ones


def _events(plan: CaptionPlan) -> list:
    return [c.event for c in plan.clauses]


@pytest.mark.parametrize("seed", range(3))
def test_each_perturbation_changes_the_positive_in_its_stated_way(seed):
    rng = np.random.default_rng(seed)
    for video in _videos(80, seed):
        positive = sample_captions(WORLD, video, rng, 1)[0]
        before = _events(positive)
        sw = switch_roles(WORLD, video, positive, rng)
        if any(WORLD.swappable(e) for e in before):
            diff = [(a, b) for a, b in zip(before, _events(sw)) if a != b]
            assert len(diff) == 1 and diff[0][1] == switched(diff[0][0]) and WORLD.is_valid(diff[0][1])
        else:
            assert sw is None
        ra = replace_action(WORLD, video, positive, rng)
        diff = [(a, b) for a, b in zip(before, _events(ra)) if a != b]
        assert len(diff) == 1 and diff[0][0][1:] == diff[0][1][1:] and diff[0][1] not in video.events
        rp = replace_person(WORLD, video, positive, rng)
        diff = [(a, b) for a, b in zip(before, _events(rp)) if a != b]
        assert len(diff) == 1 and diff[0][0][0] == diff[0][1][0]
        changed = {x for x in diff[0][1][1:] if x is not None} - {x for x in diff[0][0][1:] if x is not None}
        assert len(changed) == 1 and not changed & set(video.cast)
        rs = replace_scene(WORLD, video, positive, rng)
        assert rs.scene != video.scene and _events(rs) == before
        inc = incomplete_event(WORLD, video, positive, rng)
        if len(before) > 1:
            assert 1 <= len(inc.clauses) < len(before) and set(_events(inc)) < set(before)
        elif before[0][2] is not None:
            assert _events(inc) == [(before[0][0], before[0][1], None)]
        else:
            assert inc.scene is None and _events(inc) == before
        negs = hard_negatives(WORLD, video, positive, rng)
        sentence = render(WORLD, positive).sentence
        assert all(render(WORLD, p).sentence != sentence for p in negs.values())


def _mean_regions(events, noise: float = 0.0) -> np.ndarray:
    config = SynthConfig(noise=noise, miss_rate=0.0, frame_dim=32, region_dim=32)
    renderer = Renderer(WORLD, config)
    video = renderer.render(VideoPlan("park", events), np.random.default_rng(7))
    return video.regions.mean(axis=(0, 1)), video.frames.mean(axis=0)


def test_switching_roles_changes_pooled_region_and_frame_features():
    """Same entities, same action, same randomness: only who does what differs. Pooled features must differ
    (the pitfall: a sum of entity prototypes would make them identical), by more than a change of noise."""
    r1, f1 = _mean_regions((("chase", "dog", "cat"),))
    r2, f2 = _mean_regions((("chase", "cat", "dog"),))
    r1_noisy, f1_noisy = _mean_regions((("chase", "dog", "cat"),), noise=0.15)
    assert np.linalg.norm(r1 - r2) > 3 * np.linalg.norm(r1 - r1_noisy)
    assert np.linalg.norm(f1 - f2) > 3 * np.linalg.norm(f1 - f1_noisy)


def test_regions_are_padded_to_a_fixed_count():
    config = SynthConfig(noise=0.0, frame_dim=16, region_dim=16, regions_per_frame=7, distractors=3)
    video = Renderer(WORLD, config).render(VideoPlan("beach", (("run", "dog", None),)), np.random.default_rng(0))
    assert video.regions.shape[1:] == (7, 16) and video.frames.shape == (video.regions.shape[0], 16)
    assert video.segments == ((0, video.regions.shape[0]),)
    assert np.isfinite(video.regions).all() and np.abs(video.regions).max() <= 1.0  # tanh, no noise


def test_a_replaced_synonym_index_wraps_around_the_new_actions_verbs():
    video = VideoPlan("gym", (("chase", "dog", "cat"),))
    plan = sample_captions(WORLD, video, np.random.default_rng(0), 1)[0]
    plan = dataclasses.replace(plan, clauses=(dataclasses.replace(plan.clauses[0], verb=1),))
    other = plan.with_events((("follow", "dog", "cat"),))  # "follow" has one verb
    assert "follow" in render(WORLD, other).sentence
