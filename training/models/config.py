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


# The role-graph inputs that ``training.models.common.graph.WordRoles`` reads besides the words, in its order.
WORD_ROLE_INPUTS = ("verb_spans", "verb_mask", "noun_spans", "noun_mask", "noun_roles")


def word_role_inputs() -> tuple[TensorSpec, ...]:
    return tuple(text_input(name) for name in WORD_ROLE_INPUTS)


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
