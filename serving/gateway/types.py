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
class FrameWeight:
    """One frame a text node attended: its index among the video's sampled frames, its time in seconds (None where
    the video's timing is unknown) and the weight the model's attention gave it."""
    frame: int
    weight: float
    time_s: float | None = None


@dataclass(frozen=True)
class NodeEvidence:
    words: str                          # the text node (a verb or a noun phrase) as the caption says it
    frames: tuple[FrameWeight, ...]     # every sampled frame of the video, in order; the weights sum to 1


@dataclass(frozen=True)
class LevelEvidence:
    """Where in the video a level found the caption's nodes; ``temporal`` False for a level of one vector per item,
    which has no such evidence (``nodes`` empty)."""
    level: str
    temporal: bool
    nodes: tuple[NodeEvidence, ...] = ()


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    levels: tuple[LevelScore, ...]
    source: str = ""
    duration: float = -1.0
    text: str = ""
    video_id: str = ""
    evidence: tuple[LevelEvidence, ...] = ()   # when asked: one per level, in the model's level order


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
    frame_times: np.ndarray | None = None   # seconds of each sampled frame, where the file's timing is known


@dataclass(frozen=True)
class CaptionInput:
    id: str
    text: str
    video_id: str = ""
