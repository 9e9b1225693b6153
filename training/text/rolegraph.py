"""Role graphs in HGR's ``sent2rolegraph`` format, and a user's own ``sent2rolegraph`` JSON file.

HGR's file maps each sentence to ``[nodes, edges]``:

* ``nodes`` -- ``{"ROOT": {"role": "ROOT", "spans": [0, .., n-1], "words": [...]},
  "1": {"role": "V", "spans": [4], "words": ["broken"]}, "2": {"role": "ARG1", ...}, ...}``;
  ``spans`` are word indices into the sentence, ``words`` the words at those indices.
* ``edges`` -- ``[[verb_node_id, argument_node_id, role], ...]``.

Roles are kept as written (a user's AllenNLP parse may hold ``R-ARG0`` or ``ARGM-GOL``); consumers map them
onto HGR's 16 roles with :func:`training.text.roles.normalize_role`. Torch-free.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from common.errors import DataError, read_json_file

ROOT = "ROOT"
VERB_ROLE = "V"


@dataclass(frozen=True)
class Node:
    role: str
    spans: tuple[int, ...]
    words: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"role": self.role, "spans": list(self.spans), "words": list(self.words)}


@dataclass(frozen=True)
class RoleGraph:
    """One sentence's graph. ``nodes`` keeps HGR's order: ``ROOT`` first, then ``"1"``, ``"2"``, ..."""

    nodes: dict[str, Node]
    edges: tuple[tuple[str, str, str], ...]

    @property
    def verb_ids(self) -> tuple[str, ...]:
        return tuple(k for k, n in self.nodes.items() if n.role == VERB_ROLE)

    @property
    def noun_ids(self) -> tuple[str, ...]:
        """Argument (noun-phrase, adverb) nodes: everything but the root and the verbs, as HGR's reader does."""
        return tuple(k for k, n in self.nodes.items() if n.role not in (ROOT, VERB_ROLE))

    def to_json(self) -> dict[str, Any]:
        return {"nodes": {k: n.to_json() for k, n in self.nodes.items()}, "edges": [list(e) for e in self.edges]}

    def to_hgr(self) -> list[Any]:
        """The value HGR's ``sent2rolegraph`` file holds for one sentence: ``[nodes, edges]``."""
        data = self.to_json()
        return [data["nodes"], data["edges"]]

    @staticmethod
    def from_json(data: Any, where: str = "role graph") -> "RoleGraph":
        if not isinstance(data, Mapping) or set(data) != {"nodes", "edges"}:
            raise DataError(f"{where}: expected a mapping with keys 'nodes' and 'edges'")
        return RoleGraph.from_hgr([data["nodes"], data["edges"]], where)

    @staticmethod
    def from_hgr(value: Any, where: str = "role graph") -> "RoleGraph":
        """Validate and read one ``[nodes, edges]`` value; errors name ``where`` and the offending node or edge."""
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise DataError(f"{where}: expected [nodes, edges], got {type(value).__name__}")
        raw_nodes, raw_edges = value
        if not isinstance(raw_nodes, Mapping) or ROOT not in raw_nodes:
            raise DataError(f"{where}: nodes must be a mapping holding a {ROOT!r} node")
        nodes = {str(k): _read_node(v, f"{where}: node {k!r}") for k, v in raw_nodes.items()}
        n_words = len(nodes[ROOT].words)
        for key, node in nodes.items():
            if max(node.spans) >= n_words:
                raise DataError(f"{where}: node {key!r} spans {list(node.spans)} beyond the {n_words} ROOT words")
        if not isinstance(raw_edges, (list, tuple)):
            raise DataError(f"{where}: edges must be a list")
        edges = []
        for i, edge in enumerate(raw_edges):
            if not isinstance(edge, (list, tuple)) or len(edge) != 3 or not all(isinstance(x, str) for x in edge):
                raise DataError(f"{where}: edge {i} must be [verb_id, argument_id, role], got {edge!r}")
            missing = [x for x in edge[:2] if x not in nodes]
            if missing:
                raise DataError(f"{where}: edge {i} {list(edge)} names unknown node(s) {missing}")
            edges.append((edge[0], edge[1], edge[2]))
        return RoleGraph(nodes=nodes, edges=tuple(edges))


def _read_node(data: Any, where: str) -> Node:
    if not isinstance(data, Mapping) or not {"role", "spans", "words"} <= set(data):
        raise DataError(f"{where}: expected a mapping with 'role', 'spans' and 'words'")
    role, spans, words = data["role"], data["spans"], data["words"]
    if not isinstance(role, str):
        raise DataError(f"{where}: role must be a string, got {role!r}")
    if not isinstance(spans, (list, tuple)) or not spans or not all(
        isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in spans
    ):
        raise DataError(f"{where}: spans must be a non-empty list of word indices, got {spans!r}")
    if not isinstance(words, (list, tuple)) or len(words) != len(spans) or not all(isinstance(w, str) for w in words):
        raise DataError(f"{where}: words must be a list of {len(spans)} strings (one per span index), got {words!r}")
    return Node(role=role, spans=tuple(spans), words=tuple(words))


def load_sent2rolegraph(path: str | Path) -> dict[str, RoleGraph]:
    """Read a ``sent2rolegraph`` JSON file (e.g. HGR's ``sent2rolegraph.augment.json``)."""
    path = Path(path)
    data = read_json_file(path, "role-graph file")
    if not isinstance(data, dict):
        raise DataError(f"{path}: the top level must map sentences to [nodes, edges]")
    return {sent: RoleGraph.from_hgr(value, f"{path}: sentence {sent!r}") for sent, value in data.items()}


def save_sent2rolegraph(path: str | Path, graphs: Mapping[str, RoleGraph]) -> None:
    Path(path).write_text(json.dumps({sent: g.to_hgr() for sent, g in graphs.items()}))


def align_to_tokens(graph: RoleGraph, tokens: Sequence[str], where: str = "role graph") -> RoleGraph:
    """Re-index ``graph``'s spans onto ``tokens`` (our spaCy words) when its own words were split differently.

    Words are matched by their characters (case and spaces ignored): a graph word maps to every token it
    overlaps. Raises ``DataError`` when the two word sequences do not spell the same sentence.
    """
    root_words = [w.lower() for w in graph.nodes[ROOT].words]
    lowered = [t.lower() for t in tokens]
    if root_words == lowered:
        return graph
    if "".join("".join(root_words).split()) != "".join("".join(lowered).split()):
        raise DataError(
            f"{where}: its ROOT words {' '.join(root_words)!r} do not spell the sentence "
            f"as tokenized ({' '.join(lowered)!r})"
        )
    graph_chars, token_chars = _char_ranges(root_words), _char_ranges(lowered)
    word_to_tokens = [
        tuple(t for t, (ts, te) in enumerate(token_chars) if ts < we and ws < te)
        for ws, we in graph_chars
    ]
    nodes: dict[str, Node] = {}
    for key, node in graph.nodes.items():
        spans = tuple(sorted({t for i in node.spans for t in word_to_tokens[i]}))
        if not spans:
            raise DataError(f"{where}: node {key!r} covers no word of the sentence")
        nodes[key] = Node(role=node.role, spans=spans, words=tuple(lowered[t] for t in spans))
    return RoleGraph(nodes=nodes, edges=graph.edges)


def _char_ranges(words: Sequence[str]) -> list[tuple[int, int]]:
    """Each word's [start, end) in the sentence's characters with all whitespace removed."""
    ranges, pos = [], 0
    for word in words:
        length = len("".join(word.split()))
        ranges.append((pos, pos + length))
        pos += length
    return ranges
