"""``strata evaluate CHECKPOINT --backend gateway``: a split's metrics through the whole service (torch-free).

The split's videos and captions are indexed into the running gateway (an upsert by id, so a rerun adds nothing),
then every de-duplicated caption is asked as a text query and every video as a caption query, each returning
every candidate it re-ranked. The depth is the same N in both directions with ``--depth N``; unset, every request
carries 0 and the gateway resolves each direction's own depth. A (video, caption) pair scored by either
direction's re-rank gets that score; a pair that neither first stage proposed ranks after every candidate
(pessimistically, behind all ties), so R@K for K up to the depth is exactly what users get, and MedR/MnR count
what the first stage missed as missed. The binary selections (HGR's hard negatives and, on SynthVTR, the
switch-roles sets) are scored with ScoreVideos: the true and the perturbed caption each against the video.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from common.errors import ConfigError


def every_candidate(depth: int, probe) -> int:
    """The top-k that returns every candidate a search re-ranks: ``depth`` when given; with 0, the gateway resolves
    the direction's depth, and one search at the gateway's defaults (``probe()``) tells how many candidates that
    is (asking that many hits leaves the depth as it is)."""
    return depth or probe().candidates


def evaluate_split_through_gateway(client, folder: Path, split: str, depth: int, expected: tuple[str, int],
                                   log=print) -> dict[str, Any]:
    """A split's metrics through ``client``'s gateway; ``depth`` 0: the gateway's depth of each direction."""
    from clients.service_cli import index_dataset
    from training.engine.evaluate import selection_sizes
    from training.metrics import dedupe_captions, retrieval_metrics
    from training.synth.generator import open_dataset
    from training.synth.selections import folder_selection_sets

    info = client.describe()
    if (info.model.name, info.model.version) != expected:
        raise ConfigError(f"the gateway serves {info.model.name} version {info.model.version}, not the checkpoint's "
                          f"export ({expected[0]} version {expected[1]}); activate that version first")
    index_dataset(client, folder, [split], log=log)
    names = open_dataset(folder).split(split).names
    captions, video_captions = dedupe_captions(open_dataset(folder).split(split).captions)
    video_row = {name: i for i, name in enumerate(names)}
    caption_col = {text: j for j, text in enumerate(captions)}
    levels = list(info.levels)
    scores = np.full((1 + len(levels), len(names), len(captions)), np.nan, np.float32)
    t2v = every_candidate(depth, lambda: client.search_videos(captions[0]))
    v2t = every_candidate(depth, lambda: client.search_captions(video_id=names[0]))
    for j, text in enumerate(captions):
        for hit in client.search_videos(text, top_k=t2v, candidate_depth=depth).hits:
            if hit.id in video_row:
                scores[:, video_row[hit.id], j] = [hit.score, *(l.score for l in hit.levels)]
    for i, name in enumerate(names):
        for hit in client.search_captions(video_id=name, top_k=v2t, candidate_depth=depth).hits:
            if hit.text in caption_col:
                scores[:, i, caption_col[hit.text]] = [hit.score, *(l.score for l in hit.levels)]
    proposed = float(np.isfinite(scores[0]).mean())
    floor = np.nanmin(scores, axis=(1, 2), keepdims=True) - 1.0
    scores = np.where(np.isnan(scores), floor, scores)
    result = {"split": split, "videos": len(names), "captions": len(captions),
              "candidates": {"t2v": t2v, "v2t": v2t}, "pairs_scored": proposed,
              "fused": retrieval_metrics(scores[0], video_captions),
              "levels": {name: retrieval_metrics(scores[1 + k], video_captions) for k, name in enumerate(levels)}}
    negatives = folder_selection_sets(folder, split)
    if negatives:
        result["binary_selection"] = binary_selection_through_gateway(client, negatives, log)
        result["binary_selection_sizes"] = selection_sizes(negatives)
    return result


def binary_selection_through_gateway(client, negatives: dict[str, list[tuple[str, str, str]]], log=print
                                     ) -> dict[str, float]:
    """The binary selections scored by the service: each caption against its video with ScoreVideos."""
    from training.engine.evaluate import selection_accuracy

    def score(videos, positives, perturbed):
        return ([client.score_videos(text, [video]).hits[0].score for video, text in zip(videos, positives)],
                [client.score_videos(text, [video]).hits[0].score for video, text in zip(videos, perturbed)])

    log(f"binary selection through the gateway: {sum(map(len, negatives.values()))} pairs, two ScoreVideos calls "
        f"each")
    return selection_accuracy(negatives, score)


def checkpoint_train_config(checkpoint: str | Path):
    """(metadata, TrainConfig) of a checkpoint: what it is and the data it was trained on."""
    from common.config import from_dict
    from common.errors import read_json_file
    from export.versions import CHECKPOINT_META
    from training.engine.config import TrainConfig

    meta = read_json_file(Path(checkpoint) / CHECKPOINT_META, "checkpoint metadata")
    if not meta.get("train_config"):
        raise ConfigError(f"{checkpoint}: no training config recorded; cannot tell which data it expects")
    return meta, from_dict(TrainConfig, meta["train_config"], where=f"{checkpoint}/{CHECKPOINT_META}")


def evaluate_checkpoint_through_gateway(checkpoint: str | Path, client, repo: Path, data: str | None = None,
                                        splits: list[str] | None = None, depth: int = 0, log=print) -> dict[str, Any]:
    """Every split's metrics through ``client``'s gateway, which must serve the checkpoint's exported version;
    ``depth`` 0: the gateway's depth of each direction."""
    from export.versions import checkpoint_version
    from training.synth.generator import open_dataset

    meta, config = checkpoint_train_config(checkpoint)
    folder = Path(data).resolve() if data else config.data.resolved_path()
    splits = list(splits or config.data.test_splits)
    available = open_dataset(folder).splits
    unknown = [s for s in splits if s not in available]
    if unknown:
        raise ConfigError(f"{folder} has no split {', '.join(map(repr, unknown))}; it has {', '.join(available)}")
    expected = checkpoint_version(checkpoint, repo)
    results = {"checkpoint": str(checkpoint), "backend": "gateway", "model": meta["name"], "gateway": client.url,
               "splits": {}}
    for split in splits:
        result = evaluate_split_through_gateway(client, folder, split, depth, expected, log)
        results["splits"][split] = result
        found = result["candidates"]
        log(f"{split}: {found['t2v']} candidates per text query, {found['v2t']} per caption query: "
            f"{100 * result['pairs_scored']:.1f}% of the split's pairs were scored by a first stage; the rest rank "
            f"after every candidate")
    return results
