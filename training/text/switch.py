"""Role-switched twins of training captions, from the parser's role graph (torch-free).

``switch_roles`` swaps the words of the agent (``ARG0``) and patient (``ARG1``) spans of the first verb that has
both: *a dog chases a cat* -> *a cat chases a dog*; *a girl is pushed by the boy* -> *a boy is pushed by the
girl* (articles and everything outside the two spans stay). It reads only the parse of the caption, as a
model would at training time, never a dataset's own generator: SynthVTR's ``perturb.py`` makes the test's
negatives, and this must not share its rules. ``role_events`` lists a caption's (verb, agent, patient) events,
so that training can keep only the twins whose events some training caption describes (or, ``role_pairs``, whose
verb-agent and verb-patient pairs some training captions have).
"""
from __future__ import annotations

from typing import Optional

from training.text.rolegraph import RoleGraph

AGENT, PATIENT = "ARG0", "ARG1"


def switch_roles(tokens: tuple[str, ...] | list[str], graph: RoleGraph) -> Optional[str]:
    """The caption with its first verb's agent and patient spans swapped, or None when no verb has both (or
    the spans are not two disjoint runs of words, or swapping changes nothing)."""
    for verb in graph.verb_ids:
        args = {role: graph.nodes[arg].spans for v, arg, role in graph.edges if v == verb and role in (AGENT, PATIENT)}
        if len(args) < 2:
            continue
        first, second = sorted((args[AGENT], args[PATIENT]))
        if not (_run(first) and _run(second)) or first[-1] >= second[0]:
            return None
        words = list(tokens)
        swapped = (words[:first[0]] + words[second[0]:second[-1] + 1] + words[first[-1] + 1:second[0]]
                   + words[first[0]:first[-1] + 1] + words[second[-1] + 1:])
        return None if swapped == words else " ".join(swapped)
    return None


def role_events(tokens: tuple[str, ...] | list[str], graph: RoleGraph) -> frozenset[tuple[str, str, str]]:
    """The caption's ``(verb, agent, patient)`` events as its words say them: every verb with both an agent and
    a patient, each span's words joined. A twin whose events all occur in some training caption cannot be told
    from its caption by the text alone (an agent that never does that action, say)."""
    words = lambda node: " ".join(tokens[i] for i in graph.nodes[node].spans)  # noqa: E731
    args: dict[str, dict[str, list[str]]] = {}
    for verb, arg, role in graph.edges:
        if role in (AGENT, PATIENT):
            args.setdefault(verb, {AGENT: [], PATIENT: []})[role].append(words(arg))
    return frozenset((words(verb), agent, patient) for verb, roles in args.items()
                     for agent in roles[AGENT] for patient in roles[PATIENT])


def role_pairs(events: frozenset[tuple[str, str, str]]) -> frozenset[tuple[str, str, str]]:
    """The events' ``(verb, role, words)`` pairs: each verb with its agent, and with its patient, apart. A twin whose
    pairs all occur in training captions puts no one in a role no caption gives them with that verb, though its
    whole event may be new (as most of an unseen-combination test split's events are)."""
    return frozenset(pair for verb, agent, patient in events for pair in ((verb, AGENT, agent), (verb, PATIENT, patient)))


def _run(span: tuple[int, ...]) -> bool:
    return bool(span) and list(span) == list(range(span[0], span[-1] + 1))
