"""MCSAN (Nian et al., Mathematics 2022): four levels — global, entity, action, relationship.

Video: frame features F -> four residual branches ReLU(F + FC(F)) (Eq. 7-10); global = soft attention then a
BiGRU, last states concatenated (Eq. 11-15); entity = ReLU(Conv1d k=1) (Eq. 16); action = beta-weighted sum of
ReLU(Conv1d k=2,3,5) (Eq. 17); relationship = self-attention encoder with positions, mean-pooled (Eq. 18-22).
Text: global = the Sentence-BERT (MiniLM) sentence embedding through a projection (Eq. 1); entity / action =
HGR's relational role-graph GCN; relationship = self-attention encoder over the words (Eq. 2-6).
Score: global = sigmoid(FC(circular correlation)) (Eq. 23), the others cosine (Eq. 30-32), mean of all (Eq. 33).
Loss (Eq. 41): hinge + lambda_1 * (F)BCE of shared attribute heads on both modalities + lambda_2 * KL.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from common.layout import SCORE, TEXT_INDEX, VIDEO_INDEX
from training.losses import bce_loss, distribution_kl_loss, focal_bce_loss, hinge_triplet_loss
from training.models.base import RetrievalModel, Tensors
from training.models.common.functional import cosine_matrix, l2_normalize, masked_mean, masked_softmax, span_max_pool
from training.models.common.graph import RoleGraphEncoder, WordRoles
from training.models.common.sequence import MaskedBiGRU
from training.models.common.transformer import MaskedSelfAttention, sinusoidal_positions
from training.models.common.words import WordInput
from training.models.mcsan.config import ACTION_KERNELS, MCSANConfig

# Which batch labels each level's shared attribute head predicts.
LEVEL_KINDS = {"entity": "nouns", "action": "verbs", "relationship": "triplets"}
LEVEL_LABELS = {level: f"{kind[:-1]}_labels" for level, kind in LEVEL_KINDS.items()}  # the caption's own concepts
# Slope of the sigmoid at 0: the index view linearises sigmoid(x) ~ 1/2 + x/4.
SIGMOID_SLOPE = 0.25


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max over the valid steps: x [B, T, D], mask [B, T] -> [B, D] (zeros for an empty sequence)."""
    return span_max_pool(x, mask.unsqueeze(1)).squeeze(1)


def circulant(weight: torch.Tensor) -> torch.Tensor:
    """C [d, d] with C[i, j] = w[(j - i) mod d], so that for every pair
    ``sum_k w_k (v * t)_k = v . (t C^T)`` where ``(v * t)_k = sum_i v_i t_{(i + k) mod d}`` (Eq. 23's circular
    correlation). Scoring all Bt x Bv pairs is then one matrix product, with no FFT (not in ONNX opset 17)."""
    d = weight.shape[0]
    steps = torch.arange(d, device=weight.device)
    return weight[(steps.unsqueeze(0) - steps.unsqueeze(1)) % d]


class PostNormEncoderLayer(nn.Module):
    """Eq. 2-5: H^ = LayerNorm(SelfAttention(E) + E); H = LayerNorm(H^ + Linear(ReLU(Linear(H^))))."""

    def __init__(self, dim: int, heads: int, ffn_dim: int):
        super().__init__()
        self.attention = MaskedSelfAttention(dim, heads)
        self.attention_norm = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(), nn.Linear(ffn_dim, dim))
        self.ffn_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.attention_norm(self.attention(x, mask) + x)
        return self.ffn_norm(x + self.ffn(x))


class RelationshipEncoder(nn.Module):
    """Sequence [B, L, D_in] -> relationship vector [B, dim]: project, add sinusoidal positions, self-attention
    layers (padded keys masked), masked mean over the valid steps (Eq. 6 / 22)."""

    def __init__(self, input_dim: int, dim: int, heads: int, ffn_dim: int, layers: int):
        super().__init__()
        # The paper attends over the raw word (300-d) / frame (2048-d) features; a projection puts both
        # modalities in one dim so that their cosine (Eq. 32) is defined.
        self.project = nn.Linear(input_dim, dim)
        self.layers = nn.ModuleList(PostNormEncoderLayer(dim, heads, ffn_dim) for _ in range(layers))
        self.dim = dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.project(x) + sinusoidal_positions(x.shape[1], self.dim, x.device).to(x.dtype)
        for layer in self.layers:
            h = layer(h, mask)
        return masked_mean(h, mask)


class ActionConvs(nn.Module):
    """Eq. 17: sum_i beta_i ReLU(Conv1d_{k_i}(F)) per frame, k in (2, 3, 5), beta learned (init 1/3 each)."""

    def __init__(self, input_dim: int, dim: int):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(input_dim, dim, k) for k in ACTION_KERNELS)
        self.beta = nn.Parameter(torch.full((len(ACTION_KERNELS),), 1.0 / len(ACTION_KERNELS)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, D] with zeros at padded frames -> [B, T, dim]."""
        channels = x.transpose(1, 2)
        out = 0
        for i, conv in enumerate(self.convs):
            k = conv.kernel_size[0]
            # "same" length with explicit zero padding (k - 1 split left-heavy for even k): frames past an
            # item's end are zero inside a padded batch and alone, so the item's outputs agree either way.
            padded = F.pad(channels, ((k - 1) - (k - 1) // 2, (k - 1) // 2))
            out = out + self.beta[i] * torch.relu(conv(padded))
        return out.transpose(1, 2)


class MCSAN(RetrievalModel):
    def __init__(self, config: MCSANConfig):
        super().__init__(config)
        c, dv = config, config.video.frame_dim
        self.levels = c.levels
        local = [level for level in c.levels if level != "global"]
        # -- video
        self.video_branches = nn.ModuleDict({level: nn.Linear(dv, dv) for level in c.levels})
        self.video_attention = nn.Linear(dv, 1, bias=False)                    # W of Eq. 12
        self.video_rnn = MaskedBiGRU(dv, c.global_dim // 2, merge="concat")
        self.video_entity = nn.Conv1d(dv, c.embed_dim, 1)
        self.video_action = ActionConvs(dv, c.embed_dim)
        self.video_relationship = (RelationshipEncoder(dv, c.embed_dim, c.heads, c.ffn_dim, c.relation_layers)
                                   if c.relationship else None)
        # -- text
        self.words = WordInput(c.text)
        self.word_roles = WordRoles(c.text.word_dim) if c.word_roles else None
        self.text_global = nn.Linear(c.text.sent_dim, c.global_dim)
        self.word_rnn = MaskedBiGRU(c.text.word_dim, c.embed_dim, merge="mean")
        self.graph = RoleGraphEncoder(c.embed_dim, num_layers=c.graph_layers)
        self.text_relationship = (RelationshipEncoder(c.text.word_dim, c.embed_dim, c.heads, c.ffn_dim, c.relation_layers)
                                  if c.relationship else None)
        # -- scorer: FC of Eq. 23
        self.global_fc = nn.Linear(c.global_dim, 1)
        # -- training only: cross-modal shared attribute heads (Eq. 24-26)
        sizes = {level: c.concepts.size(kind) for level, kind in LEVEL_KINDS.items()}
        self.attribute_heads = nn.ModuleDict({level: nn.Linear(c.embed_dim, sizes[level]) for level in local})

    # -- towers -----------------------------------------------------------------------------------------------
    def encode_video(self, inputs: Tensors) -> dict[str, torch.Tensor]:
        frames, mask = inputs["frame_feats"], inputs["frame_mask"]
        valid = mask.unsqueeze(-1)
        # Eq. 7-10; padded frames are set back to zero (ReLU(bias) would leak into the convolutions).
        branch = {level: torch.relu(frames + fc(frames)) * valid for level, fc in self.video_branches.items()}
        alpha = masked_softmax(self.video_attention(branch["global"]).squeeze(-1), mask, dim=1)   # Eq. 12
        _, last = self.video_rnn(alpha.unsqueeze(-1) * branch["global"], mask)                   # Eq. 11, 13-15
        # Eq. 16-17 give frame-wise maps; a video holds an entity / action when any frame does (Sec. 3.4.2),
        # so the level vector is their max over the valid frames.
        entity = torch.relu(self.video_entity(branch["entity"].transpose(1, 2))).transpose(1, 2)
        out = {
            "video_global": last,
            "video_entity": masked_max(entity, mask),
            # Eq. 17 prints F^e as the action branches' input; F^a (Eq. 9) is otherwise unused, so we take F^a.
            "video_action": masked_max(self.video_action(branch["action"]), mask),
        }
        if self.video_relationship is not None:
            out["video_relationship"] = self.video_relationship(branch["relationship"], mask)
        parts = [l2_normalize(out[f"video_{level}"]) for level in self.levels]
        out[VIDEO_INDEX] = torch.cat(parts, dim=-1) / math.sqrt(len(parts))
        return out

    def encode_text(self, inputs: Tensors) -> dict[str, torch.Tensor]:
        mask = inputs["word_mask"]
        words = self.words(inputs)
        if self.word_roles is not None:
            words = self.word_roles.from_inputs(words, inputs)
        states, _ = self.word_rnn(words, mask)
        # The paper's text GCN is HGR's "except [it does] not handle the global feature": the global level
        # is Sentence-BERT, so the graph's root (which HGR attention-pools) is the plain mean of the word
        # states, giving verbs their sentence context; its output is not used.
        _, verbs, nouns = self.graph(states, mask, masked_mean(states, mask), inputs["verb_spans"], inputs["verb_mask"],
                                     inputs["noun_spans"], inputs["noun_mask"], inputs["noun_roles"],
                                     inputs["noun_verb_edges"])
        out = {
            "text_global": self.text_global(inputs["sent_feat"]),
            # One vector per level for the cosine of Eq. 30-31: the mean of the noun / verb nodes.
            "text_entity": masked_mean(nouns, inputs["noun_mask"]),
            "text_action": masked_mean(verbs, inputs["verb_mask"]),
        }
        if self.text_relationship is not None:
            out["text_relationship"] = self.text_relationship(words, mask)
        out[TEXT_INDEX] = self.text_index(out)
        return out

    # -- scorer ---------------------------------------------------------------------------------------------
    def holographic_logits(self, text_global: torch.Tensor, video_global: torch.Tensor) -> torch.Tensor:
        """FC(v * t) for all pairs -> [Bt, Bv] (before the sigmoid of Eq. 23)."""
        return self._global_query(text_global) @ l2_normalize(video_global).transpose(0, 1) + self.global_fc.bias

    def _global_query(self, text_global: torch.Tensor) -> torch.Tensor:
        # Both global vectors are L2-normalised before the correlation (the paper is silent): the FC then
        # sees a bounded input whatever the scale of the BiGRU states and the sentence projection.
        return l2_normalize(text_global) @ circulant(self.global_fc.weight[0]).transpose(0, 1)

    def score(self, text: Tensors, video: Tensors) -> dict[str, torch.Tensor]:
        levels = [torch.sigmoid(self.holographic_logits(text["text_global"], video["video_global"]))]
        levels += [cosine_matrix(text[f"text_{level}"], video[f"video_{level}"]) for level in self.levels[1:]]
        return self.scorer_output(levels, torch.stack(levels).mean(dim=0))

    def text_index(self, text: Tensors) -> torch.Tensor:
        """Index view of a caption: with the video's ``concat(normalised levels) / sqrt(L)`` its inner product is

        ``(sum of the local cosines + FC(v * t) / 4 - b / 4) / (sqrt(L) |q|)``, i.e. per text query the ranking
        of ``L * fused`` with sigmoid(x) linearised to 1/2 + x/4 (the global level is not a cosine, so the
        index only approximates the fused score; the re-ranking scorer is exact). The global part is the
        normalised text vector mapped through the circulant FC weights, so that part ranks videos exactly as
        the holographic level does. ``|q|`` varies per caption: video->text candidate search is approximate too.
        """
        parts = [SIGMOID_SLOPE * self._global_query(text["text_global"])]
        parts += [l2_normalize(text[f"text_{level}"]) for level in self.levels[1:]]
        return l2_normalize(torch.cat(parts, dim=-1))

    def concept_predictions(self, text: Tensors, video: Tensors) -> dict[str, tuple[str, torch.Tensor]]:
        """The shared attribute heads (training only) applied to each side's level vectors."""
        return {f"{side} {LEVEL_KINDS[level]}": (LEVEL_KINDS[level], torch.sigmoid(head(out[f"{side}_{level}"])))
                for level, head in self.attribute_heads.items() for side, out in (("text", text), ("video", video))}

    # -- training -------------------------------------------------------------------------------------------
    def loss(self, text: Tensors, video: Tensors, batch: Tensors) -> dict[str, torch.Tensor]:
        c = self.config
        scores = self.score(text, video)
        video_ids = batch.get("video_ids")
        rank = hinge_triplet_loss(scores[SCORE], c.loss, video_ids)
        attribute = rank.new_zeros(())
        kl = rank.new_zeros(())
        for level, head in self.attribute_heads.items():
            text_targets = batch[LEVEL_LABELS[level]]
            # The paper's video labels are the union over all of the video's captions.
            video_key = LEVEL_LABELS[level].replace("_labels", "_video_labels")
            video_targets = batch[video_key] if c.video_attribute_targets == "video" else text_targets
            attribute = attribute + self.attribute_loss(head(text[f"text_{level}"]), text_targets)
            attribute = attribute + self.attribute_loss(head(video[f"video_{level}"]), video_targets)
            if c.distribution_constraints:
                kl = kl + distribution_kl_loss(video[f"video_{level}"], text[f"text_{level}"])  # Eq. 38-40
        total = rank + c.attribute_weight * attribute + c.kl_weight * kl
        parts = {"rank": rank, "attribute": attribute, "kl": kl}
        if c.level_rank_weight > 0:
            level_rank = sum(hinge_triplet_loss(level_scores, c.loss, video_ids) for level_scores in scores["level_scores"])
            total = total + c.level_rank_weight * level_rank
            parts["level_rank"] = level_rank
        return {"loss": total, **parts}

    def attribute_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Focal BCE (Eq. 35-37, alpha / gamma as in Lin et al.), or plain BCE for MCSAN^-L.

        Eq. 24 writes ReLU on the heads, but (F)BCE needs probabilities in (0, 1): the heads' outputs are
        logits and the probabilities their sigmoid.
        """
        c = self.config
        if c.focal:
            return focal_bce_loss(logits, targets, c.focal_alpha, c.focal_gamma, reduction=c.attribute_reduction)
        return bce_loss(torch.sigmoid(logits), targets, reduction=c.attribute_reduction)
