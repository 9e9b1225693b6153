"""Tensor layout: the one declaration of every tower's and scorer's inputs and outputs.

Torch-free. Export, Triton's ``model.py`` adapters, the gateway and the clients import it; model code uses
the names defined here. A model's layout is built by its config (``config.layout()``) from the canonical
inputs below plus the outputs that model produces.

Conventions
-----------
* Axis names in ``shape`` that are strings are dynamic (``batch``, ``words``, ``frames``, ...); ints are fixed.
* Masks are float32 with 1 = valid, 0 = padding. Padded positions hold zeros.
* Role-graph spans are encoded as word-membership matrices: ``verb_spans[b, v, w] = 1`` when word ``w``
  belongs to verb node ``v`` (likewise ``noun_spans``). ``noun_roles`` holds each noun node's role index in
  :data:`training.text.roles.ROLES`; ``noun_verb_edges[b, v, n] = 1`` when noun ``n`` is an argument of verb ``v``.
* Text tower outputs are named ``text_*`` and video tower outputs ``video_*``; the scorer takes exactly
  the model's text and video outputs (except the index views) as inputs.
* Every tower emits an index view (``text_index`` / ``video_index``): L2-normalised vectors whose inner
  product ranks candidates for first-stage search in Milvus.
* The scorer outputs ``score`` ``[texts, videos]`` (the fused score) and ``level_scores``
  ``[levels, texts, videos]`` in the order of ``ModelLayout.levels``; each level that attends over the video's
  frames from the caption's verb or noun nodes also outputs its attention, ``attention_<level>``
  ``[texts, videos, verbs | nouns, frames]``: the temporal evidence of a hit.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Union

Dim = Union[int, str]

TEXT_INDEX = "text_index"
VIDEO_INDEX = "video_index"
SCORE = "score"
LEVEL_SCORES = "level_scores"
# A level that attends a text node's frames also outputs that attention: ATTENTION_PREFIX + the level's name.
ATTENTION_PREFIX = "attention_"
NODE_AXES = ("verbs", "nouns")   # the text node axes a level can attend from
# Training batches only (data.role_switch_negatives): the role-switched twins' text inputs carry this prefix,
# and SWITCHED_INDEX [S] says which pair of the batch each twin belongs to.
SWITCHED_PREFIX = "switched_"
SWITCHED_INDEX = "switched_index"


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name: "float32" or "int64"
    shape: tuple[Dim, ...]
    doc: str = ""

    @property
    def dynamic_axes(self) -> dict[int, str]:
        return {i: d for i, d in enumerate(self.shape) if isinstance(d, str)}

    def with_shape(self, *shape: Dim) -> "TensorSpec":
        return dataclasses.replace(self, shape=tuple(shape))


@dataclass(frozen=True)
class TowerLayout:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)

    def spec(self, name: str) -> TensorSpec:
        for t in self.inputs + self.outputs:
            if t.name == name:
                return t
        raise KeyError(name)


@dataclass(frozen=True)
class ModelLayout:
    model: str
    levels: tuple[str, ...]
    text: TowerLayout
    video: TowerLayout
    scorer: TowerLayout

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @staticmethod
    def from_json(data: dict) -> "ModelLayout":
        def tower(d: dict) -> TowerLayout:
            return TowerLayout(
                inputs=tuple(TensorSpec(**{**t, "shape": tuple(t["shape"])}) for t in d["inputs"]),
                outputs=tuple(TensorSpec(**{**t, "shape": tuple(t["shape"])}) for t in d["outputs"]),
            )

        return ModelLayout(
            model=data["model"],
            levels=tuple(data["levels"]),
            text=tower(data["text"]),
            video=tower(data["video"]),
            scorer=tower(data["scorer"]),
        )

    @property
    def attentions(self) -> dict[str, str]:
        """Each level whose scorer outputs its attention over frames -> the text node axis it attends from."""
        return {spec.name[len(ATTENTION_PREFIX):]: str(spec.shape[2]) for spec in self.scorer.outputs
                if spec.name.startswith(ATTENTION_PREFIX)}

    def signature(self) -> str:
        """A stable string of names, dtypes and shapes: two versions of one Triton model must share it."""
        return json.dumps(self.to_json(), sort_keys=True)


# Each ragged axis and the canonical input mask that says how much of it an item uses (a valid prefix).
AXIS_MASKS = {"words": "word_mask", "verbs": "verb_mask", "nouns": "noun_mask", "frames": "frame_mask"}

# Levels scored from the caption's verb or noun nodes, by the ending of the level's name (``action``,
# ``local_action``, ...): a caption with no such node scores that level as the model defines it for an empty set.
LEVEL_NODE_MASKS = {"action": "verb_mask", "entity": "noun_mask"}


def empty_levels(levels: tuple[str, ...], text_inputs: dict, item: int) -> tuple[bool, ...]:
    """Which of ``levels`` had no text node for caption ``item`` of a batch of canonical text inputs."""
    empty = {suffix: float(text_inputs[mask][item].sum()) == 0.0 for suffix, mask in LEVEL_NODE_MASKS.items()}
    return tuple(any(level.endswith(suffix) and gone for suffix, gone in empty.items()) for level in levels)


# ---- canonical inputs (the only text and video inputs any model may take) -------------------------------
B, W, V, N, T, R = "batch", "words", "verbs", "nouns", "frames", "regions"

TEXT_INPUTS: dict[str, TensorSpec] = {
    t.name: t
    for t in (
        TensorSpec("word_feats", "float32", (B, W, "word_dim"), "frozen MiniLM word features (sub-tokens mean-pooled onto words)"),
        TensorSpec("word_ids", "int64", (B, W), "vocabulary ids, for the learned word-embedding input"),
        TensorSpec("word_mask", "float32", (B, W), "1 for a real word"),
        TensorSpec("sent_feat", "float32", (B, "sent_dim"), "MiniLM sentence embedding"),
        TensorSpec("verb_spans", "float32", (B, V, W), "word membership of each verb node"),
        TensorSpec("verb_mask", "float32", (B, V), "1 for a real verb node"),
        TensorSpec("noun_spans", "float32", (B, N, W), "word membership of each noun-phrase node"),
        TensorSpec("noun_mask", "float32", (B, N), "1 for a real noun node"),
        TensorSpec("noun_roles", "int64", (B, N), "role index of each noun node (training.text.roles.ROLES)"),
        TensorSpec("noun_verb_edges", "float32", (B, V, N), "1 where noun n is an argument of verb v"),
    )
}

VIDEO_INPUTS: dict[str, TensorSpec] = {
    t.name: t
    for t in (
        TensorSpec("frame_feats", "float32", (B, T, "frame_dim"), "frame features, sampled and zero-padded"),
        TensorSpec("frame_mask", "float32", (B, T), "1 for a real frame"),
        TensorSpec("region_feats", "float32", (B, T, R, "region_dim"), "detector region features per frame"),
    )
}


def text_input(name: str, **fixed: int) -> TensorSpec:
    """A canonical text input with its named feature sizes fixed, e.g. ``text_input('word_feats', word_dim=384)``."""
    return _fix(TEXT_INPUTS[name], fixed)


def video_input(name: str, **fixed: int) -> TensorSpec:
    return _fix(VIDEO_INPUTS[name], fixed)


def _fix(spec: TensorSpec, fixed: dict[str, int]) -> TensorSpec:
    shape = tuple(fixed.get(d, d) if isinstance(d, str) else d for d in spec.shape)
    leftover = [d for d in shape if isinstance(d, str) and d.endswith("_dim")]
    if leftover:
        raise ValueError(f"{spec.name}: feature size(s) {leftover} must be fixed")
    return spec.with_shape(*shape)


def build_layout(
    model: str,
    levels: tuple[str, ...],
    text_inputs: tuple[TensorSpec, ...],
    text_outputs: tuple[TensorSpec, ...],
    video_inputs: tuple[TensorSpec, ...],
    video_outputs: tuple[TensorSpec, ...],
    attentions: tuple[tuple[str, str], ...] = (),
) -> ModelLayout:
    """Assemble a model's layout; the scorer's inputs are the towers' outputs minus the index views.
    ``attentions``: (level, node axis) of each level whose scorer outputs its attention over the frames."""
    for t in text_outputs:
        if not t.name.startswith("text_"):
            raise ValueError(f"text output {t.name!r} must start with 'text_'")
    for t in video_outputs:
        if not t.name.startswith("video_"):
            raise ValueError(f"video output {t.name!r} must start with 'video_'")
    if TEXT_INDEX not in {t.name for t in text_outputs} or VIDEO_INDEX not in {t.name for t in video_outputs}:
        raise ValueError("both towers must output their index view")
    # The scorer scores every text of one batch against every video of another: rename the batch axes.
    scorer_inputs = tuple(
        t.with_shape(*(("texts" if d == B else d) for d in t.shape)) for t in text_outputs if t.name != TEXT_INDEX
    ) + tuple(
        t.with_shape(*(("videos" if d == B else d) for d in t.shape)) for t in video_outputs if t.name != VIDEO_INDEX
    )
    scorer_outputs = (
        TensorSpec(SCORE, "float32", ("texts", "videos"), "fused score"),
        TensorSpec(LEVEL_SCORES, "float32", (len(levels), "texts", "videos"), "score of each level, in `levels` order"),
    )
    for level, axis in attentions:
        if level not in levels or axis not in NODE_AXES:
            raise ValueError(f"attention of {level!r} from {axis!r}: the level must be one of {levels} and the axis "
                             f"one of {NODE_AXES}")
        scorer_outputs += (TensorSpec(ATTENTION_PREFIX + level, "float32", ("texts", "videos", axis, "frames"),
                                      f"{level}: each text node's attention over the video's frames (0 on padding)"),)
    return ModelLayout(
        model=model,
        levels=tuple(levels),
        text=TowerLayout(tuple(text_inputs), tuple(text_outputs)),
        video=TowerLayout(tuple(video_inputs), tuple(video_outputs)),
        scorer=TowerLayout(scorer_inputs, scorer_outputs),
    )
