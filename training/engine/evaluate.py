"""Evaluation through any runner of a model's three parts (torch-free).

A *runner* has ``encode_text(inputs) / encode_video(inputs) / score(text, video)`` over NumPy dicts with the
layout's names: the PyTorch model (``training.engine.runner.TorchRunner``), ONNX Runtime
(``export.runner``) or Triton (``serving.triton.client``) — so a checkpoint's metrics can be checked
through the exported graphs too. Scoring runs chunk by chunk: memory grows with videos x captions (the
score matrix) and with videos x frames (the video levels), never with their product.
"""
from __future__ import annotations

from typing import Any, Iterator, Protocol, Sequence

import numpy as np

from common.layout import LEVEL_SCORES, SCORE
from training.metrics import retrieval_metrics

Arrays = dict[str, np.ndarray]


class Runner(Protocol):
    levels: tuple[str, ...]

    def encode_text(self, inputs: Arrays) -> Arrays: ...

    def encode_video(self, inputs: Arrays) -> Arrays: ...

    def score(self, text: Arrays, video: Arrays) -> Arrays: ...


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def score_matrices(runner: Runner, data, videos: Sequence[str], captions: Sequence[str],
                   batch_size: int = 128, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """Fused ``[captions, videos]`` and per-level ``[levels, captions, videos]`` scores."""
    video_levels = [runner.encode_video(data.video_batch(list(chunk))) for chunk in _chunks(videos, batch_size)]
    fused = np.zeros((len(captions), len(videos)), np.float32)
    levels = np.zeros((len(runner.levels), len(captions), len(videos)), np.float32)
    for c0 in range(0, len(captions), batch_size):
        text = runner.encode_text(data.text_batch(list(captions[c0:c0 + batch_size])))
        v0 = 0
        for video in video_levels:
            out = runner.score(text, video)
            n_t, n_v = out[SCORE].shape
            fused[c0:c0 + n_t, v0:v0 + n_v] = out[SCORE]
            levels[:, c0:c0 + n_t, v0:v0 + n_v] = out[LEVEL_SCORES]
            v0 += n_v
        if progress is not None:
            progress(min(c0 + batch_size, len(captions)), len(captions))
    return fused, levels


def selection_accuracy(negatives: dict[str, list[tuple[str, str, str]]], score, batch_size: int = 128
                       ) -> dict[str, float]:
    """HGR's binary selection: per set, % of its (video, true caption, perturbed caption) triples whose true caption
    outscores the perturbed one for the video. ``score(videos, positives, perturbed)`` gives a chunk's two arrays
    of fused scores (whichever backend computes them), or two ``[rows, chunk]`` arrays of several scores each
    (the fused score and each level's), which give a list of accuracies, one per row."""
    accuracy = {}
    for kind, triples in sorted(negatives.items()):
        wins = 0
        for chunk in _chunks(triples, batch_size):
            pos, neg = score(*(list(x) for x in zip(*chunk)))
            wins = wins + (np.asarray(pos) > np.asarray(neg)).sum(axis=-1)
        accuracy[kind] = (100.0 * np.asarray(wins) / max(len(triples), 1)).tolist()
    return accuracy


def binary_selection(runner: Runner, data, split: str, batch_size: int = 128) -> dict[str, float]:
    """:func:`selection_accuracy` of the split's sets (``data.hard_negatives``), scored by ``runner``."""
    def score(videos, positives, perturbed):
        video = runner.encode_video(data.video_batch(videos))
        return (np.diagonal(runner.score(runner.encode_text(data.text_batch(positives)), video)[SCORE]),
                np.diagonal(runner.score(runner.encode_text(data.text_batch(perturbed)), video)[SCORE]))

    return selection_accuracy(data.hard_negatives(split), score, batch_size)


def evaluate_split(runner: Runner, data, split: str, batch_size: int = 128, selection: bool = True,
                   progress=None) -> dict[str, Any]:
    """Both directions' R@1/5/10, MedR, MnR, rsum; the same per level; binary selection where the data has it."""
    videos, captions, video_captions = data.eval_set(split)
    fused, levels = score_matrices(runner, data, videos, captions, batch_size, progress)
    result: dict[str, Any] = {"split": split, "videos": len(videos), "captions": len(captions),
                              "fused": retrieval_metrics(fused.T, video_captions),
                              "levels": {name: retrieval_metrics(levels[i].T, video_captions)
                                         for i, name in enumerate(runner.levels)}}
    if selection and data.has_hard_negatives(split):
        result["binary_selection"] = binary_selection(runner, data, split, batch_size)
        result["binary_selection_sizes"] = selection_sizes(data.hard_negatives(split))
    return result


def selection_sizes(negatives: dict[str, list[tuple[str, str, str]]]) -> dict[str, dict[str, int]]:
    """Per selection, its pairs and the videos they come from (pairs of one video are not independent)."""
    return {kind: {"pairs": len(triples), "videos": len({video for video, _, _ in triples})}
            for kind, triples in sorted(negatives.items())}


def format_result(result: dict[str, Any]) -> str:
    """Human-readable block: both directions, levels, binary selection."""
    def row(name: str, m: dict) -> str:
        return (f"  {name:14s} t2v R@1 {m['t2v_r1']:5.1f} R@5 {m['t2v_r5']:5.1f} R@10 {m['t2v_r10']:5.1f} "
                f"MedR {m['t2v_medr']:5.1f} MnR {m['t2v_mnr']:6.1f} | v2t R@1 {m['v2t_r1']:5.1f} R@5 {m['v2t_r5']:5.1f} "
                f"R@10 {m['v2t_r10']:5.1f} MedR {m['v2t_medr']:5.1f} MnR {m['v2t_mnr']:6.1f} | rsum {m['rsum']:6.1f}")

    lines = [f"split {result['split']}: {result['videos']} videos, {result['captions']} captions",
             row("fused", result["fused"])]
    lines += [row(f"level {k}", v) for k, v in result["levels"].items()]
    if "binary_selection" in result:
        sizes = result.get("binary_selection_sizes", {})
        lines.append("  binary selection: " + ", ".join(
            f"{k} {v:.1f}%" + (f" ({sizes[k]['pairs']} pairs, {sizes[k]['videos']} videos)" if k in sizes else "")
            for k, v in result["binary_selection"].items()))
    return "\n".join(lines)
