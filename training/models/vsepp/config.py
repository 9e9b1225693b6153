"""VSE++ baseline config (torch-free): one vector per video and one per caption, cosine similarity."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from common.layout import TEXT_INDEX, VIDEO_INDEX, ModelLayout, TensorSpec, build_layout, video_input
from training.models.config import LossConfig, TextInputConfig, VideoInputConfig

LEVELS = ("global",)


@dataclass(frozen=True)
class VSEPPConfig:
    text: TextInputConfig = field(default_factory=TextInputConfig)
    video: VideoInputConfig = field(default_factory=VideoInputConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    embed_dim: int = 256                            # joint space size
    rnn_hidden: int = 256                           # BiGRU hidden size per direction
    text_pooling: Literal["last", "mean"] = "last"  # caption vector: final BiGRU states or masked mean of states

    def layout(self) -> ModelLayout:
        def vec(name: str, doc: str) -> TensorSpec:
            return TensorSpec(name, "float32", ("batch", self.embed_dim), doc)

        return build_layout(
            model="vsepp",
            levels=LEVELS,
            text_inputs=self.text.word_inputs(),
            text_outputs=(vec("text_global", "L2-normalised caption vector"), vec(TEXT_INDEX, "index view: the caption vector")),
            video_inputs=(video_input("frame_feats", frame_dim=self.video.frame_dim), video_input("frame_mask")),
            video_outputs=(vec("video_global", "L2-normalised video vector"), vec(VIDEO_INDEX, "index view: the video vector")),
        )
