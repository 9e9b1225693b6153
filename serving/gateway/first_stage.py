"""First-stage candidates: which indexed items a query's scorer gets to see (torch-free).

Three strategies, chosen per model in its serving tables (``training/models/<name>/serving.py``, a
:class:`common.serving_tables.ServingTables`; measured by ``strata bench rerank``, the README has the table) and
recorded in each exported version's manifest (``first_stage``), which the gateway follows:

``index``   one inner-product search of the index view (``text_index`` / ``video_index``) in the kind's main
            collection. Exact, up to the ANN index's recall, where the fused score is that inner product
            (VSE++, ViSERN, VSR-Net); for the other models the index view is one level of several.
``levels``  every level of the fused score gets a vector (a level's per-frame or per-node matrix is mean-pooled,
            then L2-normalised), stored in a second collection ``<collection>_levels`` with one vector field per
            level, and searched together with Milvus's multi-vector hybrid search, weighted as the fusion weights
            the levels. Candidates ranked high by any level reach the re-rank.
``fused``   one vector per item whose inner product with the query's vector approximates the whole fused score
            (the model's fused terms), in a second collection ``<collection>_fused``, searched with one inner-product search.
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

import numpy as np

from common.layout import TEXT_INDEX, VIDEO_INDEX, ModelLayout
from common.serving_tables import ATTENTIVE, STRATEGIES, VIDEOS, Choice, Level, Term
from serving.gateway.errors import FailedPrecondition
from serving.index.milvus_index import LevelIndex
from serving.index.naming import first_stage_collection
from training.models.factory import serving_tables


def recorded_choices(manifest: Mapping, base: str) -> dict[str, Choice]:
    """A version's first stage: as its manifest records it, else (versions exported before the record) the choice
    its model declares."""
    recorded = manifest.get("first_stage")
    if not recorded:
        return dict(serving_tables(base).choices)
    return {kind: Choice(str(c["strategy"]), int(c["depth"])) for kind, c in recorded.items()}


def refusal(base: str, manifest: Mapping, layout: ModelLayout, strategy: str) -> str:
    """Why ``strategy`` cannot find this model's answers ("" when it can)."""
    if strategy not in STRATEGIES:
        return f"unknown first-stage strategy {strategy!r} (known: {', '.join(STRATEGIES)})"
    config = manifest.get("config", {})
    tables = serving_tables(base)
    problem = tables.refusal(config, strategy)
    if problem or strategy == "index":
        return problem
    if strategy == "levels":
        if not tables.levels:
            return f"{base} has no per-level first stage (its index view is its whole fused score: use 'index')"
        needed = {name for level in tables.levels for name in level.text + level.video}
    else:
        terms = tables.fused_terms(config)
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


def level_dims(levels: Sequence[Level], layout: ModelLayout) -> dict[str, int]:
    """Each level field's size, from the video tower's output shapes."""
    return {level.name: sum(int(layout.video.spec(name).shape[-1]) for name in level.video) for level in levels}


def level_row(levels: Sequence[Level], item_id: str, record: Mapping[str, np.ndarray], side: str) -> dict:
    """The levels-collection row of an item: ``side`` is "video" for videos, "text" for captions."""
    return {"id": item_id, **{level.name: pooled(record, getattr(level, side)) for level in levels}}


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
        self.tables = serving_tables(base)
        self.terms = self.tables.fused_terms(manifest.get("config", {}))
        # kind -> the collection of the kind's extra rows (strategies other than "index")
        self.extra = {kind: first_stage_collection(name, self.choices[kind].strategy)
                      for kind, name in self.collections.items() if self.choices[kind].strategy != "index"}
        self.levels = LevelIndex(index) if self.extra else None

    def _fields(self, kind: str) -> dict[str, int]:
        if self.choices[kind].strategy == "levels":
            return level_dims(self.tables.levels, self.layout)
        return {"fused": sum(int(self.layout.video.spec(t.video).shape[-1]) for t in self.terms)}

    def _row(self, kind: str, item_id: str, record: Mapping[str, np.ndarray]) -> dict:
        side = "video" if kind == VIDEOS else "text"
        if self.choices[kind].strategy == "levels":
            return level_row(self.tables.levels, item_id, record, side)
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
            vectors = {level.name: pooled(query, getattr(level, side)) for level in self.tables.levels}
            weights = {level.name: level.weight for level in self.tables.levels}
            found = self.levels.search(self.extra[kind], vectors, weights, depth)
        elif strategy == "fused":
            found = self.levels.search(self.extra[kind], {"fused": fused_vector(self.terms, query, side)},
                                       {"fused": 1.0}, depth)
        else:
            vector = np.asarray(query[TEXT_INDEX if side == "text" else VIDEO_INDEX], np.float32)
            found = self.index.search(self.collections[kind], vector[None], depth)[0]
        return [item_id for item_id, _ in found]
