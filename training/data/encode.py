"""Batch encoding into the canonical input tensors of :mod:`common.layout` (torch-free).

Text: a caption's role graph in HGR's format -- ``nodes`` ``{"ROOT": {...}, "1": {"role": "V", "spans": [4],
"words": [...]}, ...}`` and ``edges`` ``[[verb_id, arg_id, role], ...]`` -- plus its number of words. This is what
our parser emits and what a user's ``sent2rolegraph.augment.json`` holds, so both encode the same way.

Truncation (HGR's rule, :class:`TextLimits`):

* words: only the first ``max_words`` words exist;
* a node is kept when at least one of its span's words exists; its span is cut to those words;
* verb nodes are the ``V`` nodes, noun nodes every other node but ``ROOT``; the first ``max_verbs`` kept verbs and
  the first ``max_nouns`` kept nouns are used, in the order of ``nodes``;
* an edge is kept only when it joins a used verb to a used noun; edges between other nodes are ignored.

A batch is padded to its own longest caption / video (not to the limits), with at least one verb and one noun slot
so that no axis is empty; padded slots are zero with mask 0. Floats are float32, indices int64.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from common.errors import DataError
from training.data.sampling import MAX_FRAMES, pad_stack, sample_frames
from training.text.roles import role_index


@dataclass(frozen=True)
class TextLimits:
    max_words: int = 30
    max_verbs: int = 4
    max_nouns: int = 6

    def __post_init__(self) -> None:
        for key in ("max_words", "max_verbs", "max_nouns"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")


@dataclass(frozen=True)
class EncodedGraph:
    """One caption's role graph after truncation; spans are word indices < ``num_words``."""

    total_words: int                        # words of the caption
    num_words: int                          # words kept (<= max_words)
    verb_spans: tuple[tuple[int, ...], ...]
    noun_spans: tuple[tuple[int, ...], ...]
    noun_roles: tuple[int, ...]             # index in training.text.roles.ROLES
    edges: tuple[tuple[int, int], ...]      # (verb slot, noun slot)


def encode_graph(nodes: Mapping[str, Any], edges: Sequence[Sequence[Any]], num_words: int,
                 limits: TextLimits = TextLimits(), where: str = "caption") -> EncodedGraph:
    """Apply HGR's truncation to one role graph; ``where`` names the caption in error messages.

    ``nodes`` maps node ids to ``{"role", "spans"}`` dicts (HGR's JSON) or to ``training.text.rolegraph.Node``
    objects, so ``encode_graph(g.nodes, g.edges, n)`` works for a parsed ``RoleGraph`` ``g`` too.
    """
    if num_words < 1:
        raise DataError(f"{where}: a caption needs at least one word, got {num_words}")
    kept_words = min(num_words, limits.max_words)
    verbs: dict[str, tuple[int, ...]] = {}
    nouns: dict[str, tuple[tuple[int, ...], int]] = {}
    for key, node in nodes.items():
        if isinstance(node, Mapping):
            role, spans = node.get("role"), node.get("spans")
        else:  # a training.text.rolegraph.Node
            role, spans = getattr(node, "role", None), getattr(node, "spans", None)
        if role is None or spans is None:
            raise DataError(f"{where}: role-graph node {key!r} needs 'role' and 'spans', got {node!r}")
        if role == "ROOT":
            continue
        if not isinstance(spans, (list, tuple)) or not spans or not all(_is_index(w) for w in spans):
            raise DataError(f"{where}: role-graph node {key!r} needs a non-empty list of word indices, got {spans!r}")
        if min(spans) < 0 or max(spans) >= num_words:
            raise DataError(f"{where}: role-graph node {key!r} spans {list(spans)}, outside the {num_words} words")
        span = tuple(int(w) for w in spans if w < kept_words)
        if not span:
            continue
        if role == "V":
            if len(verbs) < limits.max_verbs:
                verbs[str(key)] = span
        elif len(nouns) < limits.max_nouns:
            nouns[str(key)] = (span, role_index(str(role)))
    verb_slot = {k: i for i, k in enumerate(verbs)}
    noun_slot = {k: i for i, k in enumerate(nouns)}
    kept_edges: list[tuple[int, int]] = []
    for edge in edges:
        if not isinstance(edge, (list, tuple)) or len(edge) < 2:
            raise DataError(f"{where}: role-graph edge {edge!r} is not [verb_id, arg_id, role]")
        src, dst = str(edge[0]), str(edge[1])
        for end in (src, dst):
            if end not in nodes:
                raise DataError(f"{where}: role-graph edge {list(edge)!r} refers to unknown node {end!r}")
        if src in verb_slot and dst in noun_slot and (verb_slot[src], noun_slot[dst]) not in kept_edges:
            kept_edges.append((verb_slot[src], noun_slot[dst]))
    return EncodedGraph(
        total_words=num_words,
        num_words=kept_words,
        verb_spans=tuple(verbs.values()),
        noun_spans=tuple(span for span, _ in nouns.values()),
        noun_roles=tuple(role for _, role in nouns.values()),
        edges=tuple(kept_edges),
    )


def encode_text_batch(graphs: Sequence[EncodedGraph], word_feats: Sequence[np.ndarray] | None = None,
                      word_ids: Sequence[np.ndarray] | None = None,
                      sent_feats: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Canonical text inputs of a batch: masks, spans, roles and edges, plus whichever word inputs are given.

    ``word_feats[i]`` (``[total_words, dim]``) and ``word_ids[i]`` (``[total_words]``) hold every word of caption
    ``i`` (before truncation); their first ``graphs[i].num_words`` rows are used. ``sent_feats`` is ``[batch, dim]``.
    """
    if not graphs:
        raise DataError("encode_text_batch: empty batch")
    b = len(graphs)
    words = max(g.num_words for g in graphs)
    verbs = max(1, max(len(g.verb_spans) for g in graphs))
    nouns = max(1, max(len(g.noun_spans) for g in graphs))
    out = {
        "word_mask": np.zeros((b, words), np.float32),
        "verb_spans": np.zeros((b, verbs, words), np.float32),
        "verb_mask": np.zeros((b, verbs), np.float32),
        "noun_spans": np.zeros((b, nouns, words), np.float32),
        "noun_mask": np.zeros((b, nouns), np.float32),
        "noun_roles": np.zeros((b, nouns), np.int64),
        "noun_verb_edges": np.zeros((b, verbs, nouns), np.float32),
    }
    for i, g in enumerate(graphs):
        out["word_mask"][i, :g.num_words] = 1
        for v, span in enumerate(g.verb_spans):
            out["verb_spans"][i, v, list(span)] = 1
            out["verb_mask"][i, v] = 1
        for n, span in enumerate(g.noun_spans):
            out["noun_spans"][i, n, list(span)] = 1
            out["noun_mask"][i, n] = 1
            out["noun_roles"][i, n] = g.noun_roles[n]
        for v, n in g.edges:
            out["noun_verb_edges"][i, v, n] = 1
    if word_feats is not None:
        out["word_feats"] = _words(graphs, word_feats, words, "word_feats", np.float32)
    if word_ids is not None:
        out["word_ids"] = _words(graphs, word_ids, words, "word_ids", np.int64)
    if sent_feats is not None:
        sent = np.asarray(sent_feats, dtype=np.float32)
        if sent.ndim != 2 or len(sent) != b:
            raise DataError(f"encode_text_batch: sent_feats must be [{b}, dim], got shape {sent.shape}")
        out["sent_feat"] = sent
    return out


def encode_video_batch(frames: Sequence[np.ndarray], regions: Sequence[np.ndarray] | None = None,
                       max_frames: int = MAX_FRAMES) -> dict[str, np.ndarray]:
    """``frame_feats``/``frame_mask`` (and ``region_feats``) of a batch, padded to its longest video.

    Videos longer than ``max_frames`` are sampled as HGR does (regions with the same frames); readers that
    sample already pass through unchanged.
    """
    if not frames:
        raise DataError("encode_video_batch: empty batch")
    if regions is not None and len(regions) != len(frames):
        raise DataError(f"encode_video_batch: {len(frames)} frame arrays but {len(regions)} region arrays")
    sampled = []
    for i, f in enumerate(frames):
        if f.ndim != 2 or len(f) == 0:
            raise DataError(f"encode_video_batch: video {i}: frames must be [frames >= 1, dim], got {f.shape}")
        sampled.append(sample_frames(f, max_frames))
    length = max(len(f) for f in sampled)
    try:
        frame_feats, frame_mask = pad_stack(sampled, length, np.float32)
        out = {"frame_feats": frame_feats, "frame_mask": frame_mask}
        if regions is not None:
            sampled_regions = []
            for i, (f, r) in enumerate(zip(frames, regions)):
                if r.ndim != 3 or len(r) != len(f):
                    raise DataError(
                        f"encode_video_batch: video {i}: regions must be [{len(f)} frames, regions, dim], got {r.shape}"
                    )
                sampled_regions.append(sample_frames(r, max_frames))
            out["region_feats"] = pad_stack(sampled_regions, length, np.float32)[0]
    except ValueError as err:
        raise DataError(f"encode_video_batch: {err}") from None
    return out


def _words(graphs: Sequence[EncodedGraph], arrays: Sequence[np.ndarray], length: int, name: str,
           dtype: type) -> np.ndarray:
    if len(arrays) != len(graphs):
        raise DataError(f"encode_text_batch: {len(graphs)} graphs but {len(arrays)} {name}")
    rows = []
    for i, (g, arr) in enumerate(zip(graphs, arrays)):
        arr = np.asarray(arr)
        if len(arr) != g.total_words:
            raise DataError(
                f"encode_text_batch: caption {i}: {name} has {len(arr)} words, its role graph {g.total_words}"
            )
        rows.append(arr[:g.num_words])
    try:
        return pad_stack(rows, length, dtype)[0]
    except ValueError as err:
        raise DataError(f"encode_text_batch: {name}: {err}") from None


def _is_index(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
