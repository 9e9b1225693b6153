"""Write a SynthVTR dataset folder in HGR's feature-release format (see README.md next to this file).

Determinism: every video draws from its own ``numpy`` streams seeded by ``(seed, purpose, video index)``, so the
same config gives identical arrays, captions and splits wherever the folder is.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.config import to_dict
from common.errors import DataError
from training.data.hgr_format import HGRDataset, HGRFiles
from training.synth.captions import CaptionPlan, Rendered, render, sample_captions
from training.synth.config import VERSION, SynthConfig
from training.synth.features import RenderedVideo, Renderer
from training.synth.perturb import hard_negatives
from training.synth.world import VideoPlan, World

FRAME_FEATURES = "frame_feats.h5"
REGION_FEATURES = "region_feats.h5"
CAPTIONS = "ref_captions.json"
TRUE_ROLE_GRAPHS = "true_rolegraphs.json"
HARD_NEGATIVES = "hard_negatives.json"
ANNOTATIONS = "video_annotations.json"
CONFIG = "synth_config.json"            # written last: its presence marks a complete dataset
SPLITS = ("trn", "val", "tst", "tst_unseen")
TEST_SPLITS = ("tst", "tst_unseen")
DATASET_FILES = (FRAME_FEATURES, REGION_FEATURES, CAPTIONS, TRUE_ROLE_GRAPHS, HARD_NEGATIVES, ANNOTATIONS,
                 *(f"{s}_names.npy" for s in SPLITS), CONFIG)

# Where the HGR-format reader finds each file of a SynthVTR folder. ``role_graphs`` names the parser's output
# (written by the training pipeline, not here): models train on parsed graphs, never on the true ones.
SYNTH_FILES = HGRFiles(
    captions=CAPTIONS,
    role_graphs="sent2rolegraph.augment.json",
    split_names="{split}_names.npy",
    frame_features=FRAME_FEATURES,
    region_features=REGION_FEATURES,
)


def open_dataset(root: str | Path) -> HGRDataset:
    """A dataset folder: SynthVTR's flat layout where its config file is present, else HGR's release layout."""
    return HGRDataset(root, SYNTH_FILES if (Path(root) / CONFIG).is_file() else HGRFiles())


def video_name(index: int) -> str:
    return f"video{index}"


def assign_splits(config: SynthConfig) -> list[str]:
    """The split of each video index: a seeded permutation cut by the split sizes."""
    order = np.random.default_rng([config.seed, 2]).permutation(config.videos)
    split_of = [""] * config.videos
    start = 0
    for split, size in config.split_sizes().items():
        for i in order[start:start + size]:
            split_of[int(i)] = split
        start += size
    return split_of


def video_plan(world: World, config: SynthConfig, index: int, split: str) -> VideoPlan:
    """The scene and events of video ``index`` (its own stream: the same wherever it is drawn)."""
    lo, hi = config.events_per_video
    rng = np.random.default_rng([config.seed, 3, index])
    return world.sample_plan(rng, int(rng.integers(lo, hi + 1)), unseen=split == "tst_unseen")


def caption_plans(world: World, config: SynthConfig, index: int, plan: VideoPlan) -> list[CaptionPlan]:
    """The captions of video ``index`` (its own stream, apart from its features'), the full one first."""
    return sample_captions(world, plan, np.random.default_rng([config.seed, 5, index]), config.captions_per_video)


@dataclass(frozen=True)
class Item:
    """One video of a SynthVTR set as the generator writes it: its features, captions and what they show."""

    index: int
    plan: VideoPlan
    video: RenderedVideo
    caption_plans: list[CaptionPlan]
    captions: list[Rendered]            # sentence and true role graph of each caption, the full one first

    @property
    def name(self) -> str:
        return video_name(self.index)

    def annotation(self) -> dict[str, Any]:
        """The video's entry of ``video_annotations.json``."""
        return {
            "scene": self.plan.scene,
            "events": [list(e) for e in self.plan.events],
            "segments": [list(s) for s in self.video.segments],
            "captions": [{"events": [list(c.event) for c in cp.clauses], "scene": cp.scene is not None}
                         for cp in self.caption_plans],
        }


def render_item(world: World, renderer: Renderer, config: SynthConfig, index: int, split: str) -> Item:
    """Video ``index`` of the set (in ``split``): the same arrays and sentences whether the whole set is written
    or the video is drawn alone, since each draws from its own streams."""
    plan = video_plan(world, config, index, split)
    video = renderer.render(plan, np.random.default_rng([config.seed, 4, index]))
    captions = caption_plans(world, config, index, plan)
    return Item(index, plan, video, captions, [render(world, cp) for cp in captions])


def item_hard_negatives(world: World, config: SynthConfig, item: Item) -> dict[str, Rendered]:
    """The hard negatives of a test video's full caption, by perturbation name."""
    rng = np.random.default_rng([config.seed, 6, item.index])
    perturbed = hard_negatives(world, item.plan, item.caption_plans[0], rng)
    return {kind: render(world, plan) for kind, plan in perturbed.items()}


def read_config(out: Path) -> dict[str, Any] | None:
    """The ``synth_config.json`` of a folder, or None when the folder holds no complete SynthVTR dataset."""
    path = out / CONFIG
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON: {err}") from None
    if not isinstance(data, dict) or not str(data.get("version", "")).startswith("synthvtr"):
        raise DataError(f"{path}: not a SynthVTR config (no 'version' starting with 'synthvtr')")
    return data


def check_output(out: Path) -> None:
    """Refuse an ``out`` that is not a folder, or a non-empty folder holding neither a SynthVTR dataset nor the
    files of an interrupted generation."""
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} exists and is not a folder")
    if out.is_dir() and read_config(out) is None and not {p.name for p in out.iterdir()} <= set(DATASET_FILES):
        raise DataError(f"{out} is not empty and holds no SynthVTR dataset ({CONFIG} missing); "
                        "choose an empty or new folder")


def prepare_output(out: Path, config: SynthConfig) -> bool:
    """Make ``out`` ready to write; False when it already holds this exact dataset (nothing to do).

    An empty or missing folder is used as is; a SynthVTR folder (it has ``synth_config.json``) of another config
    or version is overwritten (its dataset files are removed first); any other non-empty folder is refused.
    """
    check_output(out)
    out.mkdir(parents=True, exist_ok=True)
    if not any(out.iterdir()):
        return True
    existing = read_config(out)
    if existing is None:  # an interrupted generation (check_output refused anything else): its marker is written last
        for path in out.iterdir():
            path.unlink()
        return True
    if existing.get("version") == VERSION and existing.get("config") == to_dict(config):
        return False
    for name in (CONFIG,) + DATASET_FILES:  # the marker first: an interrupted rewrite is never mistaken as done
        (out / name).unlink(missing_ok=True)
    return True


def generate(config: SynthConfig, out: str | Path, progress: bool = True) -> tuple[dict[str, Any], bool]:
    """Write the dataset; returns the contents of ``synth_config.json`` and whether anything was written
    (nothing is when ``out`` already holds this exact dataset).

    One process at a time prepares a folder: the others wait on a lock beside it (``.<folder>.lock``), then find
    the dataset written, so none removes the files of another's generation in progress."""
    import fcntl

    out = Path(out)
    check_output(out)   # a refused folder leaves no lock behind
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)   # released when the file closes, or the process ends
        return _generate(config, out, progress)


def _generate(config: SynthConfig, out: Path, progress: bool) -> tuple[dict[str, Any], bool]:
    import h5py
    from training.progress import progress as show_progress

    if not prepare_output(out, config):
        existing = read_config(out)
        assert existing is not None
        return existing, False
    world = World(config.seed, config.heldout_triples)
    renderer = Renderer(world, config)
    split_of = assign_splits(config)
    captions: dict[str, list[str]] = {}
    graphs: dict[str, Any] = {}
    negatives: dict[str, dict[str, str]] = {}
    annotations: dict[str, Any] = {}
    with h5py.File(out / FRAME_FEATURES, "w") as frames_h5, h5py.File(out / REGION_FEATURES, "w") as regions_h5:
        for index in show_progress(range(config.videos), config.videos, "synth", "video", enabled=progress):
            item = render_item(world, renderer, config, index, split_of[index])
            frames_h5.create_dataset(item.name, data=item.video.frames)
            regions_h5.create_dataset(item.name, data=item.video.regions)
            captions[item.name] = [c.sentence for c in item.captions]
            graphs.update((c.sentence, c.graph) for c in item.captions)
            annotations[item.name] = item.annotation()
            if split_of[index] in TEST_SPLITS:
                negatives[item.name] = {"positive": captions[item.name][0]}
                for kind, rendered in item_hard_negatives(world, config, item).items():
                    negatives[item.name][kind] = rendered.sentence
                    graphs[rendered.sentence] = rendered.graph

    for split in SPLITS:
        names = [video_name(i) for i in range(config.videos) if split_of[i] == split]
        if names:
            np.save(out / f"{split}_names.npy", np.array(names))
    _write_json(out / CAPTIONS, captions)
    _write_json(out / TRUE_ROLE_GRAPHS, graphs)
    _write_json(out / HARD_NEGATIVES, negatives)
    _write_json(out / ANNOTATIONS, annotations)
    summary = {
        "version": VERSION,
        "config": to_dict(config),
        "splits": config.split_sizes(),
        "heldout_triples": sorted([list(t) for t in world.heldout]),
        "files": {"frame_features": FRAME_FEATURES, "region_features": REGION_FEATURES, "captions": CAPTIONS,
                  "true_role_graphs": TRUE_ROLE_GRAPHS, "hard_negatives": HARD_NEGATIVES,
                  "annotations": ANNOTATIONS},
    }
    _write_json(out / CONFIG, summary)
    return summary, True


def _write_json(path: Path, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f)
