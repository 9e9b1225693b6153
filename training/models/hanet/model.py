"""HANet (Wu et al., ACM MM 2021): individual, local and global alignment plus concept-space (Jaccard) matching.

Builds on HGR: the text tower is HGR's (BiGRU, attention-pooled event, role graph reasoning with one GCN
layer), the video tower HGR's three frame maps, and every multi-component alignment HGR's local attentive
matching. Added: video and text concept classifiers with top-k MIL pooling, the SeMe module that turns the
most confident concepts into local video features, and the generalised Jaccard similarity of concepts.
"""
from __future__ import annotations

import torch
from torch import nn

from common.errors import ConfigError
from common.layout import TEXT_INDEX, VIDEO_INDEX
from training.losses import bce_loss, hinge_triplet_loss
from training.models.base import RetrievalModel, Tensors
from training.models.common.functional import (cosine_matrix, l2_normalize, mask_value, masked_mean,
                                               span_max_pool)
from training.models.common.legacy import InertLegacyKey
from training.models.common.matching import jaccard_matrix, local_attentive_match
from training.models.common.sequence import AttentionPool
from training.models.hanet.config import CONCEPT_LEVELS, HANetConfig
from training.models.hgr.model import HGRTextEncoder

MIL_FRACTION = 8  # video/sentence-level concept probability = mean of the top ceil(n / 8) frame/word probabilities


def descending_ranks(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Rank (0 = largest) of each position along dim 1 among the valid ones: scores [B, T, K], mask [B, T].

    Padded positions rank after every valid one. Written as sort + inverse permutation (scatter), so the
    selection of the top-k positions works for a different number of valid positions in every item and
    traces to ONNX with a dynamic T (``torch.topk`` would need k to be one constant for the whole batch).
    """
    masked = scores.masked_fill(mask.unsqueeze(-1) == 0, mask_value(scores.dtype))
    order = torch.argsort(masked, dim=1, descending=True)                                 # [B, T, K]
    positions = torch.arange(scores.shape[1], device=scores.device, dtype=scores.dtype)
    positions = positions.view(1, -1, 1).expand_as(scores)
    return torch.zeros_like(scores).scatter(1, order, positions)


def topk_mil_pool(probs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Multiple-instance pooling (HANet Eq. 8): per concept, the mean of the k largest probabilities over the
    valid positions, k = ceil(n / 8) for n valid positions (at least 1). probs [B, T, K], mask [B, T] -> [B, K].

    The paper writes floor(N / 8), which is 0 for N < 8; the reference code uses ceil, as here.
    """
    k = torch.ceil(mask.sum(dim=1) / MIL_FRACTION).clamp(min=1).view(-1, 1, 1)            # [B, 1, 1]
    keep = (descending_ranks(probs, mask) < k).to(probs.dtype) * mask.unsqueeze(-1)
    return (probs * keep).sum(dim=1) / k.view(-1, 1)


def top_concept_frame_probs(frame_probs: torch.Tensor, video_probs: torch.Tensor, count: int) -> torch.Tensor:
    """The frame-level probabilities [B, T, count] of the ``count`` most probable video-level concepts."""
    top = video_probs.topk(count, dim=1).indices                                          # [B, count]
    return frame_probs.gather(2, top.unsqueeze(1).expand(-1, frame_probs.shape[1], -1))


def weighted_frame_mean(weights: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Mean of the frames selected by 0/1 ``weights`` [B, T, C] -> [B, C, D]."""
    weights = weights / weights.sum(dim=1, keepdim=True).clamp(min=1)
    return weights.transpose(1, 2) @ frames


class ConceptClassifier(nn.Module):
    """Per-position concept probabilities sigmoid(BN(Conv1d(x))) over a sequence [B, T, D] -> [B, T, K].

    Padded positions of ``x`` must be zero, so the convolution sees the same zero padding alone or in a batch.
    In training mode BatchNorm's statistics include padded positions (as in the reference code); the exported
    towers run in eval mode, where BatchNorm is a fixed per-concept affine map. The convolution has no bias:
    BatchNorm subtracts the mean, so a bias before it never gets a gradient. The reference code (Roc-Ng/HANet,
    ``classifier_verb`` / ``classifier_noun`` in encoders/mlvideo.py) has that inert bias.
    """

    legacy_inert_keys = (InertLegacyKey("conv.bias", folded_into="norm.running_mean"),)

    def __init__(self, dim: int, num_concepts: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv1d(dim, num_concepts, kernel, padding=kernel // 2, bias=False)
        self.norm = nn.BatchNorm1d(num_concepts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.norm(self.conv(x.transpose(1, 2)))).transpose(1, 2)


class SqueezeExcitation(nn.Module):
    """The SeMe module's feature map: a kernel-1 convolution (a per-frame linear map) into another space,
    gated per channel by a Squeeze-and-Excitation block whose squeeze is the mean over the valid frames."""

    def __init__(self, dim: int, reduction: int):
        super().__init__()
        hidden = max(1, dim // reduction)
        self.project = nn.Linear(dim, dim)
        self.excite = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim), nn.Sigmoid())

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = self.project(x) * mask.unsqueeze(-1)
        return y * self.excite(masked_mean(y, mask)).unsqueeze(1)


class HANet(RetrievalModel):
    name = "hanet"

    def __init__(self, config: HANetConfig):
        super().__init__(config)
        d = config.embed_dim
        num_verbs, num_nouns = config.concepts.size("verbs"), config.concepts.size("nouns")
        self.text_encoder = HGRTextEncoder.from_config(config)
        self.input_dropout = nn.Dropout(config.input_dropout)  # on the frame features (the reference code: 0.2)
        # Text concept classifiers: Conv1d(k=1) over the word states (Eq. 3-4).
        self.text_verb_classifier = ConceptClassifier(d, num_verbs, 1)
        self.text_noun_classifier = ConceptClassifier(d, num_nouns, 1)
        # Video: FC per level (Eq. 5), concept classifiers Conv1d(k=5) verbs / Conv1d(k=1) nouns (Eq. 1-2).
        self.video_global_map = nn.Linear(config.video.frame_dim, d)
        self.video_action_map = nn.Linear(config.video.frame_dim, d)
        self.video_entity_map = nn.Linear(config.video.frame_dim, d)
        self.video_attention = AttentionPool(d)
        self.video_verb_classifier = ConceptClassifier(d, num_verbs, config.action_kernel)
        self.video_noun_classifier = ConceptClassifier(d, num_nouns, 1)
        self.action_se = SqueezeExcitation(d, config.se_reduction)
        self.entity_se = SqueezeExcitation(d, config.se_reduction)

    # -- towers ---------------------------------------------------------------------------------------------
    def encode_text(self, inputs: Tensors) -> dict[str, torch.Tensor]:
        mask = inputs["word_mask"]
        states, event, verbs, nouns = self.text_encoder(inputs)
        in_sentence = mask.unsqueeze(1)
        event = l2_normalize(event)
        out = {
            "text_global": event,
            # Individual level: the word states of each verb / noun phrase (max-pooled, before roles and graph).
            "text_verb_words": span_max_pool(states, inputs["verb_spans"] * in_sentence),
            "text_noun_words": span_max_pool(states, inputs["noun_spans"] * in_sentence),
            "text_verbs": verbs,
            "text_nouns": nouns,
            "text_verb_mask": inputs["verb_mask"],
            "text_noun_mask": inputs["noun_mask"],
            "text_verb_concepts": topk_mil_pool(self.text_verb_classifier(states), mask),
            "text_noun_concepts": topk_mil_pool(self.text_noun_classifier(states), mask),
            TEXT_INDEX: event,
        }
        return {name: out[name] for name in self.layout.text.output_names}

    def encode_video(self, inputs: Tensors) -> dict[str, torch.Tensor]:
        cfg = self.config
        feats, mask = self.input_dropout(inputs["frame_feats"]), inputs["frame_mask"]
        valid = mask.unsqueeze(-1)
        global_frames = self.video_global_map(feats) * valid
        actions = self.video_action_map(feats) * valid
        entities = self.video_entity_map(feats) * valid
        event = l2_normalize(self.video_attention(global_frames, mask))
        action_probs = self.video_verb_classifier(actions)                                 # [B, T, Ka]
        entity_probs = self.video_noun_classifier(entities)                                # [B, T, Ke]
        verb_concepts = topk_mil_pool(action_probs, mask)
        noun_concepts = topk_mil_pool(entity_probs, mask)
        out = {"video_global": event, "video_actions": actions, "video_entities": entities, "video_frame_mask": mask,
               "video_verb_concepts": verb_concepts, "video_noun_concepts": noun_concepts, VIDEO_INDEX: event}
        if cfg.local_alignment:
            out["video_local_actions"] = self._local_actions(actions, mask, action_probs, verb_concepts)
            out["video_local_entities"] = self._local_entities(entities, mask, entity_probs, noun_concepts)
        return {name: out[name] for name in self.layout.video.output_names}

    def _local_actions(self, actions, mask, frame_probs, video_probs) -> torch.Tensor:
        """SeMe for actions: per reliable action concept, the mean of the SE features over a clip of
        ``action_kernel`` frames centred on the concept's most confident frame -> [B, N_a, D].

        The paper does not say how the clip meets the ends of a video; here it is cut at them (only valid
        frames are averaged), which keeps the feature of a short video the same alone and padded.
        """
        features = self.action_se(actions, mask)
        probs = top_concept_frame_probs(frame_probs, video_probs, self.config.local_actions)     # [B, T, Na]
        ranks = descending_ranks(probs, mask)
        steps = torch.arange(probs.shape[1], device=probs.device, dtype=probs.dtype).view(1, -1, 1)
        centre = (steps * (ranks == 0).to(probs.dtype)).sum(dim=1, keepdim=True)                  # [B, 1, Na]
        clip = ((steps - centre).abs() <= self.config.action_kernel // 2).to(probs.dtype) * mask.unsqueeze(-1)
        return weighted_frame_mean(clip, features)

    def _local_entities(self, entities, mask, frame_probs, video_probs) -> torch.Tensor:
        """SeMe for entities: per reliable entity concept, the mean of the SE features of its
        ``entity_frames`` most confident frames (not necessarily adjacent; fewer if the video is shorter)."""
        features = self.entity_se(entities, mask)
        probs = top_concept_frame_probs(frame_probs, video_probs, self.config.local_entities)    # [B, T, Ne]
        chosen = (descending_ranks(probs, mask) < self.config.entity_frames).to(probs.dtype) * mask.unsqueeze(-1)
        return weighted_frame_mean(chosen, features)

    # -- scorer ---------------------------------------------------------------------------------------------
    def score(self, text: Tensors, video: Tensors) -> dict[str, torch.Tensor]:
        cfg = self.config
        levels, attentions = [], {}
        if cfg.individual_alignment:
            for level, nodes, mask, frames in (
                    ("individual_action", "text_verb_words", "text_verb_mask", "video_actions"),
                    ("individual_entity", "text_noun_words", "text_noun_mask", "video_entities")):
                score, attentions[level] = local_attentive_match(text[nodes], text[mask], video[frames],
                                                                 video["video_frame_mask"], return_attention=True)
                levels.append(score)
        if cfg.local_alignment:
            for nodes, mask, clips in (("text_verbs", "text_verb_mask", "video_local_actions"),
                                       ("text_nouns", "text_noun_mask", "video_local_entities")):
                local = video[clips]
                levels.append(local_attentive_match(text[nodes], text[mask], local, local.new_ones(local.shape[:2])))
        if cfg.global_alignment:
            levels.append(cosine_matrix(text["text_global"], video["video_global"]))
        levels.append(jaccard_matrix(text["text_verb_concepts"], video["video_verb_concepts"]))
        levels.append(jaccard_matrix(text["text_noun_concepts"], video["video_noun_concepts"]))
        alignment, concept = self._alignment_and_concept(torch.stack(levels))
        return self.scorer_output(levels, (alignment + concept) / 2, attentions)

    @staticmethod
    def _alignment_and_concept(level_scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """c_l = mean of the alignment scores (Eq. 19) and c_p = mean of the two Jaccard scores (Eq. 20)."""
        num_concept = len(CONCEPT_LEVELS)
        return level_scores[:-num_concept].mean(dim=0), level_scores[-num_concept:].mean(dim=0)

    def concept_predictions(self, text: Tensors, video: Tensors) -> dict[str, tuple[str, torch.Tensor]]:
        return {f"{side} {kind}s": (f"{kind}s", out[f"{side}_{kind}_concepts"])
                for side, out in (("text", text), ("video", video)) for kind in ("verb", "noun")}

    # -- training -------------------------------------------------------------------------------------------
    def loss(self, text: Tensors, video: Tensors, batch: Tensors) -> dict[str, torch.Tensor]:
        """Eq. 25: hinge(c_l) + eta * hinge(c_p) + mu * (BCE of the video and text concept probabilities),
        with the caption's multi-hot ``verb_labels`` / ``noun_labels`` as targets for both modalities. With
        ``concept_targets: ignore_other_captions`` (the reference) a concept that only the video's other
        captions mention (``*_video_labels``) is neither a positive nor a negative: the BCE leaves it out."""
        cfg = self.config
        keys = [("verb_labels", "verbs"), ("noun_labels", "nouns")]
        if cfg.concept_targets == "ignore_other_captions":
            keys += [("verb_video_labels", "verbs"), ("noun_video_labels", "nouns")]
        for key, kind in keys:
            if key not in batch:
                raise ConfigError(f"hanet needs batch[{key!r}] (concept labels); the data pipeline did not provide it")
            if batch[key].shape[-1] != cfg.concepts.size(kind):
                raise ConfigError(f"hanet: batch {key} has {batch[key].shape[-1]} concepts but the model's "
                                  f"concepts.num_{kind} is {cfg.concepts.size(kind)}")
        alignment, concept = self._alignment_and_concept(self.score(text, video)["level_scores"])
        video_ids = batch.get("video_ids")
        rank = hinge_triplet_loss(alignment, cfg.loss, video_ids)
        concept_rank = hinge_triplet_loss(concept, cfg.loss, video_ids)
        bce_video, bce_text = rank.new_zeros(()), rank.new_zeros(())
        for kind in ("verb", "noun"):
            targets = batch[f"{kind}_labels"]
            weight = None
            if cfg.concept_targets == "ignore_other_captions":
                weight = 1.0 - (batch[f"{kind}_video_labels"] - targets).clamp(min=0)
            bce_video = bce_video + bce_loss(video[f"video_{kind}_concepts"], targets, weight=weight)
            bce_text = bce_text + bce_loss(text[f"text_{kind}_concepts"], targets, weight=weight)
        total = rank + cfg.concept_rank_weight * concept_rank + cfg.concept_bce_weight * (bce_video + bce_text)
        return {"loss": total, "rank": rank, "concept_rank": concept_rank, "bce_video": bce_video, "bce_text": bce_text}
