"""Retrieval metrics by HGR's convention (torch-free; the gateway and the trainer both use them).

For a query (a caption for text->video, a video for video->text) its rank is the 0-based position of its
best-ranked correct item. ``R@K = 100 * #(rank < K) / #queries``, ``MedR = median(rank) + 1`` (not floored, may
end in .5), ``MnR = mean(rank) + 1``, ``rsum`` = the six recalls summed.

Ties: a correct item tied with a wrong one ranks *after* it, i.e. rank = number of wrong items whose score is
``>=`` the best correct score. This is the pessimistic choice: a collapsed model that scores everything alike
gets the worst possible ranks instead of perfect ones.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from common.errors import DataError

DIRECTIONS = ("t2v", "v2t")
RECALLS = (1, 5, 10)
METRIC_KEYS: tuple[str, ...] = tuple(
    f"{d}_{m}" for d in DIRECTIONS for m in (*(f"r{k}" for k in RECALLS), "medr", "mnr")
) + ("rsum",)

# Queries are ranked in blocks of about this many scores, so memory stays bounded for any corpus size.
_BLOCK_ELEMENTS = 1 << 22


def retrieval_metrics(scores: np.ndarray, video_captions: Sequence[Sequence[int]]) -> dict[str, float]:
    """Text->video and video->text metrics of a videos x captions score matrix.

    ``video_captions[i]`` lists the caption indices (columns) that are correct for video ``i`` (row); a caption
    may belong to several videos. Returns the keys of :data:`METRIC_KEYS`, e.g. ``t2v_r1``, ``v2t_medr``, ``rsum``.
    """
    scores = _check_scores(scores)
    n_videos, n_captions = scores.shape
    video_pos = _check_video_captions(video_captions, n_videos, n_captions)
    caption_pos: list[list[int]] = [[] for _ in range(n_captions)]
    for v, caps in enumerate(video_pos):
        for c in caps:
            caption_pos[c].append(v)
    orphans = [c for c, vids in enumerate(caption_pos) if not vids]
    if orphans:
        raise DataError(
            f"retrieval_metrics: {len(orphans)} caption(s) belong to no video (first: column {orphans[0]}); "
            "every caption needs at least one correct video"
        )
    out: dict[str, float] = {}
    out.update(_summarise("t2v", query_ranks(scores.T, caption_pos)))
    out.update(_summarise("v2t", query_ranks(scores, video_pos)))
    out["rsum"] = float(sum(out[f"{d}_r{k}"] for d in DIRECTIONS for k in RECALLS))
    return out


def query_ranks(scores: np.ndarray, positives: Sequence[Sequence[int]]) -> np.ndarray:
    """0-based rank of each query's best correct item; ``scores`` is queries x items (ties count against it)."""
    n_queries, n_items = scores.shape
    ranks = np.empty(n_queries, np.int64)
    rows = max(1, _BLOCK_ELEMENTS // max(n_items, 1))
    for start in range(0, n_queries, rows):
        block = scores[start:start + rows]
        correct = np.zeros(block.shape, bool)
        for r, items in enumerate(positives[start:start + rows]):
            correct[r, list(items)] = True
        best = np.where(correct, block, -np.inf).max(axis=1)
        ranks[start:start + len(block)] = ((block >= best[:, None]) & ~correct).sum(axis=1)
    return ranks


def dedupe_captions(captions: Sequence[Sequence[str]]) -> tuple[list[str], list[list[int]]]:
    """De-duplicate test captions as HGR does: a sentence shared by several videos is one caption, correct for each.

    ``captions[i]`` holds video i's sentences. Returns the unique sentences (in order of first appearance) and
    ``video_captions`` (per video, the indices of its sentences in that list), ready for :func:`retrieval_metrics`.
    Sentences are compared exactly.
    """
    index: dict[str, int] = {}
    video_captions: list[list[int]] = []
    for v, sentences in enumerate(captions):
        if isinstance(sentences, str) or len(sentences) == 0:
            raise DataError(f"dedupe_captions: video {v} needs a non-empty list of sentences, got {sentences!r}")
        ids: list[int] = []
        for sentence in sentences:
            cid = index.setdefault(sentence, len(index))
            if cid not in ids:
                ids.append(cid)
        video_captions.append(ids)
    return list(index), video_captions


def _summarise(direction: str, ranks: np.ndarray) -> dict[str, float]:
    out = {f"{direction}_r{k}": 100.0 * float(np.count_nonzero(ranks < k)) / len(ranks) for k in RECALLS}
    out[f"{direction}_medr"] = float(np.median(ranks)) + 1.0
    out[f"{direction}_mnr"] = float(ranks.mean()) + 1.0
    return out


def _check_scores(scores: np.ndarray) -> np.ndarray:
    arr = np.asarray(scores)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"retrieval_metrics: scores must be a non-empty videos x captions matrix, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise DataError(f"retrieval_metrics: scores must be numeric, got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise DataError(f"retrieval_metrics: scores hold NaN/inf (first at video {bad[0]}, caption {bad[1]})")
    return arr


def _check_video_captions(video_captions: Sequence[Sequence[int]], n_videos: int, n_captions: int) -> list[list[int]]:
    if len(video_captions) != n_videos:
        raise DataError(
            f"retrieval_metrics: scores have {n_videos} video rows but video_captions has {len(video_captions)} entries"
        )
    out = []
    for v, caps in enumerate(video_captions):
        arr = np.asarray(caps).reshape(-1)
        if arr.size == 0:
            raise DataError(f"retrieval_metrics: video {v} has no caption; every video needs at least one")
        if not np.issubdtype(arr.dtype, np.integer):
            raise DataError(f"retrieval_metrics: video {v}: caption indices must be integers, got {list(caps)!r}")
        ids = [int(c) for c in arr]
        bad = [c for c in ids if not 0 <= c < n_captions]
        if bad:
            raise DataError(f"retrieval_metrics: video {v} lists caption {bad[0]}, outside 0..{n_captions - 1}")
        out.append(ids)
    return out
