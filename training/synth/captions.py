"""Paraphrased captions of a video and their true role graphs, in HGR's ``sent2rolegraph`` format.

A caption is first a :class:`CaptionPlan` (which events, in which voice and aspect, which synonyms, where the scene
phrase goes) and then rendered to words. Rendering builds the semantic-role graph at the same time, so the graph
is true by construction: ``ROOT`` spans the sentence; each clause has a ``V`` node (the main verb only, as an SRL
tagger marks it) with ``ARG0`` (agent; ``by ...`` in the passive), ``ARG1`` (patient), ``ARGM-LOC`` (the scene
phrase, attached to the clause it sits next to) and ``ARGM-TMP`` (``then``) edges. Captions are lower case
without punctuation, so whitespace tokens are the words spans index.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from training.synth.world import Event, VideoPlan, World

CONNECTORS: tuple[tuple[str, ...], ...] = (("and",), ("and", "then"), ("then",))


@dataclass(frozen=True)
class ClausePlan:
    event: Event
    verb: int               # synonym index into the action's verbs (modulo their number)
    passive: bool           # "a cat is chased by a dog" (transitive only)
    progressive: bool       # "is chasing" rather than "chases"


@dataclass(frozen=True)
class CaptionPlan:
    clauses: tuple[ClausePlan, ...]
    connectors: tuple[int, ...]              # index into CONNECTORS, one per clause after the first
    nouns: tuple[tuple[str, int], ...]       # (entity, synonym index), sorted by entity
    scene: str | None = None
    scene_phrase: int = 0
    scene_first: bool = False                # "in the kitchen a man ..." rather than "... in the kitchen"

    def noun(self, entity: str) -> int:
        return dict(self.nouns)[entity]

    def with_events(self, events: tuple[Event, ...]) -> "CaptionPlan":
        """The same surface choices over other events (one per clause); entities new to the plan get synonym 0."""
        if len(events) != len(self.clauses):
            raise ValueError(f"{len(events)} events for {len(self.clauses)} clauses")
        clauses = tuple(dataclasses.replace(c, event=e) for c, e in zip(self.clauses, events))
        nouns = dict(self.nouns)
        for _, agent, patient in events:
            for ent in (agent, patient):
                if ent is not None:
                    nouns.setdefault(ent, 0)
        used = {e for _, a, p in events for e in (a, p) if e is not None}
        return dataclasses.replace(self, clauses=clauses,
                                   nouns=tuple(sorted((k, v) for k, v in nouns.items() if k in used)))


@dataclass(frozen=True)
class Rendered:
    sentence: str
    nodes: dict[str, Any]
    edges: list[list[str]]

    @property
    def graph(self) -> list[Any]:
        return [self.nodes, self.edges]


def sample_caption(world: World, video: VideoPlan, rng: np.random.Generator, full: bool) -> CaptionPlan:
    """A random paraphrase; ``full`` describes every event and the scene, otherwise events may be left out
    (a partial description) and the scene phrase is optional."""
    n = len(video.events)
    if full or n == 1 or rng.random() < 0.5:
        keep = list(range(n))
    else:
        size = int(rng.integers(1, n))
        keep = sorted(rng.choice(n, size=size, replace=False).tolist())
    clauses = []
    for k in keep:
        event = video.events[k]
        action = world.actions[event[0]]
        clauses.append(ClausePlan(
            event=event,
            verb=int(rng.integers(len(action.verbs))),
            passive=action.transitive and bool(rng.random() < 0.3),
            progressive=bool(rng.random() < 0.6),
        ))
    entities = sorted({e for c in clauses for e in c.event[1:] if e is not None})
    nouns = tuple((e, int(rng.integers(len(world.entities[e].nouns)))) for e in entities)
    with_scene = full or bool(rng.random() < 0.5)
    scene = world.scenes[video.scene]
    return CaptionPlan(
        clauses=tuple(clauses),
        connectors=tuple(int(rng.integers(len(CONNECTORS))) for _ in clauses[1:]),
        nouns=nouns,
        scene=video.scene if with_scene else None,
        scene_phrase=int(rng.integers(len(scene.phrases))),
        scene_first=with_scene and bool(rng.random() < 0.3),
    )


def sample_captions(world: World, video: VideoPlan, rng: np.random.Generator, count: int,
                    max_tries: int = 100) -> list[CaptionPlan]:
    """``count`` captions: the first describes everything (the binary-selection positive), the rest are
    paraphrases, distinct from each other unless ``max_tries`` draws found no new sentence (tiny worlds)."""
    plans = [sample_caption(world, video, rng, full=True)]
    sentences = {render(world, plans[0]).sentence}
    while len(plans) < count:
        for _ in range(max_tries):
            plan = sample_caption(world, video, rng, full=False)
            sentence = render(world, plan).sentence
            if sentence not in sentences:
                break
        sentences.add(sentence)
        plans.append(plan)
    return plans


class _Builder:
    """Accumulates words, nodes and edges in HGR's numbering: per clause, the verb node then its arguments."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.nodes: dict[str, Any] = {}
        self.edges: list[list[str]] = []

    def add(self, words: tuple[str, ...] | list[str]) -> list[int]:
        start = len(self.words)
        self.words.extend(words)
        return list(range(start, len(self.words)))

    def node(self, role: str, spans: list[int]) -> str:
        name = str(len(self.nodes))  # ROOT is added first, so verbs and arguments count from 1
        self.nodes[name] = {"role": role, "spans": spans, "words": [self.words[i] for i in spans]}
        return name


def render(world: World, plan: CaptionPlan) -> Rendered:
    b = _Builder()
    mentioned: set[str] = set()
    scene_words = world.scenes[plan.scene].phrases[plan.scene_phrase] if plan.scene else ()
    clause_args: list[tuple[int, list[tuple[str, list[int]]]]] = []  # (verb index, [(role, spans)])

    def noun_phrase(entity: str) -> tuple[str, ...]:
        det = "the" if entity in mentioned else "a"
        mentioned.add(entity)
        return (det, world.entities[entity].nouns[plan.noun(entity)])

    for k, clause in enumerate(plan.clauses):
        args: list[tuple[str, list[int]]] = []
        if k > 0:
            connector = CONNECTORS[plan.connectors[k - 1]]
            span = b.add(connector)
            if connector[-1] == "then":
                args.append(("ARGM-TMP", span[-1:]))
        if k == 0 and plan.scene_first and scene_words:
            args.append(("ARGM-LOC", b.add(scene_words)))
        action_name, agent, patient = clause.event
        verbs = world.actions[action_name].verbs
        verb = verbs[clause.verb % len(verbs)]
        if clause.passive:
            args.append(("ARG1", b.add(noun_phrase(patient))))
            b.add(("is", "being") if clause.progressive else ("is",))
            verb_index = b.add((verb.participle,))[0]
            args.append(("ARG0", b.add(("by",) + noun_phrase(agent))))
        else:
            args.append(("ARG0", b.add(noun_phrase(agent))))
            if clause.progressive:
                b.add(("is",))
            verb_index = b.add((verb.gerund if clause.progressive else verb.third,))[0]
            if patient is not None:
                args.append(("ARG1", b.add(noun_phrase(patient))))
        if k == len(plan.clauses) - 1 and not plan.scene_first and scene_words:
            args.append(("ARGM-LOC", b.add(scene_words)))
        clause_args.append((verb_index, args))

    b.nodes["ROOT"] = {"role": "ROOT", "spans": list(range(len(b.words))), "words": list(b.words)}
    for verb_index, args in clause_args:
        verb_node = b.node("V", [verb_index])
        for role, spans in sorted(args, key=lambda a: a[1][0]):
            b.edges.append([verb_node, b.node(role, spans), role])
    return Rendered(sentence=" ".join(b.words), nodes=b.nodes, edges=b.edges)
