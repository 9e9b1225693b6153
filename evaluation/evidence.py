"""Does a hit's temporal evidence mean something? Measured on SynthVTR, whose generator knows which frames show
which event (``video_annotations.json``: each video's events and the frame segment of each, each caption's events).

The cases: every video of the split with at least two events (each in its own segment), with each of its captions
that names exactly one of them and whose parse has exactly one verb node. For each, the frame that verb node
weighs most in the model's own attention at the level that attends verbs over frames (HGR's ``action``: the
``attention_action`` scorer output a hit's evidence carries) is a hit when it falls inside the named event's
segment. Chance is the segment's share of the video's sampled frames: what a frame drawn at random would score.
The control shuffles each node's weights across the video's frames (a fixed seed): it must fall to chance, or the
figure would not be about the attention. The claim holds at twice chance and at least 60%.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from common.layout import ATTENTION_PREFIX
from common.errors import ConfigError
from training.data.sampling import frame_indices

AT_LEAST_CHANCE_TIMES, AT_LEAST = 2.0, 0.60


@dataclass(frozen=True)
class Case:
    video: str
    caption: str
    segment: tuple[int, int]   # [start, end) of the named event, in the video's frames
    frames: int                # the video's frames before sampling


def cases(data, split: str) -> list[Case]:
    """The split's (video, caption naming one of its several events) pairs, with that event's segment."""
    from training.synth.generator import ANNOTATIONS, CAPTIONS

    root = data.root
    if not (root / ANNOTATIONS).is_file():
        raise ConfigError(f"{root} has no {ANNOTATIONS}: the proof needs a SynthVTR set (strata synth), which knows "
                          f"which frames show which event")
    annotations = json.loads((root / ANNOTATIONS).read_text())
    captions = json.loads((root / CAPTIONS).read_text())
    found = []
    for name in data.eval_set(split)[0]:
        video = annotations[name]
        if len(video["events"]) < 2:
            continue
        for text, caption in zip(captions[name], video["captions"]):
            if len(caption["events"]) != 1 or len(data.graphs[text].verb_spans) != 1:
                continue
            event = video["events"].index(caption["events"][0])
            found.append(Case(name, text, tuple(video["segments"][event]), video["segments"][-1][1]))
    return found


def attention_of(runner, data, level: str, chosen: Sequence[Case], batch: int) -> list[np.ndarray]:
    """Each case's verb node attention over its video's sampled frames (the valid ones), from the runner's scorer."""
    weights = []
    for start in range(0, len(chosen), batch):
        part = chosen[start:start + batch]
        text = runner.encode_text(data.text_batch([c.caption for c in part]))
        videos = data.video_batch([c.video for c in part])
        attention = runner.score(text, runner.encode_video(videos))[ATTENTION_PREFIX + level]   # [t, v, N, T]
        for k in range(len(part)):
            valid = int(videos["frame_mask"][k].sum())
            weights.append(np.asarray(attention[k, k, 0, :valid], np.float64))   # the one verb node, pair (k, k)
    return weights


def evidence_proof(runner, data, split: str, level: str = "action", seed: int = 0, batch: int = 64) -> dict:
    """The figures of the proof: cases, the share whose top-weighted frame is in the named event, chance, and the
    shuffled control."""
    chosen = cases(data, split)
    if not chosen:
        raise ConfigError(f"{data.root} split {split!r} has no video with two or more events and a caption naming "
                          f"one of them: the proof has nothing to measure")
    weights = attention_of(runner, data, level, chosen, batch)
    rng = np.random.default_rng(seed)
    hits, control, chance = [], [], []
    for case, w in zip(chosen, weights):
        original = frame_indices(case.frames, len(w))   # which of the video's frames each sampled frame is
        if len(original) != len(w):
            raise ConfigError(f"{case.video}: {len(w)} sampled frames, but its annotation says {case.frames} frames "
                              f"sampled to {len(original)}: the data and the annotations disagree")
        inside = (original >= case.segment[0]) & (original < case.segment[1])
        hits.append(bool(inside[int(np.argmax(w))]))
        control.append(bool(inside[int(np.argmax(rng.permutation(w)))]))
        chance.append(float(inside.mean()))
    rate, base = float(np.mean(hits)), float(np.mean(chance))
    return {"split": split, "level": level, "cases": len(chosen), "videos": len({c.video for c in chosen}),
            "top_frame_in_event": rate, "chance": base, "times_chance": rate / base,
            "control_shuffled": float(np.mean(control)),
            "holds": rate >= AT_LEAST_CHANCE_TIMES * base and rate >= AT_LEAST}


def describe(result: dict) -> str:
    return (f"{result['split']}: {result['cases']} captions naming one of the several events of {result['videos']} "
            f"videos; the verb node's top-weighted frame ({result['level']} level) falls in the named event for "
            f"{100 * result['top_frame_in_event']:.1f}% against chance {100 * result['chance']:.1f}% "
            f"({result['times_chance']:.2f}x); weights shuffled across frames: {100 * result['control_shuffled']:.1f}%. "
            f"Holds (>= {AT_LEAST_CHANCE_TIMES:g}x chance and >= {100 * AT_LEAST:.0f}%): "
            f"{'yes' if result['holds'] else 'no'}")


def verb_level(layout, level: str | None, where: str) -> str:
    """``level`` if it attends verbs over frames, else the model's first that does; refused where none does."""
    attending = [name for name, axis in layout.attentions.items() if axis == "verbs"]
    if level is None and attending:
        return attending[0]
    if level is None:
        raise ConfigError(f"{where}: {layout.model} has no level that attends verbs over frames, so its hits carry "
                          f"no temporal evidence to prove")
    if level not in attending:
        raise ConfigError(f"{where}: level {level!r} does not attend verbs over frames; those that do: "
                          f"{', '.join(attending) or 'none'}")
    return level


def prove(checkpoint: str, data: str | None = None, split: str = "tst", level: str | None = None) -> dict:
    """:func:`evidence_proof` of a checkpoint in PyTorch (the model code its exported scorer is parity-checked
    against) on its own data, or ``data``; ``level`` defaults to the model's level that attends verbs over frames."""
    from dataclasses import replace
    from pathlib import Path

    from training.checkpoint import load_model_checkpoint, read_meta
    from training.engine.data import check_dataset, prepare_data
    from training.engine.runner import TorchRunner
    from training.engine.session import checkpoint_train_config

    config = checkpoint_train_config(checkpoint, read_meta(checkpoint))
    data_config = config.data if data is None else replace(config.data, path=str(Path(data).resolve()), synth=None)
    check_dataset(data_config, [split])
    model = load_model_checkpoint(checkpoint)
    level = verb_level(model.layout, level, str(checkpoint))
    prepared = prepare_data(data_config, config.model, config.preset, config.model_overrides)
    return {"checkpoint": str(checkpoint), **evidence_proof(TorchRunner(model), prepared, split, level)}
