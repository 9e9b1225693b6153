"""`strata diagnose`'s gradient step leaves the model as it found it (HANet's BatchNorm statistics included)."""
from __future__ import annotations

import torch

from training.engine.data import load_prepared
from training.engine.diagnose import gradient_norms
from training.models.factory import create_model


def test_gradient_norms_do_not_move_the_model(tiny_data_config):
    data = load_prepared(tiny_data_config, "hanet", "fast")
    torch.manual_seed(0)
    model = create_model("hanet", "fast", overrides=data.model_overrides()).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    norms = gradient_norms(model, data, batch_size=8, seed=0)
    assert norms["rank"] and not model.training
    moved = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert moved == []
    # HANet has BatchNorm running statistics, which a training-mode step on the model itself would move
    assert any("running_mean" in k for k in before)
