"""The role-switched twin hinge (beyond the papers, issue 31): on the fused score by default, or on chosen levels'
scores with its own margin and weight; an unknown level is refused when the model is built."""
from __future__ import annotations

import pytest
import torch

from common.errors import ConfigError
from common.layout import LEVEL_SCORES, SCORE, SWITCHED_INDEX, SWITCHED_PREFIX
from tests.training.models.zoo_checks import build, random_batch, training_batch


def hinge(positive: torch.Tensor, negative: torch.Tensor, margin: float) -> torch.Tensor:
    return (margin + negative - positive).clamp(min=0).mean()


def twin_loss(overrides=()):
    """(the model's twin loss, the scorer outputs of the captions and of their twins against their videos) for
    HGR with ``overrides``; captions 0 and 2 have twins (the twins are other random captions)."""
    model = build("hgr", overrides=overrides)
    text, video = random_batch(model.config, batch=4)
    twins, _ = random_batch(model.config, batch=2, seed=1)
    index = torch.tensor([0, 2])
    with torch.no_grad():
        t, v = model.encode_text(model.text_inputs(text)), model.encode_video(model.video_inputs(video))
        w = model.encode_text(model.text_inputs(twins))
        loss = model.switched_twin_loss(t, w, v, index)
        videos = {k: x.index_select(0, index) for k, x in v.items()}
        mine = model.score({k: x.index_select(0, index) for k, x in t.items()}, videos)
        theirs = model.score(w, videos)
    return loss, mine, theirs


def test_by_default_the_hinge_is_on_the_fused_score_with_the_ranking_margin():
    loss, mine, theirs = twin_loss()
    assert float(loss) == pytest.approx(float(hinge(mine[SCORE].diagonal(), theirs[SCORE].diagonal(), 0.2)))


def test_on_chosen_levels_with_its_own_margin_and_weight():
    loss, mine, theirs = twin_loss(("loss.twin_levels=[event,entity]", "loss.twin_margin=0.5",
                                    "loss.twin_weight=0.25"))
    rows = [0, 2]   # HGR's levels: event, action, entity
    positive = mine[LEVEL_SCORES][rows].diagonal(dim1=-2, dim2=-1)
    negative = theirs[LEVEL_SCORES][rows].diagonal(dim1=-2, dim2=-1)
    assert positive.shape == (2, 2)
    assert float(loss) == pytest.approx(0.25 * float(hinge(positive, negative, 0.5)))
    assert float(loss) > 0   # the margin 0.5 is above any gap random weights give: the check can fail


def test_a_twin_is_normalised_with_its_captions_batch():
    """ViSERN's text tower (as HANet's) holds BatchNorm, which in training normalises by the batch's statistics.
    A twin identical to its caption must then score exactly as the caption, so its hinge is the margin: it would
    not be if the twins were encoded as a batch of their own (two rows here, against the captions' four)."""
    model = build("visern").train()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.eval()
    text, video = random_batch(model.config, batch=4)
    index = torch.tensor([0, 2])
    twins = {SWITCHED_PREFIX + k: v.index_select(0, index) for k, v in model.text_inputs(text).items()}
    with torch.no_grad():
        out = model(training_batch(text, video, **twins, **{SWITCHED_INDEX: index}))
    assert float(out["switch_rank"]) == pytest.approx(model.config.loss.margin, abs=1e-6)


def test_an_unknown_level_or_a_negative_weight_is_refused():
    with pytest.raises(ConfigError, match="hgr has no level relation .*event, action, entity"):
        build("hgr", overrides=("loss.twin_levels=[relation]",))
    with pytest.raises(ConfigError, match="twin_weight and twin_margin must be >= 0"):
        build("hgr", overrides=("loss.twin_weight=-1",))
