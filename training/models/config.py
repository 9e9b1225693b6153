"""Config dataclasses shared by every model of the zoo (torch-free)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from common.layout import TensorSpec, text_input


@dataclass(frozen=True)
class LossConfig:
    margin: float = 0.2                 # hinge margin (HGR/HANet 0.2, MCSAN 0.25)
    max_violation: bool = True          # hardest in-batch negative (VSE++); False sums over all negatives
    same_video_positive: bool = False   # True: other captions of the same video are not negatives
    # Beyond the papers (issue 31), with data.role_switch_negatives: the hinge of each caption against its
    # role-switched twin, on the fused score, or on each of these levels' scores (a level's name of the model).
    twin_levels: tuple[str, ...] = ()
    twin_margin: float | None = None    # its margin (None: ``margin``)
    twin_weight: float = 1.0            # its weight beside the ranking loss

    def __post_init__(self) -> None:
        if self.twin_weight < 0 or (self.twin_margin is not None and self.twin_margin < 0):
            raise ValueError(f"twin_weight and twin_margin must be >= 0, got {self.twin_weight}, {self.twin_margin}")


# The role-graph inputs that ``training.models.common.graph.WordRoles`` reads besides the words, in its order.
WORD_ROLE_INPUTS = ("verb_spans", "verb_mask", "noun_spans", "noun_mask", "noun_roles")


# The role graph of HGR's text encoder (HGR, HANet, MCSAN): the inputs above plus the verb-noun edges, in its order.
ROLE_GRAPH_INPUTS = WORD_ROLE_INPUTS + ("noun_verb_edges",)


def word_role_inputs() -> tuple[TensorSpec, ...]:
    return tuple(text_input(name) for name in WORD_ROLE_INPUTS)


def role_graph_inputs() -> tuple[TensorSpec, ...]:
    return tuple(text_input(name) for name in ROLE_GRAPH_INPUTS)


def with_word_role_inputs(inputs: tuple[TensorSpec, ...], word_roles: bool) -> tuple[TensorSpec, ...]:
    """A text tower's inputs with, when ``word_roles`` is on, those of :func:`word_role_inputs` it lacks appended
    in their order: a tower that already reads the role graph (HANet, MCSAN) gets no input twice."""
    if not word_roles:
        return inputs
    have = {spec.name for spec in inputs}
    return inputs + tuple(spec for spec in word_role_inputs() if spec.name not in have)


@dataclass(frozen=True)
class TextInputConfig:
    """The canonical text input: frozen MiniLM word features, or learned embeddings over a vocabulary."""

    kind: Literal["minilm", "vocab"] = "minilm"
    word_dim: int = 384                 # MiniLM word-feature size, or the learned embedding size
    sent_dim: int = 384                 # MiniLM sentence embedding size (used by MCSAN's global level)
    vocab_size: int = 0                 # kind == "vocab": set from the training captions' vocabulary

    def __post_init__(self) -> None:
        if self.kind == "vocab" and self.vocab_size <= 0:
            raise ValueError("text.vocab_size must be > 0 when text.kind is 'vocab'")

    def word_inputs(self) -> tuple[TensorSpec, ...]:
        """The word-level inputs a text tower takes: features or ids, plus the word mask."""
        words = text_input("word_feats", word_dim=self.word_dim) if self.kind == "minilm" else text_input("word_ids")
        return (words, text_input("word_mask"))


@dataclass(frozen=True)
class VideoInputConfig:
    frame_dim: int = 256                # frame feature size (2048 for ResNet-152 / real-like SynthVTR)
    region_dim: int = 256               # region feature size (2048 for Faster R-CNN features)
