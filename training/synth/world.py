"""The SynthVTR world: entity types, actions with agent/patient roles, scenes, and which events may happen.

Everything here is symbolic (no features, no sentences). An *event* is a triple ``(action, agent, patient)``
(``patient`` is ``None`` for intransitive actions); a video is a scene plus 1-3 events in temporal order.

Two properties matter for honesty (see the README next to this file):

* **Symmetric sampling.** A triple and its role switch ``(a, y, x)``, when both are valid, always have the same
  sampling weight and are held out together, so knowing *which* entities and actions occur says nothing about
  who does what to whom: only the features can.
* **Held-out triples.** A seeded fraction of the transitive triples never occurs in training videos; the
  ``tst_unseen`` split is built from videos containing at least one of them (compositional generalisation).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

PERSON, ANIMAL, OBJECT = "person", "animal", "object"
CATEGORIES = (PERSON, ANIMAL, OBJECT)


@dataclass(frozen=True)
class EntityType:
    name: str
    category: str
    nouns: tuple[str, ...]          # synonyms used in captions; the first is the canonical one


@dataclass(frozen=True)
class Verb:
    third: str                      # "chases"
    gerund: str                     # "chasing"
    participle: str                 # "chased"


@dataclass(frozen=True)
class Action:
    name: str
    verbs: tuple[Verb, ...]         # synonyms
    agents: tuple[str, ...]         # categories or entity names allowed as agent
    patients: tuple[str, ...] = ()  # empty: intransitive

    @property
    def transitive(self) -> bool:
        return bool(self.patients)


@dataclass(frozen=True)
class Scene:
    name: str
    phrases: tuple[tuple[str, ...], ...]  # e.g. ("in", "the", "kitchen"); the last word is the phrase's head


def _v(third: str, gerund: str, participle: str) -> Verb:
    return Verb(third, gerund, participle)


ENTITIES: tuple[EntityType, ...] = (
    EntityType("man", PERSON, ("man", "guy")),
    EntityType("woman", PERSON, ("woman", "lady")),
    EntityType("boy", PERSON, ("boy", "kid")),
    EntityType("girl", PERSON, ("girl",)),
    EntityType("chef", PERSON, ("chef", "cook")),
    EntityType("dog", ANIMAL, ("dog", "puppy")),
    EntityType("cat", ANIMAL, ("cat", "kitten")),
    EntityType("horse", ANIMAL, ("horse", "pony")),
    EntityType("bird", ANIMAL, ("bird",)),
    EntityType("monkey", ANIMAL, ("monkey",)),
    EntityType("ball", OBJECT, ("ball",)),
    EntityType("car", OBJECT, ("car", "vehicle")),
    EntityType("door", OBJECT, ("door",)),
    EntityType("box", OBJECT, ("box", "package")),
    EntityType("guitar", OBJECT, ("guitar",)),
    EntityType("cup", OBJECT, ("cup", "mug")),
    EntityType("bike", OBJECT, ("bike", "bicycle")),
    EntityType("book", OBJECT, ("book",)),
)

ANIMATE = (PERSON, ANIMAL)
ACTIONS: tuple[Action, ...] = (
    # animate agent and animate patient: the role switch is as plausible as the original
    Action("chase", (_v("chases", "chasing", "chased"), _v("pursues", "pursuing", "pursued")), ANIMATE, ANIMATE),
    Action("follow", (_v("follows", "following", "followed"),), ANIMATE, ANIMATE),
    Action("push", (_v("pushes", "pushing", "pushed"), _v("shoves", "shoving", "shoved")), ANIMATE,
           ANIMATE + ("box", "car", "bike", "ball")),
    Action("watch", (_v("watches", "watching", "watched"), _v("observes", "observing", "observed")), ANIMATE,
           ANIMATE + ("car", "ball")),
    Action("attack", (_v("attacks", "attacking", "attacked"), _v("bites", "biting", "bitten")), ANIMATE, ANIMATE),
    Action("hug", (_v("hugs", "hugging", "hugged"), _v("embraces", "embracing", "embraced")), (PERSON,),
           (PERSON, "dog", "cat", "monkey")),
    Action("greet", (_v("greets", "greeting", "greeted"), _v("welcomes", "welcoming", "welcomed")), (PERSON,),
           (PERSON,)),
    Action("feed", (_v("feeds", "feeding", "fed"),), (PERSON,), ANIMATE),
    Action("carry", (_v("carries", "carrying", "carried"),), (PERSON,) + ("horse",),
           (PERSON, OBJECT, "dog", "cat", "bird")),
    Action("kick", (_v("kicks", "kicking", "kicked"),), (PERSON, "horse"), ("ball", "box", "door", "car")),
    Action("throw", (_v("throws", "throwing", "thrown"), _v("tosses", "tossing", "tossed")), (PERSON, "monkey"),
           ("ball", "box", "cup", "book")),
    Action("open", (_v("opens", "opening", "opened"),), (PERSON,), ("door", "box", "car", "book")),
    Action("wash", (_v("washes", "washing", "washed"), _v("cleans", "cleaning", "cleaned")), (PERSON,),
           (OBJECT, "dog", "horse")),
    Action("ride", (_v("rides", "riding", "ridden"),), (PERSON, "monkey"), ("horse", "bike", "car")),
    Action("hold", (_v("holds", "holding", "held"), _v("grabs", "grabbing", "grabbed")), (PERSON, "monkey"),
           (OBJECT, "cat", "bird")),
    Action("play", (_v("plays", "playing", "played"),), (PERSON,), ("guitar", "ball")),
    # intransitive
    Action("run", (_v("runs", "running", "run"), _v("jogs", "jogging", "jogged")), ANIMATE),
    Action("jump", (_v("jumps", "jumping", "jumped"), _v("leaps", "leaping", "leapt")), ANIMATE),
    Action("dance", (_v("dances", "dancing", "danced"),), (PERSON,)),
    Action("swim", (_v("swims", "swimming", "swum"),), ANIMATE),
    Action("sleep", (_v("sleeps", "sleeping", "slept"), _v("rests", "resting", "rested")), ANIMATE),
    Action("walk", (_v("walks", "walking", "walked"), _v("strolls", "strolling", "strolled")), ANIMATE),
)

SCENES: tuple[Scene, ...] = (
    Scene("kitchen", (("in", "the", "kitchen"), ("in", "a", "kitchen"))),
    Scene("beach", (("on", "the", "beach"), ("at", "the", "beach"))),
    Scene("park", (("in", "the", "park"), ("at", "a", "park"))),
    Scene("street", (("on", "the", "street"), ("on", "a", "road"))),
    Scene("stage", (("on", "a", "stage"), ("on", "the", "stage"))),
    Scene("field", (("in", "a", "field"), ("on", "a", "field"))),
    Scene("living_room", (("in", "the", "living", "room"), ("in", "a", "living", "room"))),
    Scene("garden", (("in", "the", "garden"), ("in", "a", "yard"))),
    Scene("gym", (("in", "a", "gym"), ("in", "the", "gym"))),
)

Event = tuple[str, str, "str | None"]  # (action, agent, patient)


@dataclass(frozen=True)
class VideoPlan:
    """The symbolic content of one video: a scene and its events in temporal order."""

    scene: str
    events: tuple[Event, ...]

    @property
    def cast(self) -> tuple[str, ...]:
        """The entity types taking part, in order of first appearance."""
        seen: list[str] = []
        for _, agent, patient in self.events:
            for e in (agent, patient):
                if e is not None and e not in seen:
                    seen.append(e)
        return tuple(seen)


def switched(event: Event) -> Event:
    action, agent, patient = event
    if patient is None:
        raise ValueError(f"event {event} has no patient to switch roles with")
    return (action, patient, agent)


class World:
    """The vocabulary plus the seeded event distribution (weights and held-out triples)."""

    def __init__(self, seed: int, heldout_fraction: float):
        self.seed = seed
        self.entities = {e.name: e for e in ENTITIES}
        self.actions = {a.name: a for a in ACTIONS}
        self.scenes = {s.name: s for s in SCENES}
        self.entity_names = tuple(e.name for e in ENTITIES)
        self.action_names = tuple(a.name for a in ACTIONS)
        self.scene_names = tuple(s.name for s in SCENES)
        rng = np.random.default_rng([seed, 0])
        triples = self.all_triples
        # Each action gets a popularity; within an action, a heavy-tailed (Zipf-like) weight per entity pair,
        # shared by a triple and its role switch (symmetric sampling).
        popularity = {a: float(rng.uniform(0.5, 1.5)) for a in self.action_names}
        raw: dict[tuple, float] = {}
        for t in triples:
            raw.setdefault(self._pair_key(t), float(rng.pareto(1.5) + 0.2))
        totals: dict[str, float] = {}
        for t in triples:
            totals[t[0]] = totals.get(t[0], 0.0) + raw[self._pair_key(t)]
        self.weights = {t: popularity[t[0]] * raw[self._pair_key(t)] / totals[t[0]] for t in triples}
        self.heldout = self._choose_heldout(rng, heldout_fraction)

    @staticmethod
    def _pair_key(t: Event) -> tuple:
        action, agent, patient = t
        return (action,) + tuple(sorted(x for x in (agent, patient) if x is not None))

    def allowed(self, spec: tuple[str, ...]) -> tuple[str, ...]:
        """Entity names matching a tuple of categories and/or entity names."""
        return tuple(e.name for e in ENTITIES if e.category in spec or e.name in spec)

    @cached_property
    def all_triples(self) -> tuple[Event, ...]:
        out: list[Event] = []
        for a in ACTIONS:
            for agent in self.allowed(a.agents):
                if not a.transitive:
                    out.append((a.name, agent, None))
                    continue
                out.extend((a.name, agent, p) for p in self.allowed(a.patients) if p != agent)
        return tuple(out)

    def is_valid(self, event: Event) -> bool:
        return event in self.weights

    def swappable(self, event: Event) -> bool:
        """A transitive event whose role switch is a valid event too."""
        return event[2] is not None and self.is_valid(switched(event))

    def _choose_heldout(self, rng: np.random.Generator, fraction: float) -> frozenset[Event]:
        """Hold out about ``fraction`` of the transitive triples (a triple with its switch), keeping every
        action and entity seen in training with each of its roles."""
        if fraction <= 0:
            return frozenset()
        keys = sorted({self._pair_key(t) for t in self.all_triples if t[2] is not None})
        order = rng.permutation(len(keys))
        target = int(round(fraction * sum(1 for t in self.all_triples if t[2] is not None)))
        kept = set(self.all_triples)
        heldout: set[Event] = set()
        for i in order:
            if len(heldout) >= target:
                break
            group = {t for t in kept if self._pair_key(t) == keys[i]}
            remaining = kept - group
            if self._covers(remaining):
                kept = remaining
                heldout |= group
        return frozenset(heldout)

    def _covers(self, triples: set[Event]) -> bool:
        """Every action, and every entity in each role it can take, still occurs."""
        need = {("action", t[0]) for t in self.all_triples}
        need |= {("agent", t[1]) for t in self.all_triples}
        need |= {("patient", t[2]) for t in self.all_triples if t[2] is not None}
        have = {("action", t[0]) for t in triples} | {("agent", t[1]) for t in triples}
        have |= {("patient", t[2]) for t in triples if t[2] is not None}
        return need <= have

    @cached_property
    def seen_triples(self) -> tuple[Event, ...]:
        return tuple(t for t in self.all_triples if t not in self.heldout)

    @cached_property
    def unseen_triples(self) -> tuple[Event, ...]:
        return tuple(t for t in self.all_triples if t in self.heldout)

    def sample_event(self, rng: np.random.Generator, pool: tuple[Event, ...], exclude: set[tuple]) -> Event:
        """A weighted draw from ``pool``, avoiding triples whose (action, entity pair) is in ``exclude``."""
        cands = [t for t in pool if self._pair_key(t) not in exclude]
        w = np.array([self.weights[t] for t in cands])
        return cands[int(rng.choice(len(cands), p=w / w.sum()))]

    def sample_plan(self, rng: np.random.Generator, num_events: int, unseen: bool) -> VideoPlan:
        """A video's scene and events; ``unseen`` puts one held-out triple among them, otherwise none occurs."""
        scene = self.scene_names[int(rng.integers(len(self.scene_names)))]
        heldout_slot = int(rng.integers(num_events)) if unseen else -1
        events: list[Event] = []
        used: set[tuple] = set()
        for k in range(num_events):
            pool = self.unseen_triples if k == heldout_slot else self.seen_triples
            event = self.sample_event(rng, pool, used)
            used.add(self._pair_key(event))
            events.append(event)
        return VideoPlan(scene=scene, events=tuple(events))
