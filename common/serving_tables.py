"""Serving tables: what each model of the zoo tells the gateway about its first stage (torch-free).

A model declares one :class:`ServingTables` beside its code (``training/models/<name>/serving.py``, ``TABLES``;
``training.models.factory.serving_tables`` loads it): the measured first-stage :class:`Choice` per kind searched,
the :class:`Level` fields of its per-level first stage, the :class:`Term` s of its fused score, and why a strategy
cannot work for a given config. Export records the choices in each version's manifest; the gateway
(``serving.gateway.first_stage``) reads the rest.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

STRATEGIES = ("index", "levels", "fused")
COSINE, ATTENTIVE, JACCARD = "cosine", "attentive", "jaccard"
VIDEOS, CAPTIONS = "videos", "captions"


@dataclass(frozen=True)
class Choice:
    strategy: str
    depth: int          # default candidates per query (what the model's serving tables say it was measured on)


@dataclass(frozen=True)
class Level:
    """One vector field of the levels collection: the tower outputs that make it on each side (pooled, then
    concatenated when several) and its weight in the fused score."""
    name: str
    text: tuple[str, ...]
    video: tuple[str, ...]
    weight: float


@dataclass(frozen=True)
class Term:
    """One level of the fused score as an inner product: how its text and video outputs become vectors
    (``match``: :data:`COSINE`, :data:`ATTENTIVE` or :data:`JACCARD`), and its weight in the fusion."""
    text: str
    video: str
    match: str
    weight: float


@dataclass(frozen=True)
class ServingTables:
    """One model's serving tables. ``config`` below is a version's config as its manifest records it (a mapping).

    ``choices`` come from ``strata bench rerank`` (10,000 held-out SynthVTR videos, the model-quality runs' seed-0
    checkpoints, 10 epochs; the README's table): per kind searched, the (strategy, depth) of least depth, then
    latency, reaching agreement@10 >= 0.99 with exhaustive scoring. ``levels`` are at most four (Milvus's vector
    fields per collection)."""
    choices: Mapping[str, Choice]       # kind searched (VIDEOS, CAPTIONS) -> the measured first stage
    levels: tuple[Level, ...] = ()      # the levels collection's fields (empty: no per-level first stage)
    # The levels of the fused score as the scorer fuses them, or config -> those levels where they depend on it
    # (empty: no fused first stage).
    terms: tuple[Term, ...] | Callable[[Mapping], tuple[Term, ...]] = ()
    # (config, strategy) -> why that strategy cannot find this model's answers ("" when it can).
    config_refusal: Callable[[Mapping, str], str] | None = None

    def fused_terms(self, config: Mapping) -> tuple[Term, ...]:
        return self.terms(config) if callable(self.terms) else self.terms

    def refusal(self, config: Mapping, strategy: str) -> str:
        return self.config_refusal(config, strategy) if self.config_refusal else ""

    def first_stage_record(self) -> dict[str, dict]:
        """What an export writes into a version's manifest (``first_stage``): the measured choice per kind."""
        return {kind: asdict(choice) for kind, choice in self.choices.items()}
