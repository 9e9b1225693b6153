"""HGR's binary-selection hard negatives (HGR §4.5): the positive caption perturbed in one stated way.

Each perturbation edits the positive's :class:`~training.synth.captions.CaptionPlan` and re-renders it with the
same surface choices (voice, aspect, synonyms, connectors, scene position), so the negative differs from the
positive only in the stated way and is false for the video:

* ``switch_roles``: agent and patient of one event exchanged; only events whose switch is a valid event of the
  world (e.g. "a dog chases a cat"), so plausibility alone cannot reject it. Absent when the video has none.
* ``replace_action``: one event's action replaced by another that accepts the same participants and is not
  an event of the video.
* ``replace_person``: one event's agent or patient replaced by an entity that is not in the video.
* ``replace_scene``: the scene phrase names another scene.
* ``incomplete_event``: only part of the description kept: some events dropped (several events), else the
  patient dropped (one transitive event), else the scene phrase dropped. True, but less complete.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from training.synth.captions import CaptionPlan, ClausePlan, render
from training.synth.world import Event, VideoPlan, World, switched

PERTURBATIONS = ("switch_roles", "replace_action", "replace_person", "replace_scene", "incomplete_event")


def _replace_event(plan: CaptionPlan, index: int, event: Event) -> CaptionPlan:
    events = [c.event for c in plan.clauses]
    events[index] = event
    return plan.with_events(tuple(events))


def switch_roles(world: World, video: VideoPlan, plan: CaptionPlan, rng: np.random.Generator) -> CaptionPlan | None:
    cands = [k for k, c in enumerate(plan.clauses) if world.swappable(c.event)]
    if not cands:
        return None
    k = cands[int(rng.integers(len(cands)))]
    return _replace_event(plan, k, switched(plan.clauses[k].event))


def replace_action(world: World, video: VideoPlan, plan: CaptionPlan, rng: np.random.Generator) -> CaptionPlan | None:
    options = []
    for k, clause in enumerate(plan.clauses):
        _, agent, patient = clause.event
        for action in world.action_names:
            event = (action, agent, patient)
            if action != clause.event[0] and world.is_valid(event) and event not in video.events:
                options.append((k, event))
    if not options:
        return None
    k, event = options[int(rng.integers(len(options)))]
    return _replace_event(plan, k, event)


def replace_person(world: World, video: VideoPlan, plan: CaptionPlan, rng: np.random.Generator) -> CaptionPlan | None:
    cast = set(video.cast)
    options = []
    for k, clause in enumerate(plan.clauses):
        action, agent, patient = clause.event
        for entity in world.entity_names:
            if entity in cast:
                continue
            for event in ((action, entity, patient), (action, agent, entity) if patient is not None else None):
                if event is not None and world.is_valid(event):
                    options.append((k, event))
    if not options:
        return None
    k, event = options[int(rng.integers(len(options)))]
    return _replace_event(plan, k, event)


def replace_scene(world: World, video: VideoPlan, plan: CaptionPlan, rng: np.random.Generator) -> CaptionPlan | None:
    if plan.scene is None:
        return None
    others = [s for s in world.scene_names if s != video.scene]
    scene = others[int(rng.integers(len(others)))]
    phrase = min(plan.scene_phrase, len(world.scenes[scene].phrases) - 1)
    return dataclasses.replace(plan, scene=scene, scene_phrase=phrase)


def incomplete_event(world: World, video: VideoPlan, plan: CaptionPlan,
                     rng: np.random.Generator) -> CaptionPlan | None:
    n = len(plan.clauses)
    if n > 1:
        keep = sorted(rng.choice(n, size=int(rng.integers(1, n)), replace=False).tolist())
        clauses = tuple(plan.clauses[k] for k in keep)
        connectors = tuple(plan.connectors[k - 1] for k in keep[1:])
        return _with_clauses(plan, clauses, connectors)
    clause = plan.clauses[0]
    action, agent, patient = clause.event
    if patient is not None:
        dropped = dataclasses.replace(clause, event=(action, agent, None), passive=False)
        return _with_clauses(plan, (dropped,), ())
    if plan.scene is not None:
        return dataclasses.replace(plan, scene=None, scene_first=False)
    return None


def _with_clauses(plan: CaptionPlan, clauses: tuple[ClausePlan, ...], connectors: tuple[int, ...]) -> CaptionPlan:
    used = {e for c in clauses for e in c.event[1:] if e is not None}
    return dataclasses.replace(plan, clauses=clauses, connectors=connectors,
                               nouns=tuple((e, i) for e, i in plan.nouns if e in used))


_FUNCTIONS = {
    "switch_roles": switch_roles,
    "replace_action": replace_action,
    "replace_person": replace_person,
    "replace_scene": replace_scene,
    "incomplete_event": incomplete_event,
}


def hard_negatives(world: World, video: VideoPlan, positive: CaptionPlan,
                   rng: np.random.Generator) -> dict[str, CaptionPlan]:
    """Every perturbation that applies to ``positive``, keyed by name (in :data:`PERTURBATIONS` order)."""
    out = {}
    sentence = render(world, positive).sentence
    for name in PERTURBATIONS:
        plan = _FUNCTIONS[name](world, video, positive, rng)
        if plan is not None and render(world, plan).sentence != sentence:
            out[name] = plan
    return out
