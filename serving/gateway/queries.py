"""Queries in both directions on one model version: text -> videos, video -> captions, and scoring given videos
(torch-free). Each runs the version's towers, its first stage for candidates, fetches their tensors and re-ranks
them with the version's scorer; every hit carries the fused score and each level's score.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from common.deadline import starting
from common.serving_tables import CAPTIONS, VIDEOS
from common.settings import Settings
from serving.gateway import metrics
from serving.gateway.errors import FailedPrecondition, InvalidArgument, NotFound
from serving.gateway.evidence import (caption_nodes, check_available, frame_count, hit_evidence,
                                      stored_frame_times)
from serving.gateway.limits import check_text
from serving.gateway.model import stage
from serving.gateway.types import Answer, Hit, LevelScore
from serving.gateway.version import EMPTY_LEVELS, Version


def default_depth(settings: Settings, version: Version, kind: str) -> int:
    """First-stage candidates of a search for ``kind`` when the request does not say: the ``candidate_depth``
    setting when it is set, else the depth measured for this model and direction (its manifest's first stage)."""
    return settings.candidate_depth or version.first_stage.depth(kind)


def limits(settings: Settings, version: Version, kind: str, top_k: int, depth: int) -> tuple[int, int]:
    """(top_k, depth) of a search for ``kind``: the request's, else the defaults; refused outside the limits."""
    top_k = top_k or settings.top_k
    depth = depth or min(max(default_depth(settings, version, kind), top_k), settings.max_candidate_depth)
    if not 1 <= top_k <= settings.max_top_k:
        raise InvalidArgument(f"top_k must be in 1..{settings.max_top_k}, got {top_k}")
    if not top_k <= depth <= settings.max_candidate_depth:
        raise InvalidArgument(f"candidate_depth must be in top_k ({top_k})..{settings.max_candidate_depth}, got {depth}")
    return top_k, depth


def search_videos(version: Version, settings: Settings, text: str, top_k: int = 0, depth: int = 0,
                  evidence: bool = False) -> Answer:
    top_k, depth = limits(settings, version, VIDEOS, top_k, depth)
    check_text(settings, text, "text")
    if evidence:
        check_available(version)
    timings: dict[str, float] = {}
    embedded = version.model.embed_texts([text], timings)
    query = embedded.items[0]
    candidates = _candidates(version, VIDEOS, query, depth, timings)
    with stage(timings, "fetch"):
        records = _fetch(version, VIDEOS, candidates)
    with stage(timings, "rerank"):
        scored = version.model.score([query], [records[i] for i in candidates], attention=evidence)
    placed = _hits(version, VIDEOS, _ranked(candidates, scored.fused[0]), top_k, scored.fused[0],
                   scored.levels[:, 0, :], [embedded.empty[0]] * len(candidates))
    if evidence:
        with stage(timings, "evidence"):
            placed = _with_video_evidence(version, placed, scored, embedded.nodes[0], candidates, records)
    return Answer(tuple(hit for hit, _ in placed), *version.key, len(candidates), timings)


def search_captions(version: Version, settings: Settings, video_id: str = "", frames: np.ndarray | None = None,
                    regions: np.ndarray | None = None, top_k: int = 0, depth: int = 0,
                    evidence: bool = False, frame_times: np.ndarray | None = None) -> Answer:
    """Captions for an indexed video, or for uploaded features (``frame_times``: their seconds, where known)."""
    top_k, depth = limits(settings, version, CAPTIONS, top_k, depth)
    if evidence:
        check_available(version)
    timings: dict[str, float] = {}
    if video_id:
        with stage(timings, "fetch"):
            query = _fetch(version, VIDEOS, [video_id])[video_id]
    else:
        if frames is None:
            raise InvalidArgument("give an indexed video's id or uploaded video features")
        version.check_video("uploaded video", frames, regions, "features")
        query = version.model.embed_videos([frames], [regions], timings)[0]
    candidates = _candidates(version, CAPTIONS, query, depth, timings)
    with stage(timings, "fetch"):
        records = _fetch(version, CAPTIONS, candidates)
    with stage(timings, "rerank"):
        scored = version.model.score([records[i] for i in candidates], [query], attention=evidence)
    empty = [tuple(bool(e) for e in records[i][EMPTY_LEVELS]) for i in candidates]
    placed = _hits(version, CAPTIONS, _ranked(candidates, scored.fused[:, 0]), top_k, scored.fused[:, 0],
                   scored.levels[:, :, 0], empty)
    if evidence:
        with stage(timings, "evidence"):
            times = stored_frame_times(version, [video_id]).get(video_id) if video_id else frame_times
            nodes = (caption_nodes(version, [(hit.id, hit.text) for hit, _ in placed])
                     if version.model.layout.attentions else [{} for _ in placed])   # no level reads nodes over frames
            frames = frame_count(version.model.layout, query)
            placed = [(replace(hit, evidence=hit_evidence(version.model.layout, scored.attention, position, 0,
                                                          words, frames, times)), position)
                      for (hit, position), words in zip(placed, nodes)]
    return Answer(tuple(hit for hit, _ in placed), *version.key, len(candidates), timings)


def score_videos(version: Version, settings: Settings, text: str, video_ids: Sequence[str],
                 evidence: bool = False) -> Answer:
    if not video_ids:
        raise InvalidArgument("give at least one video id to score")
    if len(video_ids) > settings.max_candidate_depth:
        raise InvalidArgument(f"at most {settings.max_candidate_depth} video ids per call (setting "
                              f"max_candidate_depth), got {len(video_ids)}", field="video_ids")
    check_text(settings, text, "text")
    timings: dict[str, float] = {}
    ids = list(dict.fromkeys(video_ids))
    if evidence:
        check_available(version)
    embedded = version.model.embed_texts([text], timings)
    with stage(timings, "fetch"):
        records = _fetch(version, VIDEOS, ids)
    with stage(timings, "rerank"):
        scored = version.model.score(embedded.items, [records[i] for i in ids], attention=evidence)
    placed = _hits(version, VIDEOS, _ranked(ids, scored.fused[0]), len(ids), scored.fused[0], scored.levels[:, 0, :],
                   [embedded.empty[0]] * len(ids))
    if evidence:
        with stage(timings, "evidence"):
            placed = _with_video_evidence(version, placed, scored, embedded.nodes[0], ids, records)
    return Answer(tuple(hit for hit, _ in placed), *version.key, len(ids), timings)


def _with_video_evidence(version: Version, placed: list[tuple[Hit, int]], scored, nodes: dict[str, list[str]],
                         candidates: Sequence[str], records: dict[str, dict[str, np.ndarray]]
                         ) -> list[tuple[Hit, int]]:
    """Video hits of one caption with their evidence: the caption's nodes against each hit's frames."""
    times = stored_frame_times(version, [hit.id for hit, _ in placed])
    layout = version.model.layout
    return [(replace(hit, evidence=hit_evidence(layout, scored.attention, 0, position, nodes,
                                                frame_count(layout, records[candidates[position]]),
                                                times.get(hit.id))), position)
            for hit, position in placed]


def _candidates(version: Version, kind: str, query: dict[str, np.ndarray], depth: int, timings) -> list[str]:
    with stage(timings, "search"):
        found = version.first_stage.candidates(kind, query, depth)
    if not found:
        raise FailedPrecondition(f"no {kind} are indexed for {version.key[0]} version {version.key[1]}: "
                                 f"strata index DIR (or the Index{kind.capitalize()} call) first")
    return found


def _fetch(version: Version, kind: str, ids: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
    starting("store", "the tensor store")
    records = version.stores[kind].get(list(ids), version.fetched[kind])
    metrics.count_fetched(kind, records)
    missing = [i for i, r in zip(ids, records) if r is None]
    if missing:
        raise NotFound(f"unknown {kind[:-1]} id(s): {', '.join(map(repr, missing[:5]))}"
                       + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
    return dict(zip(ids, records))


def _hits(version: Version, kind: str, ranked: list[tuple[str, int]], top_k: int, fused: np.ndarray,
          levels: np.ndarray, empty: list[tuple[bool, ...]]) -> list[tuple[Hit, int]]:
    """The first ``top_k`` committed items of ``ranked`` (positions of the scored candidates), with their stored
    metadata, each with its position. A candidate without a main row is not committed (a write undone half-way, or
    deleted since the search found it) and is passed over: an answer names committed items only."""
    names = version.model.levels
    fields = ["source", "duration"] if kind == VIDEOS else ["text", "video_id"]
    hits: list[tuple[Hit, int]] = []
    at = 0
    while len(hits) < top_k and at < len(ranked):
        chunk, at = ranked[at:at + top_k - len(hits)], at + top_k - len(hits)
        rows = version.index.get(version.collections[kind], [item_id for item_id, _ in chunk], fields)
        for item_id, position in chunk:
            if item_id in rows:
                hits.append((Hit(item_id, float(fused[position]),
                                 tuple(LevelScore(n, float(levels[k, position]), empty[position][k])
                                       for k, n in enumerate(names)),
                                 **{f: rows[item_id][f] for f in fields}), position))
    return hits


def _ranked(ids: Sequence[str], scores: np.ndarray) -> list[tuple[str, int]]:
    """Every (id, position), best score first, ties broken by id."""
    order = sorted(range(len(ids)), key=lambda i: (-float(scores[i]), ids[i]))
    return [(ids[i], i) for i in order]
