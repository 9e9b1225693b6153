"""First-stage candidates: which indexed items a query's scorer gets to see (torch-free).

Three strategies, chosen per model in :data:`CHOICES` (measured by ``strata bench rerank``; the README has the table)
and recorded in each exported version's manifest (``first_stage``), which the gateway follows:

``index``   one inner-product search of the index view (``text_index`` / ``video_index``) in the kind's main
            collection. Exact, up to the ANN index's recall, where the fused score is that inner product
            (VSE++, ViSERN, VSR-Net); for the other models the index view is one level of several.
``levels``  every level of the fused score gets a vector (a level's per-frame or per-node matrix is mean-pooled,
            then L2-normalised), stored in a second collection ``<collection>_levels`` with one vector field per
            level, and searched together with Milvus's multi-vector hybrid search, weighted as the fusion weights
            the levels. Candidates ranked high by any level reach the re-rank.
``fused``   one vector per item whose inner product with the query's vector approximates the whole fused score
            (:func:`fused_terms`), in a second collection ``<collection>_fused``, searched with one inner-product search.
            A cosine level contributes the two unit vectors. HGR's local attentive matching (mean over the text's
            nodes of the node's cosine with its attention-weighted frames) contributes the mean of the unit nodes
            and the unit mean of the frames: with attention near uniform over frames that product is the level's
            score. A Jaccard level contributes the two unit probability vectors (their cosine stands in for it).
            The query side carries each level's weight in the fusion, so the one product sums the levels as the
            scorer does.

Both directions work alike: text -> video searches the video collections with the text's vectors, video -> text the
caption collections with the video's. A model whose first stage cannot work is refused with the reason
(:func:`refusal`), before anything is indexed.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from common.layout import TEXT_INDEX, VIDEO_INDEX, ModelLayout
from serving.gateway.errors import FailedPrecondition
from serving.index.milvus_index import LevelIndex

STRATEGIES = ("index", "levels", "fused")
COSINE, ATTENTIVE, JACCARD = "cosine", "attentive", "jaccard"
VIDEOS, CAPTIONS = "videos", "captions"


@dataclass(frozen=True)
class Level:
    """One vector field of the levels collection: the tower outputs that make it on each side (pooled, then
    concatenated when several) and its weight in the fused score."""
    name: str
    text: tuple[str, ...]
    video: tuple[str, ...]
    weight: float


def _level(name: str, text: str | tuple[str, ...], video: str | tuple[str, ...], weight: float) -> Level:
    as_tuple = lambda x: (x,) if isinstance(x, str) else tuple(x)  # noqa: E731
    return Level(name, as_tuple(text), as_tuple(video), weight)


# The levels each multi-level model's fused score is made of (at most four: Milvus's vector fields per collection).
# HGR: mean of three levels. HANet: (mean of five alignment levels + mean of two Jaccard levels) / 2; its two local
# levels are left to the re-rank (the individual ones see the same nodes and frames), and the two concept levels
# share one field. MCSAN: mean of four levels.
LEVELS: dict[str, tuple[Level, ...]] = {
    "hgr": (_level("event", "text_event", "video_event", 1 / 3),
            _level("action", "text_verbs", "video_actions", 1 / 3),
            _level("entity", "text_nouns", "video_entities", 1 / 3)),
    "hanet": (_level("global", "text_global", "video_global", 0.1),
              _level("individual_action", "text_verb_words", "video_actions", 0.1),
              _level("individual_entity", "text_noun_words", "video_entities", 0.1),
              _level("concept", ("text_verb_concepts", "text_noun_concepts"),
                     ("video_verb_concepts", "video_noun_concepts"), 0.5)),
    "mcsan": tuple(_level(name, f"text_{name}", f"video_{name}", 0.25)
                   for name in ("global", "entity", "action", "relationship")),
}


@dataclass(frozen=True)
class Term:
    """One level of the fused score as an inner product: how its text and video outputs become vectors
    (``match``: :data:`COSINE`, :data:`ATTENTIVE` or :data:`JACCARD`), and its weight in the fusion."""
    text: str
    video: str
    match: str
    weight: float


def fused_terms(base: str, config: Mapping) -> tuple[Term, ...]:
    """The levels of a model's fused score, as the scorer fuses them (empty: the model has no fused first stage).
    HGR: the mean of event, action and entity. HANet: (mean of its alignment levels on in ``config`` + mean of
    the two concept Jaccards) / 2."""
    if base == "hgr":
        return (Term("text_event", "video_event", COSINE, 1 / 3),
                Term("text_verbs", "video_actions", ATTENTIVE, 1 / 3),
                Term("text_nouns", "video_entities", ATTENTIVE, 1 / 3))
    if base == "hanet":
        alignment = []
        if config.get("individual_alignment", True):
            alignment += [("text_verb_words", "video_actions", ATTENTIVE), ("text_noun_words", "video_entities", ATTENTIVE)]
        if config.get("local_alignment", True):
            alignment += [("text_verbs", "video_local_actions", ATTENTIVE),
                          ("text_nouns", "video_local_entities", ATTENTIVE)]
        if config.get("global_alignment", True):
            alignment += [("text_global", "video_global", COSINE)]
        return (tuple(Term(*a, 0.5 / len(alignment)) for a in alignment)
                + (Term("text_verb_concepts", "video_verb_concepts", JACCARD, 0.25),
                   Term("text_noun_concepts", "video_noun_concepts", JACCARD, 0.25)))
    return ()


@dataclass(frozen=True)
class Choice:
    strategy: str
    depth: int          # default candidates per query (measured on a 10,000-item corpus)


# Produced by `strata bench rerank` (10,000 held-out SynthVTR videos, the model-quality runs' seed-0 checkpoints,
# 10 epochs; the README's table): per model and kind searched, the (strategy, depth) of least depth, then latency,
# reaching agreement@10 >= 0.99 with exhaustive scoring.
CHOICES: dict[str, dict[str, Choice]] = {
    "vsepp": {VIDEOS: Choice("index", 10), CAPTIONS: Choice("index", 10)},
    "visern": {VIDEOS: Choice("index", 10), CAPTIONS: Choice("index", 10)},
    "vsrnet": {VIDEOS: Choice("index", 10), CAPTIONS: Choice("index", 10)},
    "mcsan": {VIDEOS: Choice("index", 20), CAPTIONS: Choice("index", 50)},
    "hgr": {VIDEOS: Choice("fused", 50), CAPTIONS: Choice("fused", 100)},
    "hanet": {VIDEOS: Choice("fused", 50), CAPTIONS: Choice("fused", 100)},
}
FALLBACK = Choice("index", 200)


def export_record(base: str) -> dict[str, dict]:
    """What an export writes into a version's manifest (``first_stage``): the measured choice for its model."""
    return {kind: asdict(choice) for kind, choice in CHOICES.get(base, {VIDEOS: FALLBACK, CAPTIONS: FALLBACK}).items()}


def recorded_choices(manifest: Mapping, base: str) -> dict[str, Choice]:
    """A version's first stage: as its manifest records it, else (versions exported before the record) CHOICES."""
    recorded = manifest.get("first_stage") or export_record(base)
    return {kind: Choice(str(c["strategy"]), int(c["depth"])) for kind, c in recorded.items()}


def refusal(base: str, manifest: Mapping, layout: ModelLayout, strategy: str) -> str:
    """Why ``strategy`` cannot find this model's answers ("" when it can)."""
    if strategy not in STRATEGIES:
        return f"unknown first-stage strategy {strategy!r} (known: {', '.join(STRATEGIES)})"
    config = manifest.get("config", {})
    if base == "hanet" and config.get("global_alignment", True) is False and strategy != "fused":
        return ("HANet with global_alignment=false: its index view (the global vector) is never trained, so a first "
                "stage over it would rank candidates at random")
    if strategy == "index":
        return ""
    if strategy == "levels":
        if base not in LEVELS:
            return f"{base} has no per-level first stage (its index view is its whole fused score: use 'index')"
        needed = {name for level in LEVELS[base] for name in level.text + level.video}
    else:
        terms = fused_terms(base, config)
        if not terms:
            return f"{base} has no fused first stage (use 'index': its index view is, or approximates, its fused score)"
        needed = {name for term in terms for name in (term.text, term.video)}
    missing = sorted(needed - set(layout.text.output_names) - set(layout.video.output_names))
    if missing:
        return f"{base}'s {strategy} first stage needs tower outputs this version lacks: {', '.join(missing)}"
    return ""


def pooled(record: Mapping[str, np.ndarray], names: Sequence[str]) -> np.ndarray:
    """The level vector of one item: each output mean-pooled over its rows when it is a matrix (records keep only
    the valid rows), then L2-normalised, concatenated, and normalised again (zero when the item has no rows)."""
    parts = []
    for name in names:
        value = np.asarray(record[name], np.float32)
        if value.ndim == 2:
            value = value.mean(axis=0) if len(value) else np.zeros(value.shape[1], np.float32)
        parts.append(_unit(value))
    return _unit(np.concatenate(parts))


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm > 0 else vector).astype(np.float32)


def fused_vector(terms: Sequence[Term], record: Mapping[str, np.ndarray], side: str) -> np.ndarray:
    """The fused-collection vector of an item (``side`` "video") or a query's vector (``side`` "text" carries the
    weights): see the module docstring."""
    parts = []
    for term in terms:
        value = np.asarray(record[getattr(term, side)], np.float32)
        if term.match == ATTENTIVE and side == "text":
            norms = np.linalg.norm(value, axis=1, keepdims=True)
            units = value / np.maximum(norms, 1e-12)
            vector = units.mean(axis=0) if len(value) else np.zeros(value.shape[1], np.float32)
        elif value.ndim == 2:   # the video's frames or clips of an attentive level: their unit mean
            vector = _unit(value.mean(axis=0)) if len(value) else np.zeros(value.shape[1], np.float32)
        else:                   # a cosine or Jaccard level's vector
            vector = _unit(value)
        parts.append(vector * (term.weight if side == "text" else 1.0))
    return np.concatenate(parts).astype(np.float32)


def level_dims(base: str, layout: ModelLayout) -> dict[str, int]:
    """Each level field's size, from the video tower's output shapes."""
    return {level.name: sum(int(layout.video.spec(name).shape[-1]) for name in level.video) for level in LEVELS[base]}


def level_row(base: str, item_id: str, record: Mapping[str, np.ndarray], side: str) -> dict:
    """The levels-collection row of an item: ``side`` is "video" for videos, "text" for captions."""
    return {"id": item_id, **{level.name: pooled(record, getattr(level, side)) for level in LEVELS[base]}}


class FirstStage:
    """The first stage of one model version: its choice per kind, the extra collections that choice needs, the
    rows written to them at ingest, and the candidates of a query."""

    def __init__(self, index, manifest: Mapping, layout: ModelLayout, collections: Mapping[str, str],
                 choices: Mapping[str, Choice] | None = None):
        base = layout.model     # the zoo's name (hgr, ...), whatever the Triton model is called
        self.index, self.base, self.layout = index, base, layout
        self.collections = dict(collections)
        self.choices = dict(choices or recorded_choices(manifest, base))
        for kind, choice in self.choices.items():
            problem = refusal(base, manifest, layout, choice.strategy)
            if problem:
                raise FailedPrecondition(f"{base} cannot be indexed for {kind} search: {problem}")
        self.terms = fused_terms(base, manifest.get("config", {}))
        # kind -> the collection of the kind's extra rows (strategies other than "index")
        self.extra = {kind: f"{name}_{self.choices[kind].strategy}" for kind, name in self.collections.items()
                      if self.choices[kind].strategy != "index"}
        self.levels = LevelIndex(index) if self.extra else None

    def _fields(self, kind: str) -> dict[str, int]:
        if self.choices[kind].strategy == "levels":
            return level_dims(self.base, self.layout)
        return {"fused": sum(int(self.layout.video.spec(t.video).shape[-1]) for t in self.terms)}

    def _row(self, kind: str, item_id: str, record: Mapping[str, np.ndarray]) -> dict:
        side = "video" if kind == VIDEOS else "text"
        if self.choices[kind].strategy == "levels":
            return level_row(self.base, item_id, record, side)
        return {"id": item_id, "fused": fused_vector(self.terms, record, side)}

    def ensure(self) -> None:
        """Create (or check) the extra collections."""
        for kind, name in self.extra.items():
            self.levels.ensure(name, self._fields(kind))

    def describe(self) -> str:
        return ", ".join(f"{kind} {c.strategy} (depth {c.depth})" for kind, c in self.choices.items())

    def depth(self, kind: str) -> int:
        return self.choices[kind].depth

    # -- ingest (before the main row, which marks an item committed) ------------------------------------------------
    def write(self, kind: str, items: Sequence[tuple[str, Mapping[str, np.ndarray]]]) -> None:
        if kind in self.extra:
            self.levels.upsert(self.extra[kind], [self._row(kind, item_id, record) for item_id, record in items])

    def delete(self, kind: str, ids: Sequence[str]) -> None:
        if kind in self.extra:
            self.levels.delete(self.extra[kind], ids)

    # -- queries --------------------------------------------------------------------------------------------------
    def candidates(self, kind: str, query: Mapping[str, np.ndarray], depth: int) -> list[str]:
        """Up to ``depth`` ids of ``kind`` for a query record (a text's outputs for videos, a video's for captions)."""
        side = "text" if kind == VIDEOS else "video"
        strategy = self.choices[kind].strategy
        if strategy == "levels":
            vectors = {level.name: pooled(query, getattr(level, side)) for level in LEVELS[self.base]}
            weights = {level.name: level.weight for level in LEVELS[self.base]}
            found = self.levels.search(self.extra[kind], vectors, weights, depth)
        elif strategy == "fused":
            found = self.levels.search(self.extra[kind], {"fused": fused_vector(self.terms, query, side)},
                                       {"fused": 1.0}, depth)
        else:
            vector = np.asarray(query[TEXT_INDEX if side == "text" else VIDEO_INDEX], np.float32)
            found = self.index.search(self.collections[kind], vector[None], depth)[0]
        return [item_id for item_id, _ in found]
