"""VSR-Net config (torch-free): global and relation branches, lambda-weighted sum of two cosines."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from common.layout import TEXT_INDEX, VIDEO_INDEX, ModelLayout, TensorSpec, build_layout, video_input
from training.models.config import LossConfig, TextInputConfig, VideoInputConfig, with_word_role_inputs

# Which video branches exist (the paper's Table 1): the full model, VG (global only), VR_st (relation only).
Branches = Literal["both", "global", "relation"]
# How the relation branch encodes regions (Table 1): VR_st (spatial then temporal Transformer), VR_s (spatial
# only), VR_t (temporal only, over the mean of regions), VR_m (mean of regions, no Transformer).
RelationEncoder = Literal["spatio_temporal", "spatial", "temporal", "mean"]


@dataclass(frozen=True)
class VSRNetConfig:
    text: TextInputConfig = field(default_factory=TextInputConfig)
    video: VideoInputConfig = field(default_factory=VideoInputConfig)
    loss: LossConfig = field(default_factory=lambda: LossConfig(max_violation=False))  # public code: margin 0.2
    embed_dim: int = 256            # d*: width of every Transformer and of F_v, F_r, F_t (paper 1024)
    layers: int = 1                 # L: blocks in each of the three Transformers (paper 4 MSR-VTT, 2 MSVD)
    heads: int = 4                  # attention heads (paper silent)
    mlp_dim: int = 512              # Transformer MLP hidden size (paper: 2048, see the paper preset's note)
    aggregation_hidden: int = 256   # hidden size of the attention-aware aggregation's scoring MLP
    aggregation_heads: int = 2      # its heads; each pools its own slice of channels (COOT)
    dropout: float = 0.1
    relation_weight: float = 0.5    # lambda in S = lambda cos(F_r, F_t) + (1 - lambda) cos(F_v, F_t)
    branches: Branches = "both"
    relation_encoder: RelationEncoder = "spatio_temporal"
    # The training objective. "per_space" (the public code): a hinge on each space's own cosine, weighted as in
    # the score, lambda L_relation + (1 - lambda) L_global; with loss.max_violation false, summed over all
    # in-batch negatives (Eq. 12). "fused": one hinge on the fused score (Strata before; a named option).
    objective: Literal["per_space", "fused"] = "per_space"
    # Beyond the paper (issue 31): each word inside a verb / noun-phrase span is multiplied by a learned embedding
    # of its role before the pointwise text map, HGR's role awareness moved to the words (common.graph.WordRoles).
    word_roles: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.relation_weight <= 1.0:
            raise ValueError(f"relation_weight must be in [0, 1], got {self.relation_weight}")
        for name, heads in (("heads", self.heads), ("aggregation_heads", self.aggregation_heads)):
            if heads < 1 or self.embed_dim % heads:
                raise ValueError(f"embed_dim {self.embed_dim} must be divisible by {name} ({heads})")
        if self.embed_dim % 2:
            raise ValueError(f"embed_dim must be even (sinusoidal positions), got {self.embed_dim}")
        if self.layers < 1:
            raise ValueError(f"layers must be >= 1, got {self.layers}")
        if self.branches == "global" and self.relation_encoder != "spatio_temporal":
            raise ValueError("relation_encoder only applies when the relation branch is used (branches 'both' or 'relation')")

    @property
    def levels(self) -> tuple[str, ...]:
        return {"both": ("relation", "global"), "global": ("global",), "relation": ("relation",)}[self.branches]

    def layout(self) -> ModelLayout:
        def vec(name: str, doc: str) -> TensorSpec:
            return TensorSpec(name, "float32", ("batch", self.embed_dim), doc)

        video_inputs, video_outputs = [], []
        if "global" in self.levels:
            video_inputs.append(video_input("frame_feats", frame_dim=self.video.frame_dim))
            video_outputs.append(vec("video_global", "F_v: global branch embedding (not normalised)"))
        video_inputs.append(video_input("frame_mask"))
        if "relation" in self.levels:
            video_inputs.append(video_input("region_feats", region_dim=self.video.region_dim))
            video_outputs.append(vec("video_relation", "F_r: relation branch embedding (not normalised)"))
        video_outputs.append(vec(VIDEO_INDEX, "index view: lambda norm(F_r) + (1 - lambda) norm(F_v); "
                                              "inner product with text_index == the fused score"))
        return build_layout(
            model="vsrnet",
            levels=self.levels,
            text_inputs=with_word_role_inputs(self.text.word_inputs(), self.word_roles),
            text_outputs=(vec("text_embed", "F_t: text embedding (not normalised)"),
                          vec(TEXT_INDEX, "index view: norm(F_t)")),
            video_inputs=tuple(video_inputs),
            video_outputs=tuple(video_outputs),
        )
