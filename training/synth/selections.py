"""Switch-roles selection sets large enough to be believed, on ``val`` and both test splits, for existing videos.

``hard_negatives.json`` holds one switch-roles pair per test video that has a switchable event (89 on ``tst``,
113 on ``tst_unseen`` at the default size), so one seed's figure moves by about 5 points. These sets keep the
videos and draw many pairs per such video, each a true caption and its twin with one event's agent and patient
exchanged (false for the video; the switch is a valid event, so plausibility alone cannot reject it):

* ``switch_roles_many``: paraphrases in the generator's own wording (``captions.sample_caption``: partial
  descriptions, voices, synonyms, scene phrases), switched as ``perturb.switch_roles`` switches the positive.
* ``switch_roles_heldout``: sentences in constructions the generator never uses (``phrasings.py``).

Nothing is stored: the sets are replayed from a folder's ``synth_config.json`` (the generator version must match,
as for training), each video from its own stream ``(seed, 7 or 8, video index)``, so every checkpoint trained on
the folder, old or new, is scored on the same items. Bump :data:`VERSION` whenever the same folder would give
other items.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from common.errors import DataError, read_json_file

from training.synth.captions import render, sample_caption
from training.synth.config import SynthConfig
from training.synth.generator import assign_splits, video_name, video_plan
from training.synth.perturb import switch_roles
from training.synth.phrasings import CONSTRUCTIONS, Phrasing, joins_for, write
from training.synth.world import VideoPlan, World

VERSION = "selections-1"
SELECTION_SPLITS = ("val", "tst", "tst_unseen")
MANY, HELDOUT = "switch_roles_many", "switch_roles_heldout"

Item = tuple[str, str, str]   # (video, true caption, role-switched twin)


@dataclass(frozen=True)
class SelectionConfig:
    pairs_per_video: int = 12    # per video with a switchable event, in each set (12 x 89 = 1068 on tst)
    tries_per_pair: int = 50     # draws per wanted pair before a video with few distinct wordings gives fewer

    def __post_init__(self) -> None:
        if self.pairs_per_video < 1 or self.tries_per_pair < 1:
            raise ValueError(f"pairs_per_video and tries_per_pair must be >= 1, got {self.pairs_per_video}, "
                             f"{self.tries_per_pair}")


def selection_sets(config: SynthConfig, selection: SelectionConfig = SelectionConfig(),
                   splits: tuple[str, ...] = SELECTION_SPLITS) -> dict[str, dict[str, list[Item]]]:
    """{split: {set name: [(video, true caption, twin), ...]}} for a SynthVTR config's videos."""
    world = World(config.seed, config.heldout_triples)
    split_of = assign_splits(config)
    out: dict[str, dict[str, list[Item]]] = {split: {MANY: [], HELDOUT: []} for split in splits}
    for index, split in enumerate(split_of):
        if split not in out:
            continue
        video = video_plan(world, config, index, split)
        if not any(world.swappable(e) for e in video.events):
            continue
        name = video_name(index)
        for kind, purpose, draw in ((MANY, 7, _generator_pair), (HELDOUT, 8, _heldout_pair)):
            rng = np.random.default_rng([config.seed, purpose, index])
            pairs = _distinct(lambda: draw(world, video, rng), selection)
            out[split][kind] += [(name, positive, twin) for positive, twin in pairs]
    return out


def _distinct(draw: Callable[[], tuple[str, str] | None], selection: SelectionConfig) -> list[tuple[str, str]]:
    """Up to ``pairs_per_video`` pairs with distinct true captions."""
    pairs: dict[str, str] = {}
    for _ in range(selection.pairs_per_video * selection.tries_per_pair):
        pair = draw()
        if pair is not None and pair[0] != pair[1]:
            pairs.setdefault(*pair)
            if len(pairs) == selection.pairs_per_video:
                break
    return list(pairs.items())


def _generator_pair(world: World, video: VideoPlan, rng: np.random.Generator) -> tuple[str, str] | None:
    plan = sample_caption(world, video, rng, full=False)
    twin = switch_roles(world, video, plan, rng)
    return None if twin is None else (render(world, plan).sentence, render(world, twin).sentence)


def _heldout_pair(world: World, video: VideoPlan, rng: np.random.Generator) -> tuple[str, str]:
    events = [k for k, e in enumerate(video.events) if world.swappable(e)]
    event = events[int(rng.integers(len(events)))]
    names = sorted(CONSTRUCTIONS)
    joins = joins_for(event)
    action = world.actions[video.events[event][0]]
    phrasing = Phrasing(
        event=event,
        construction=names[int(rng.integers(len(names)))],
        join=joins[int(rng.integers(len(joins)))],
        verb=int(rng.integers(len(action.verbs))),
        nouns=tuple((e, int(rng.integers(len(world.entities[e].nouns)))) for e in video.cast),
        scene_phrase=int(rng.integers(len(world.scenes[video.scene].phrases))),
    )
    return write(world, video, phrasing), write(world, video, phrasing, switch=True)


def read_hard_negatives(path: Path, split_of: Mapping[str, str]) -> dict[str, dict[str, list[Item]]]:
    """{split: {perturbation: [(video, true caption, perturbed caption), ...]}} of a ``hard_negatives.json``
    (``{video: {"positive": caption, perturbation: caption, ...}}``); ``split_of`` names each video's split.
    Empty when the file is missing."""
    if not path.is_file():
        return {}
    data = read_json_file(path)
    out: dict[str, dict[str, list[Item]]] = {}
    for video, captions in data.items():
        if video not in split_of or "positive" not in captions:
            raise DataError(f"{path}: entry {video!r} names no known video or has no 'positive' caption")
        for kind, perturbed in captions.items():
            if kind != "positive":
                out.setdefault(split_of[video], {}).setdefault(kind, []).append((video, captions["positive"], perturbed))
    return out


def replayed_sets(root: Path, split: str) -> dict[str, list[Item]]:
    """The switch-roles sets of a SynthVTR folder's split, replayed from its ``synth_config.json`` (empty for
    another folder or split); the non-empty ones."""
    from common.config import from_dict
    from training.synth.generator import CONFIG, read_config

    recorded = read_config(Path(root))
    if recorded is None or split not in SELECTION_SPLITS:
        return {}
    config = from_dict(SynthConfig, recorded["config"], where=str(Path(root) / CONFIG))
    return {kind: items for kind, items in selection_sets(config, splits=(split,))[split].items() if items}


def folder_selection_sets(root: Path, split: str) -> dict[str, list[Item]]:
    """Every binary-selection set of a dataset folder's split, as sentences: HGR's hard negatives (its file) and
    the switch-roles sets (:func:`replayed_sets`)."""
    from training.synth.generator import HARD_NEGATIVES, open_dataset

    dataset = open_dataset(root)
    split_of = {name: s for s in dataset.splits for name in dataset.split(s).names}
    return {**read_hard_negatives(Path(root) / HARD_NEGATIVES, split_of).get(split, {}), **replayed_sets(root, split)}
