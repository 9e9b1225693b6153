"""HANet config (torch-free): sizes, concept vocabularies, and the alignment-level switches of HANet's Table 3."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from common.layout import TEXT_INDEX, VIDEO_INDEX, ModelLayout, TensorSpec, build_layout, video_input
from training.data.concepts import ConceptConfig
from training.models.config import (LossConfig, TextInputConfig, VideoInputConfig, role_graph_inputs,
                                    with_word_role_inputs)

ALIGNMENT_LEVELS = {  # switch -> the alignment scores it contributes to c_l (Eq. 19)
    "individual": ("individual_action", "individual_entity"),
    "local": ("local_action", "local_entity"),
    "global": ("global",),
}
CONCEPT_LEVELS = ("concept_action", "concept_entity")  # the Jaccard scores of c_p (Eq. 20)


@dataclass(frozen=True)
class HANetConfig:
    text: TextInputConfig = field(default_factory=TextInputConfig)
    video: VideoInputConfig = field(default_factory=VideoInputConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    embed_dim: int = 1024                # joint space D (also the BiGRU hidden size)
    # K_a = concepts.num_verbs action and K_e = concepts.num_nouns entity concepts (triplets are not used);
    # the data pipeline builds the vocabularies and the batch's verb_labels / noun_labels from this.
    concepts: ConceptConfig = field(default_factory=ConceptConfig)
    local_actions: int = 10              # N_a: reliable action concepts -> local action clips
    local_entities: int = 20             # N_e: reliable entity concepts -> local entity features
    action_kernel: int = 5               # Conv1d kernel of the video action classifier; also the clip length
    entity_frames: int = 3               # frames averaged per reliable entity concept
    se_reduction: int = 16               # Squeeze-and-Excitation channel reduction of the SeMe module
    gcn_layers: int = 1                  # HANet uses one GCN layer
    gcn_dropout: float = 0.5
    gcn_attention_dim: int = 0           # graph attention query/key width; 0 = embed_dim (the reference: D / 2)
    input_dropout: float = 0.2           # dropout on the word and frame inputs (the reference code: 0.2)
    # The concept BCE's targets: "ignore_other_captions" (the reference) leaves out the concepts that only the
    # video's other captions mention; "caption" counts them as negatives.
    concept_targets: Literal["ignore_other_captions", "caption"] = "ignore_other_captions"
    concept_rank_weight: float = 0.1     # eta: weight of the hinge loss on the concept (Jaccard) score
    concept_bce_weight: float = 0.01     # mu: weight of each concept BCE (video, text)
    individual_alignment: bool = True    # Table 3 switches: which alignment levels enter c_l
    local_alignment: bool = True
    global_alignment: bool = True
    # Beyond the paper (issue 31): each word inside a verb / noun-phrase span is multiplied by a learned embedding
    # of its role before the BiGRU, as in ViSERN and VSR-Net (common.graph.WordRoles); the graph's nodes keep theirs.
    word_roles: bool = False
    # Beyond the paper (issue 31): the event node also gathers from the role-aware verb and noun nodes in graph
    # reasoning (common.graph.RoleGraphEncoder), so the event vector (the index view) sees who does what.
    event_from_graph: bool = False

    def __post_init__(self) -> None:
        for key in ("embed_dim", "local_actions", "local_entities",
                    "action_kernel", "entity_frames", "se_reduction", "gcn_layers"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.action_kernel % 2 == 0:
            raise ValueError(f"action_kernel must be odd (a clip centred on a frame), got {self.action_kernel}")
        for count, kind in ((self.local_actions, "verbs"), (self.local_entities, "nouns")):
            if not self.concepts.is_auto(kind) and count > self.concepts.size(kind):
                raise ValueError(f"local_{'actions' if kind == 'verbs' else 'entities'} ({count}) cannot exceed "
                                 f"concepts.num_{kind} ({self.concepts.size(kind)})")
        if not 0.0 <= self.input_dropout < 1.0 or self.gcn_attention_dim < 0:
            raise ValueError(f"input_dropout must be in [0, 1) and gcn_attention_dim >= 0, got {self.input_dropout}, "
                             f"{self.gcn_attention_dim}")
        if not (self.individual_alignment or self.local_alignment or self.global_alignment):
            raise ValueError("at least one of individual_alignment, local_alignment, global_alignment must be true")

    @property
    def alignment_levels(self) -> tuple[str, ...]:
        on = {"individual": self.individual_alignment, "local": self.local_alignment, "global": self.global_alignment}
        return tuple(level for switch, levels in ALIGNMENT_LEVELS.items() if on[switch] for level in levels)

    def layout(self) -> ModelLayout:
        d, ka, ke = self.embed_dim, self.concepts.dim("verbs"), self.concepts.dim("nouns")

        def spec(name: str, shape: tuple, doc: str) -> TensorSpec:
            return TensorSpec(name, "float32", shape, doc)

        # Each tower outputs what the enabled levels score, plus the index view (the global vectors).
        individual, local = self.individual_alignment, self.local_alignment
        text_outputs = tuple(out for keep, out in (
            (self.global_alignment, spec("text_global", ("batch", d), "L2-normalised global (event) node after graph reasoning")),
            (individual, spec("text_verb_words", ("batch", "verbs", d), "individual level: word states max-pooled per verb")),
            (individual, spec("text_noun_words", ("batch", "nouns", d), "individual level: word states max-pooled per noun phrase")),
            (local, spec("text_verbs", ("batch", "verbs", d), "local level: verb nodes after graph reasoning; padding zero")),
            (local, spec("text_nouns", ("batch", "nouns", d), "local level: noun nodes after graph reasoning; padding zero")),
            (individual or local, spec("text_verb_mask", ("batch", "verbs"), "1 for a real verb node")),
            (individual or local, spec("text_noun_mask", ("batch", "nouns"), "1 for a real noun node")),
            (True, spec("text_verb_concepts", ("batch", ka), "sentence-level action concept probabilities (top-k MIL)")),
            (True, spec("text_noun_concepts", ("batch", ke), "sentence-level entity concept probabilities (top-k MIL)")),
            (True, spec(TEXT_INDEX, ("batch", d), "index view: the L2-normalised global vector")),
        ) if keep)
        video_outputs = tuple(out for keep, out in (
            (self.global_alignment, spec("video_global", ("batch", d), "L2-normalised attention-pooled global embedding")),
            (individual, spec("video_actions", ("batch", "frames", d), "individual level: action frame embeddings; padding zero")),
            (individual, spec("video_entities", ("batch", "frames", d), "individual level: entity frame embeddings; padding zero")),
            (individual, spec("video_frame_mask", ("batch", "frames"), "1 for a real frame")),
            (local, spec("video_local_actions", ("batch", self.local_actions, d), "local level: one clip per reliable action concept")),
            (local, spec("video_local_entities", ("batch", self.local_entities, d), "local level: one feature per reliable entity concept")),
            (True, spec("video_verb_concepts", ("batch", ka), "video-level action concept probabilities (top-k MIL)")),
            (True, spec("video_noun_concepts", ("batch", ke), "video-level entity concept probabilities (top-k MIL)")),
            (True, spec(VIDEO_INDEX, ("batch", d), "index view: the L2-normalised global vector")),
        ) if keep)
        # The role graph already holds word_roles' inputs: the option adds none.
        text_inputs = with_word_role_inputs(self.text.word_inputs() + role_graph_inputs(), self.word_roles)
        return build_layout(
            model="hanet",
            levels=self.alignment_levels + CONCEPT_LEVELS,
            text_inputs=text_inputs,
            text_outputs=text_outputs,
            video_inputs=(video_input("frame_feats", frame_dim=self.video.frame_dim), video_input("frame_mask")),
            video_outputs=video_outputs,
            # the individual levels attend the caption's verb and noun nodes over frames; the local levels attend
            # over concept clips, not frames, and give no temporal evidence
            attentions=(("individual_action", "verbs"), ("individual_entity", "nouns"))
            if self.individual_alignment else (),
        )
