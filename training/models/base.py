"""The contract every model of the zoo implements (PyTorch).

A model is three parts sharing one config and one tensor layout (``common.layout``):

* ``encode_text(inputs)``  -> the text levels, keyed by the layout's text output names;
* ``encode_video(inputs)`` -> the video levels, keyed by the layout's video output names;
* ``score(text, video)``   -> ``{"score": [texts, videos], "level_scores": [levels, texts, videos]}``.

Training (``loss``), evaluation, export and serving all go through these three; nothing re-implements a
model's formula elsewhere. Inputs are dicts of canonical tensors (``layout.TEXT_INPUTS`` / ``VIDEO_INPUTS``).
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from common.errors import ConfigError
from common.layout import ATTENTION_PREFIX, LEVEL_SCORES, SCORE, SWITCHED_INDEX, SWITCHED_PREFIX, ModelLayout
from training.losses import hinge_triplet_loss

Tensors = Mapping[str, torch.Tensor]


class RetrievalModel(nn.Module):
    """Base class: subclasses implement the two towers and the scorer; ``loss`` may add auxiliary terms."""

    def __init__(self, config: Any):
        super().__init__()
        self.config = config
        self.layout: ModelLayout = config.layout()
        self.name: str = self.layout.model  # the zoo name, e.g. "hgr"
        unknown = [level for level in config.loss.twin_levels if level not in self.layout.levels]
        if unknown:
            raise ConfigError(f"loss.twin_levels: {self.name} has no level {', '.join(unknown)} (its levels: "
                             f"{', '.join(self.layout.levels)})")

    # -- the contract -------------------------------------------------------------------------------------
    def encode_text(self, inputs: Tensors) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def encode_video(self, inputs: Tensors) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def score(self, text: Tensors, video: Tensors) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def loss(self, text: Tensors, video: Tensors, batch: Tensors) -> dict[str, torch.Tensor]:
        """Training objective for a batch of aligned (caption i, video i) pairs.

        Returns ``{"loss": scalar, ...named parts}``. The default is the hardest-negative hinge on the fused
        score; ``batch["video_ids"]`` (int64 [B]) identifies each pair's video so that other captions of
        the same video can be excluded from the negatives when the loss config asks for it.
        """
        scores = self.score(text, video)[SCORE]
        rank = hinge_triplet_loss(scores, self.config.loss, batch.get("video_ids"))
        return {"loss": rank, "rank": rank}

    def concept_predictions(self, text: Tensors, video: Tensors) -> dict[str, tuple[str, torch.Tensor]]:
        """Concept probabilities of the towers' outputs, for diagnostics: ``{"<side> <kind>": (kind, [B, K])}``
        with kind one of ``verbs``, ``nouns``, ``triplets`` (the concept vocabulary's). Models without concept
        heads have none."""
        return {}

    def forward(self, batch: Tensors) -> dict[str, torch.Tensor]:
        """Training step: both towers, then ``loss``. (``forward`` so that DistributedDataParallel syncs it.)"""
        if SWITCHED_INDEX not in batch:
            text = self.encode_text(self.text_inputs(batch))
            return self.loss(text, self.encode_video(self.video_inputs(batch)), batch)
        # The captions and their twins in one call (the data pads them alike), so that a layer with batch
        # statistics (HANet's and ViSERN's BatchNorm) normalises a twin as it normalises its caption.
        names = self.layout.text.input_names
        captions = batch[names[0]].shape[0]
        both = self.encode_text({n: torch.cat([batch[n], batch[SWITCHED_PREFIX + n]]) for n in names})
        text, twins = {k: v[:captions] for k, v in both.items()}, {k: v[captions:] for k, v in both.items()}
        video = self.encode_video(self.video_inputs(batch))
        out = self.loss(text, video, batch)
        switch = self.switched_twin_loss(text, twins, video, batch[SWITCHED_INDEX])
        return {**out, "loss": out["loss"] + switch, "switch_rank": switch}

    def switched_twin_loss(self, text: Tensors, twins: Tensors, video: Tensors, index: torch.Tensor) -> torch.Tensor:
        """Role-switched twins as extra negatives (beyond the papers): the hinge ``margin + s(twin, v) - s(c, v)``
        for each pair (caption c, video v) of the batch that has a twin, averaged and weighted; ``s`` is the fused
        score, or each of ``loss.twin_levels``' scores (the config's twin margin and weight).
        Every tower output is batch-first, so the pairs' rows are selected by ``index``."""
        loss = self.config.loss
        pick = lambda outputs: {k: v.index_select(0, index) for k, v in outputs.items()}  # noqa: E731
        videos = pick(video)
        mine, theirs = self.score(pick(text), videos), self.score(twins, videos)
        if loss.twin_levels:
            rows = torch.tensor([self.layout.levels.index(level) for level in loss.twin_levels])
            positive = mine[LEVEL_SCORES][rows].diagonal(dim1=-2, dim2=-1)      # [levels, pairs]
            negative = theirs[LEVEL_SCORES][rows].diagonal(dim1=-2, dim2=-1)
        else:
            positive, negative = mine[SCORE].diagonal(), theirs[SCORE].diagonal()
        margin = loss.margin if loss.twin_margin is None else loss.twin_margin
        return loss.twin_weight * (margin + negative - positive).clamp(min=0).mean()

    # -- helpers shared by every model ----------------------------------------------------------------------
    def text_inputs(self, batch: Tensors) -> dict[str, torch.Tensor]:
        return {name: batch[name] for name in self.layout.text.input_names}

    def video_inputs(self, batch: Tensors) -> dict[str, torch.Tensor]:
        return {name: batch[name] for name in self.layout.video.input_names}

    @staticmethod
    def scorer_output(levels: list[torch.Tensor], fused: torch.Tensor,
                      attentions: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Pack per-level ``[texts, videos]`` scores, the fused score and each attending level's attention over the
        frames the way the layout says."""
        return {SCORE: fused, LEVEL_SCORES: torch.stack(levels, dim=0),
                **{ATTENTION_PREFIX + level: weights for level, weights in (attentions or {}).items()}}

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
