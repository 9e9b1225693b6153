"""Held-out phrasings: a video's transitive event stated in constructions the generator never uses.

The generator (``captions.py``) states an event as ``a dog chases a cat``, ``a dog is chasing a cat`` or ``a cat is
(being) chased by a dog``, joined by *and* / *then*. The sentences here share only the world's vocabulary (nouns,
verb forms, scene phrases) and are written from the event's true roles:

* relative clauses: *there is a dog that chases a cat*, *there is a cat that is being chased by a dog*;
* existentials: *there is a girl hugging a boy*, *there is a boy being hugged by a girl*;
* a *get* passive with *by*: *a cat gets chased by a dog*;
* clefts: *it is a man who pushes a box*, *it is a box that is pushed by a man*;

each alone, or joined to the scene with *while* (*... while they are in the kitchen*) or to the event before it
with *after* (*... after a man opens a door*). People take *who*, animals and objects *that*; an entity named
again takes *the*. The role-switched twin is the same sentence (construction, join, synonyms) with the event's
agent and patient exchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from training.synth.world import PERSON, Event, VideoPlan, Verb, World, switched

Words = list[str]
# (agent noun phrase, patient noun phrase, verb, agent's relative pronoun, patient's relative pronoun) -> words
Construction = Callable[[Words, Words, Verb, str, str], Words]

CONSTRUCTIONS: dict[str, Construction] = {
    "relative": lambda a, p, v, ra, rp: ["there", "is", *a, ra, v.third, *p],
    "relative_passive": lambda a, p, v, ra, rp: ["there", "is", *p, rp, "is", "being", v.participle, "by", *a],
    "existential": lambda a, p, v, ra, rp: ["there", "is", *a, v.gerund, *p],
    "existential_passive": lambda a, p, v, ra, rp: ["there", "is", *p, "being", v.participle, "by", *a],
    "get_passive": lambda a, p, v, ra, rp: [*p, "gets", v.participle, "by", *a],
    "cleft": lambda a, p, v, ra, rp: ["it", "is", *a, ra, v.third, *p],
    "cleft_passive": lambda a, p, v, ra, rp: ["it", "is", *p, rp, "is", v.participle, "by", *a],
}
JOINS = ("none", "while", "after")   # "after" only for an event that has one before it


@dataclass(frozen=True)
class Phrasing:
    """The surface choices of one held-out sentence about event ``event`` of a video."""

    event: int                       # index of the stated event in the video's events
    construction: str                # a key of CONSTRUCTIONS
    join: str                        # one of JOINS
    verb: int                        # synonym index (modulo the action's verbs)
    nouns: tuple[tuple[str, int], ...]   # (entity, synonym index) of every entity the sentence names
    scene_phrase: int = 0


def write(world: World, video: VideoPlan, phrasing: Phrasing, switch: bool = False) -> str:
    """The sentence of ``phrasing`` for ``video``; ``switch`` exchanges the stated event's agent and patient."""
    event = video.events[phrasing.event]
    if switch:
        event = switched(event)
    nouns = dict(phrasing.nouns)
    mentioned: set[str] = set()

    def noun_phrase(entity: str) -> Words:
        words = ["the" if entity in mentioned else "a", world.entities[entity].nouns[nouns[entity]]]
        mentioned.add(entity)
        return words

    def relative(entity: str) -> str:
        return "who" if world.entities[entity].category == PERSON else "that"

    action, agent, patient = event
    verbs = world.actions[action].verbs
    verb = verbs[phrasing.verb % len(verbs)]
    # Noun phrases are made in the order the construction says them, so "a" / "the" follow the sentence.
    if phrasing.construction.endswith("passive"):
        p = noun_phrase(patient)
        a = noun_phrase(agent)
    else:
        a = noun_phrase(agent)
        p = noun_phrase(patient)
    words = CONSTRUCTIONS[phrasing.construction](a, p, verb, relative(agent), relative(patient))
    if phrasing.join == "while":
        scene = world.scenes[video.scene]
        words += ["while", "they", "are", *scene.phrases[phrasing.scene_phrase % len(scene.phrases)]]
    elif phrasing.join == "after":
        words += ["after", *_simple_clause(world, video.events[phrasing.event - 1], noun_phrase, phrasing.verb)]
    return " ".join(words)


def _simple_clause(world: World, event: Event, noun_phrase: Callable[[str], Words], verb: int) -> Words:
    action, agent, patient = event
    verbs = world.actions[action].verbs
    words = [*noun_phrase(agent), verbs[verb % len(verbs)].third]
    return words + noun_phrase(patient) if patient is not None else words


def joins_for(event: int) -> tuple[str, ...]:
    """The joins an event at position ``event`` of its video can take."""
    return JOINS if event > 0 else tuple(j for j in JOINS if j != "after")
