"""MCSAN config (torch-free): global / entity / action / relationship levels, holographic global score."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from common.layout import (TEXT_INDEX, VIDEO_INDEX, ModelLayout, TensorSpec, build_layout, text_input,
                                    video_input)
from training.data.concepts import ConceptConfig
from training.models.config import (LossConfig, TextInputConfig, VideoInputConfig, role_graph_inputs,
                                    with_word_role_inputs)

ACTION_KERNELS = (2, 3, 5)  # Eq. 17: Conv1d kernel sizes of the action branches


@dataclass(frozen=True)
class MCSANConfig:
    text: TextInputConfig = field(default_factory=TextInputConfig)
    video: VideoInputConfig = field(default_factory=VideoInputConfig)
    loss: LossConfig = field(default_factory=lambda: LossConfig(margin=0.25))
    embed_dim: int = 256            # entity / action / relationship space (and the text graph's width)
    global_dim: int = 256           # global space: the video BiGRU's concatenated last states (2 x hidden)
    heads: int = 4                  # relationship self-attention heads (the paper does not say)
    ffn_dim: int = 512              # relationship encoder's position-wise FFN hidden size (Eq. 5 / 21)
    relation_layers: int = 1        # relationship encoder layers (Fig. 4 / 7 show one)
    graph_layers: int = 1           # relational GCN layers of the text entity/action encoder (HGR reference: 1)
    # K_e entities (batch["noun_labels"]), K_a actions ("verb_labels"), K_r SVO triplets ("triplet_labels").
    concepts: ConceptConfig = field(default_factory=lambda: ConceptConfig(num_verbs=512, num_nouns=1024,
                                                                          num_triplets=1024))
    attribute_weight: float = 0.1   # lambda_1 on the attribute (F)BCE losses
    kl_weight: float = 0.001        # lambda_2 on the KL distribution constraints
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    # Ablations of the paper's Table 3.
    relationship: bool = True               # False: MCSAN^-R, the relationship level removed
    distribution_constraints: bool = True   # False: MCSAN^-S, no KL constraints
    focal: bool = True                      # False: MCSAN^-L, plain BCE instead of focal BCE
    # The video's attribute targets: "video" the union over the video's captions (the paper), "caption" the
    # sampled caption's own (as Strata before). The caption's features always take the caption's own.
    video_attribute_targets: Literal["video", "caption"] = "video"
    # (F)BCE reduction: "batch" sums over the vocabulary and averages over the batch (Eq. 35); "mean" averages
    # over batch x vocabulary too, which weighs the attribute loss about 1 / |V| of the paper's.
    attribute_reduction: Literal["batch", "mean"] = "batch"
    # Not in the paper (a diagnostic): weight of a hinge on each level's own score, added to the fused hinge.
    level_rank_weight: float = 0.0
    # Beyond the paper (issue 31): each word inside a verb / noun-phrase span is multiplied by a learned embedding
    # of its role before the word BiGRU and the relationship encoder, as in ViSERN and VSR-Net
    # (common.graph.WordRoles); the graph's nodes keep theirs, the global level (the sentence embedding) is unchanged.
    word_roles: bool = False

    def __post_init__(self) -> None:
        if self.global_dim % 2:
            raise ValueError(f"global_dim is 2 x the BiGRU hidden size and must be even, got {self.global_dim}")
        if self.embed_dim % 2 or self.embed_dim % self.heads:
            raise ValueError(f"embed_dim {self.embed_dim} must be even and divisible by heads ({self.heads})")
        if self.level_rank_weight < 0:
            raise ValueError(f"level_rank_weight must be >= 0, got {self.level_rank_weight}")
        for key in ("relation_layers", "graph_layers"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")

    @property
    def levels(self) -> tuple[str, ...]:
        return ("global", "entity", "action") + (("relationship",) if self.relationship else ())

    @property
    def index_dim(self) -> int:
        return self.global_dim + (len(self.levels) - 1) * self.embed_dim

    def layout(self) -> ModelLayout:
        def vec(side: str, level: str) -> TensorSpec:
            dim = self.global_dim if level == "global" else self.embed_dim
            return TensorSpec(f"{side}_{level}", "float32", ("batch", dim), f"{level} level vector (not normalised)")

        index_doc = ("index view: weighted concatenation of the normalised level vectors; its inner product "
                     "approximates the fused score (the holographic global level is linearised)")
        return build_layout(
            model="mcsan",
            levels=self.levels,
            # The role graph already holds word_roles' inputs: the option adds none.
            text_inputs=with_word_role_inputs(
                self.text.word_inputs() + (text_input("sent_feat", sent_dim=self.text.sent_dim),) + role_graph_inputs(),
                self.word_roles),
            text_outputs=tuple(vec("text", level) for level in self.levels)
            + (TensorSpec(TEXT_INDEX, "float32", ("batch", self.index_dim), index_doc),),
            video_inputs=(video_input("frame_feats", frame_dim=self.video.frame_dim), video_input("frame_mask")),
            video_outputs=tuple(vec("video", level) for level in self.levels)
            + (TensorSpec(VIDEO_INDEX, "float32", ("batch", self.index_dim), index_doc),),
        )
