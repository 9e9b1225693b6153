"""HGR config (torch-free): sizes, the three levels, and the ablation switches of HGR's Table 4."""
from __future__ import annotations

from dataclasses import dataclass, field

from common.layout import TEXT_INDEX, VIDEO_INDEX, ModelLayout, TensorSpec, build_layout, video_input
from training.models.config import (LossConfig, TextInputConfig, VideoInputConfig, role_graph_inputs,
                                    with_word_role_inputs)

LEVELS = ("event", "action", "entity")


@dataclass(frozen=True)
class HGRConfig:
    text: TextInputConfig = field(default_factory=TextInputConfig)
    video: VideoInputConfig = field(default_factory=VideoInputConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    embed_dim: int = 1024                # joint space of every level; also the BiGRU hidden size (text nodes live there)
    gcn_layers: int = 2                  # paper 2, reference code 1
    gcn_dropout: float = 0.5             # dropout on each GCN layer's context (reference code)
    gcn_attention_dim: int = 0           # graph attention query/key width; 0 = embed_dim (the reference: D / 2)
    input_dropout: float = 0.2           # dropout on the word and frame inputs (the reference code: 0.2)
    graph_attention: bool = True         # Table 4 "w/o graph attention": False = mean over neighbours
    role_awareness: bool = True          # Table 4 "w/o role awareness": False = no role embedding
    hierarchical_video: bool = True      # Table 4 "w/o hierarchical video": False = one video embedding for all levels
    # Beyond the paper (issue 31): each word inside a verb / noun-phrase span is multiplied by a learned embedding
    # of its role before the BiGRU, as in ViSERN and VSR-Net (common.graph.WordRoles); the graph's nodes keep theirs.
    word_roles: bool = False
    # Beyond the paper (issue 31): the event node also gathers from the role-aware verb and noun nodes in graph
    # reasoning (common.graph.RoleGraphEncoder), so the event vector (the index view) sees who does what.
    event_from_graph: bool = False

    def __post_init__(self) -> None:
        if self.embed_dim < 1:
            raise ValueError(f"embed_dim must be >= 1, got {self.embed_dim}")
        if self.gcn_layers < 1:
            raise ValueError(f"gcn_layers must be >= 1, got {self.gcn_layers}")
        for key in ("gcn_dropout", "input_dropout"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ValueError(f"{key} must be in [0, 1), got {getattr(self, key)}")
        if self.gcn_attention_dim < 0:
            raise ValueError(f"gcn_attention_dim must be >= 0 (0 = embed_dim), got {self.gcn_attention_dim}")

    def layout(self) -> ModelLayout:
        d = self.embed_dim

        def spec(name: str, shape: tuple, doc: str) -> TensorSpec:
            return TensorSpec(name, "float32", shape, doc)

        text_outputs = (
            spec("text_event", ("batch", d), "L2-normalised event (sentence) node after graph reasoning"),
            spec("text_verbs", ("batch", "verbs", d), "action (verb) nodes after graph reasoning; padding zero"),
            spec("text_verb_mask", ("batch", "verbs"), "1 for a real verb node"),
            spec("text_nouns", ("batch", "nouns", d), "entity (noun-phrase) nodes after graph reasoning; padding zero"),
            spec("text_noun_mask", ("batch", "nouns"), "1 for a real noun node"),
            spec(TEXT_INDEX, ("batch", d), "index view: the event vector"),
        )
        video_outputs = (
            spec("video_event", ("batch", d), "L2-normalised attention-pooled event embedding"),
            spec("video_actions", ("batch", "frames", d), "action-level frame embeddings; padding zero"),
            spec("video_entities", ("batch", "frames", d), "entity-level frame embeddings; padding zero"),
            spec("video_frame_mask", ("batch", "frames"), "1 for a real frame"),
            spec(VIDEO_INDEX, ("batch", d), "index view: the event vector"),
        )
        # The role graph already holds word_roles' inputs: the option adds none.
        text_inputs = with_word_role_inputs(self.text.word_inputs() + role_graph_inputs(), self.word_roles)
        return build_layout(
            model="hgr",
            levels=LEVELS,
            text_inputs=text_inputs,
            text_outputs=text_outputs,
            video_inputs=(video_input("frame_feats", frame_dim=self.video.frame_dim), video_input("frame_mask")),
            video_outputs=video_outputs,
            attentions=(("action", "verbs"), ("entity", "nouns")),
        )
