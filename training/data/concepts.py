"""Concept vocabularies from the training captions (torch-free).

HANet: the top 512 verb and top 1024 noun lemmas of the training captions. MCSAN: top-K nouns (entities), verbs
(actions) and subject-verb-object triplets (relationships); the paper gives no K, 1024 triplets is our default.
Frequency counts each concept once per caption; ties are broken alphabetically, so a vocabulary is reproducible.
A caption's targets are the multi-hot vectors of its concepts; a video's are the union over its captions (MCSAN).
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, Union

import numpy as np

from common.errors import ConfigError, DataError, read_json_file
from common.files import write_atomic

KINDS = ("verbs", "nouns", "triplets")
Triplet = tuple[str, str, str]


class Concepts(Protocol):
    """What a parsed caption offers (training.text.parser.ParsedCaption has these)."""

    verbs: Sequence[str]
    nouns: Sequence[str]
    triplets: Sequence[Sequence[str]]


AUTO = "auto"
AUTO_CAP = {"verbs": 512, "nouns": 1024, "triplets": 1024}  # the paper sizes: an ``auto`` vocabulary's ceiling
Size = Union[int, Literal["auto"]]


@dataclass(frozen=True)
class ConceptConfig:
    num_verbs: Size = 512       # HANet K_a; "auto": the training captions' verbs, at most 512
    num_nouns: Size = 1024      # HANet K_e; "auto": at most 1024
    num_triplets: Size = 1024   # MCSAN K_r (not given in the paper); "auto": at most 1024

    def __post_init__(self) -> None:
        for kind in KINDS:
            value = getattr(self, f"num_{kind}")
            if value != AUTO and value < 1:
                raise ValueError(f"num_{kind} must be >= 1 or 'auto', got {value}")

    def is_auto(self, kind: str) -> bool:
        return getattr(self, f"num_{kind}") == AUTO

    def size(self, kind: str) -> int:
        """The number of heads of ``kind``; an ``auto`` size is known only from data."""
        value = getattr(self, f"num_{kind}")
        if value == AUTO:
            raise ConfigError(f"concepts.num_{kind} is 'auto' (sized from the training captions): a model built "
                              f"without data needs an explicit size, e.g. --set concepts.num_{kind}=64")
        return value

    def dim(self, kind: str) -> int | str:
        """The size for a tensor layout: the number, or a named dimension while it is still ``auto``."""
        return f"{kind[:-1]}_concepts" if self.is_auto(kind) else self.size(kind)

    def cap_overrides(self, prefix: str = "concepts") -> list[str]:
        """Overrides that give every ``auto`` size its cap (the largest it can become), for a model built
        without data whose cost is measured (``strata bench``)."""
        return [f"{prefix}.num_{kind}={AUTO_CAP[kind]}" for kind in KINDS if self.is_auto(kind)]

    def limit(self, kind: str) -> int:
        """How many concepts of ``kind`` the vocabulary keeps: the size, or the paper's cap for ``auto``."""
        return AUTO_CAP[kind] if self.is_auto(kind) else self.size(kind)


class ConceptVocab:
    """Verb, noun and SVO-triplet vocabularies with multi-hot encoding."""

    def __init__(self, verbs: Sequence[str], nouns: Sequence[str], triplets: Sequence[Sequence[str]]):
        self.verbs: tuple[str, ...] = tuple(verbs)
        self.nouns: tuple[str, ...] = tuple(nouns)
        self.triplets: tuple[Triplet, ...] = tuple(_triplet(t, "vocabulary") for t in triplets)
        self._index: dict[str, dict] = {}
        for kind in KINDS:
            entries = getattr(self, kind)
            index = {e: i for i, e in enumerate(entries)}
            if len(index) != len(entries):
                dup = next(e for e in entries if entries.count(e) > 1)
                raise DataError(f"concept vocabulary: {kind} lists {dup!r} twice")
            self._index[kind] = index

    @classmethod
    def build(cls, captions: Iterable[Concepts], config: ConceptConfig = ConceptConfig()) -> "ConceptVocab":
        """The most frequent concepts of the (training) captions."""
        counts = {kind: Counter() for kind in KINDS}
        for i, cap in enumerate(captions):
            for kind, items in _caption_concepts(cap, f"caption {i}").items():
                counts[kind].update(items)
        top = {kind: [e for e, _ in sorted(counts[kind].items(), key=lambda kv: (-kv[1], kv[0]))[:config.limit(kind)]]
               for kind in KINDS}
        return cls(**top)

    def size(self, kind: str) -> int:
        return len(self._index[kind])

    def targets(self, captions: Sequence[Concepts]) -> dict[str, np.ndarray]:
        """Multi-hot float32 vectors (``verbs``, ``nouns``, ``triplets``) of the union of the captions' concepts.

        One caption gives its own targets; a video's captions give the video's. Out-of-vocabulary concepts are
        dropped.
        """
        out = {kind: np.zeros(self.size(kind), np.float32) for kind in KINDS}
        for i, cap in enumerate(captions):
            for kind, items in _caption_concepts(cap, f"caption {i}").items():
                index = self._index[kind]
                hits = [index[e] for e in items if e in index]
                out[kind][hits] = 1.0
        return out

    def to_json(self) -> dict[str, list]:
        return {"verbs": list(self.verbs), "nouns": list(self.nouns), "triplets": [list(t) for t in self.triplets]}

    def save(self, path: str | Path) -> None:
        write_atomic(path, json.dumps(self.to_json(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> "ConceptVocab":
        path = Path(path)
        data = read_json_file(path, "concept vocabulary")
        if not isinstance(data, dict) or set(data) != set(KINDS):
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise DataError(f"{path}: expected exactly the keys {list(KINDS)}, got {got}")
        for kind in ("verbs", "nouns"):
            if not isinstance(data[kind], list) or not all(isinstance(e, str) for e in data[kind]):
                raise DataError(f"{path}: {kind} must be a list of strings")
        try:
            return cls(**data)
        except DataError as err:
            raise DataError(f"{path}: {err}") from None


def _triplet(t: Sequence[str], where: str) -> Triplet:
    if isinstance(t, str) or len(t) != 3 or not all(isinstance(x, str) for x in t):
        raise DataError(f"{where}: a triplet must be (subject, verb, object) strings, got {t!r}")
    return (t[0], t[1], t[2])


def _caption_concepts(cap: Concepts, where: str) -> dict[str, list]:
    try:
        verbs, nouns, triplets = cap.verbs, cap.nouns, cap.triplets
    except AttributeError as err:
        raise DataError(f"{where}: a parsed caption needs verbs, nouns and triplets ({err})") from None
    return {
        "verbs": list(dict.fromkeys(verbs)),
        "nouns": list(dict.fromkeys(nouns)),
        "triplets": list(dict.fromkeys(_triplet(t, where) for t in triplets)),
    }
