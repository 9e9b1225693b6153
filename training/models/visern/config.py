"""ViSERN config (torch-free): region graph reasoning, then dual-encoding multi-level encoders into one space."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from common.layout import TEXT_INDEX, VIDEO_INDEX, ModelLayout, TensorSpec, build_layout, video_input
from training.models.config import LossConfig, TextInputConfig, VideoInputConfig, with_word_role_inputs

LEVELS = ("global",)

# The paper's ablation table (Table 3): random-walk normalisation (ViSERN), symmetric normalisation
# (sym-nor), row-wise normalisation (row-nor), and no reasoning (no-rea: the mean of the raw regions).
# "random_walk" is D^-1 exp(R / sqrt(d)), a row softmax (the default; see RegionGraphReasoning.transition);
# "random_walk_relu" is the literal random walk on non-negative weights, D^-1 ReLU(R), so that Table 3's
# comparison can also be run without attention on both sides.
Reasoning = Literal["random_walk", "random_walk_relu", "symmetric", "row", "none"]


@dataclass(frozen=True)
class ViSERNConfig:
    text: TextInputConfig = field(default_factory=TextInputConfig)
    video: VideoInputConfig = field(default_factory=VideoInputConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    reasoning: Reasoning = "random_walk"
    graph_dim: int = 256                              # size of the phi / theta edge embeddings (paper silent)
    rnn_hidden: int = 256                             # BiGRU hidden size per direction (dual encoding: 512)
    conv_channels: int = 128                          # 1-D CNN filters per kernel size (dual encoding: 512)
    video_kernels: tuple[int, ...] = (2, 3, 4, 5)     # dual encoding's video kernel sizes
    text_kernels: tuple[int, ...] = (2, 3, 4)         # dual encoding's text kernel sizes
    embed_dim: int = 256                              # joint space D (paper 2048)
    dropout: float = 0.2                              # on the concatenated levels before the joint map
    # Beyond the paper (issue 31): each word inside a verb / noun-phrase span is multiplied by a learned embedding
    # of its role before the text encoder, HGR's role awareness moved to the words (common.graph.WordRoles).
    word_roles: bool = False

    def __post_init__(self) -> None:
        for name in ("graph_dim", "rnn_hidden", "conv_channels", "embed_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("video_kernels", "text_kernels"):
            kernels = getattr(self, name)
            if not kernels or any(k < 1 for k in kernels):
                raise ValueError(f"{name} must be a non-empty list of positive sizes, got {list(kernels)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def layout(self) -> ModelLayout:
        def vec(name: str, doc: str) -> TensorSpec:
            return TensorSpec(name, "float32", ("batch", self.embed_dim), doc)

        return build_layout(
            model="visern",
            levels=LEVELS,
            text_inputs=with_word_role_inputs(self.text.word_inputs(), self.word_roles),
            text_outputs=(vec("text_embed", "caption in the joint space (not normalised)"),
                          vec(TEXT_INDEX, "index view: the normalised joint vector")),
            # ViSERN uses only region features (36 per frame, no region mask); frames may be padded.
            video_inputs=(video_input("frame_mask"), video_input("region_feats", region_dim=self.video.region_dim)),
            video_outputs=(vec("video_embed", "video in the joint space (not normalised)"),
                           vec(VIDEO_INDEX, "index view: the normalised joint vector")),
        )
