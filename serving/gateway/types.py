"""The retrieval core's data types: what callers give (videos, captions) and what they get back (answers, hits,
per-level scores, write counts). No gRPC here: :mod:`serving.gateway.convert` maps them to ``strata.v1``."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class LevelScore:
    level: str
    score: float
    empty: bool = False


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    levels: tuple[LevelScore, ...]
    source: str = ""
    duration: float = -1.0
    text: str = ""
    video_id: str = ""


@dataclass(frozen=True)
class Answer:
    hits: tuple[Hit, ...]
    model: str
    version: int
    candidates: int
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Written:
    """What an ingest or delete call did: items written (or deleted), items of that kind now, and the version."""

    count: int
    total: int
    model: str
    version: int


@dataclass(frozen=True)
class VideoInput:
    id: str
    frames: np.ndarray
    regions: np.ndarray | None = None
    source: str = ""
    duration: float = -1.0


@dataclass(frozen=True)
class CaptionInput:
    id: str
    text: str
    video_id: str = ""
