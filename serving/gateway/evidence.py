"""Temporal evidence of a hit: where in the video each node of the caption was found (torch-free).

A level that attends the caption's verb or noun nodes over the video's frames (HGR's action and entity levels,
HANet's individual levels) gives, per node, the attention the model itself put on each sampled frame: an output of
the version's scorer graph (``attention_<level>``, parity-checked at export like the scores), asked for only when a
request wants evidence. A frame carries its time in seconds where the video was ingested from a file whose timing
was known (the record's ``frame_times``); features given directly, and items stored before times were kept, have
none. A caption hit's nodes are labelled with the words its record keeps (``node_words``, written at ingest); a
caption stored before they were kept is parsed again. A level of one vector per item (a cosine of two vectors, a
Jaccard of concept sets) has no temporal evidence and says so rather than inventing it.
"""
from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence

import numpy as np

from common.layout import ModelLayout
from common.serving_tables import CAPTIONS, VIDEOS
from serving.gateway.errors import FailedPrecondition
from serving.gateway.types import FrameWeight, LevelEvidence, NodeEvidence

FRAME_TIMES = "frame_times"   # a video record's seconds of each sampled frame (tensor record format 2)
NODE_WORDS = "node_words"     # a caption record's verb and noun nodes' words, UTF-8 JSON (tensor record format 3)


def refusal(layout: ModelLayout, config: Mapping) -> str:
    """Why this version cannot give the temporal evidence its model gives ("" when it can, or has none to give):
    a version exported before scorers output their attention."""
    if layout.attentions:
        return ""
    if not _attending_levels(layout.model, json.dumps(config, sort_keys=True)):
        return ""
    return (f"this version of {layout.model} was exported before its scorer gave the attention behind temporal "
            f"evidence: export its checkpoint again (under another name, or into another repository) to ask for it")


@functools.lru_cache(maxsize=64)
def _attending_levels(model: str, config: str) -> tuple[str, ...]:
    """The levels whose attention the model's code outputs today, for this config."""
    from common.config import from_dict
    from training.models.factory import config_class

    return tuple(from_dict(config_class(model), json.loads(config), where=f"{model} config").layout().attentions)


def frame_count(layout: ModelLayout, record: Mapping[str, np.ndarray]) -> int:
    """How many sampled frames a stored video record holds (records keep only the valid frames)."""
    for spec in layout.video.outputs:
        if "frames" in spec.shape:
            return int(np.shape(record[spec.name])[spec.shape.index("frames") - 1])   # records have no batch axis
    return 0


def stored_frame_times(version, video_ids: Sequence[str]) -> dict[str, np.ndarray]:
    """The stored frame times of those of ``video_ids`` that have them."""
    records = version.stores[VIDEOS].get(list(video_ids), {FRAME_TIMES})
    return {item: record[FRAME_TIMES] for item, record in zip(video_ids, records)
            if record is not None and FRAME_TIMES in record}


def encode_node_words(nodes: Mapping[str, list[str]]) -> np.ndarray:
    """A caption's node words (``{"verbs": [...], "nouns": [...]}``) as a record array."""
    return np.frombuffer(json.dumps(nodes, separators=(",", ":")).encode(), np.uint8)


def caption_nodes(version, hits: Sequence[tuple[str, str]]) -> list[dict[str, list[str]]]:
    """The node words of caption hits, each an (id, text): read from their records, where a caption stored before
    records kept them is parsed again (the parse is deterministic: the same words)."""
    records = version.stores[CAPTIONS].get([item for item, _ in hits], {NODE_WORDS})
    stored = {item: json.loads(bytes(record[NODE_WORDS])) for (item, _), record in zip(hits, records)
              if record is not None and NODE_WORDS in record}
    parsed = iter(version.model.text_nodes([text for item, text in hits if item not in stored]))
    return [stored[item] if item in stored else next(parsed) for item, _ in hits]


def hit_evidence(layout: ModelLayout, attention: Mapping[str, np.ndarray], text: int, video: int,
                 nodes: Mapping[str, list[str]], frames: int, times: np.ndarray | None) -> tuple[LevelEvidence, ...]:
    """One hit's evidence, a level at a time in the model's order: the pair (``text``, ``video``) of the scorer's
    batch, the caption's node words per axis, the video's frame count and its frame times (None: unknown)."""
    if times is not None and len(times) != frames:
        times = None   # not this sampling's times: say nothing rather than something wrong
    out = []
    for level in layout.levels:
        axis = layout.attentions.get(level)
        if axis is None:
            out.append(LevelEvidence(level, temporal=False))
            continue
        weights = attention[level][text, video]                                  # [nodes, frames] (padded)
        out.append(LevelEvidence(level, True, tuple(
            NodeEvidence(words, tuple(FrameWeight(j, float(weights[i, j]), None if times is None else float(times[j]))
                                      for j in range(frames)))
            for i, words in enumerate(nodes.get(axis, [])))))
    return tuple(out)


def check_available(version) -> None:
    """Refuse a request for evidence that this version cannot answer, naming the fix."""
    problem = refusal(version.model.layout, version.model.manifest["config"])
    if problem:
        raise FailedPrecondition(problem)
