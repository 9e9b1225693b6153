"""Checkpoints saved before the inert parameters were removed: they load to the same outputs, the dropped entries
are named once, the optimiser state follows, and any other mismatch is still refused by name."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from common.errors import StrataError
from tests.training.models.zoo_checks import build, encode, random_batch, training_batch
from training.checkpoint import load_model_checkpoint, load_training_state, save_checkpoint
from training.models.common.transformer import QueryKeyValue

SIZES = {"words": 9, "frames": 7, "verbs": 3, "nouns": 4}
SMALL = {"hanet": ("concepts.num_verbs=12", "concepts.num_nouns=16"),  # the presets size concept heads from data
         "mcsan": ("concepts.num_verbs=12", "concepts.num_nouns=16", "concepts.num_triplets=8")}


class LegacyQueryKeyValue(nn.Linear):
    """The projection before the change: one nn.Linear(dim, 3 dim) with a full bias, key third included."""

    def forward(self, x):
        return super().forward(x).chunk(3, dim=-1)


def legacy_model(name):
    """Model ``name`` as it was before the change: every removed bias its modules declare put back with random
    values (an nn.Linear or Conv1d uses a ``bias`` attribute once it is set), random BatchNorm running means."""
    model = build(name, overrides=SMALL.get(name, ()))
    generator = torch.Generator().manual_seed(1)
    for module_name, module in list(model.named_modules()):
        if isinstance(module, QueryKeyValue):
            dim = module.weight.shape[1]
            legacy = LegacyQueryKeyValue(dim, 3 * dim)
            bias_q, bias_v = module.bias.detach().chunk(2)
            legacy.weight.data.copy_(module.weight.detach())
            legacy.bias.data.copy_(torch.cat([bias_q, torch.randn(dim, generator=generator), bias_v]))
            parent, _, child = module_name.rpartition(".")
            setattr(model.get_submodule(parent), child, legacy)
        elif isinstance(module, nn.BatchNorm1d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator))
        else:
            for entry in getattr(module, "legacy_inert_keys", ()):
                layer = module.get_submodule(entry.key.removesuffix(".bias"))
                if layer is not None:
                    layer.bias = nn.Parameter(torch.randn(layer.weight.shape[0], generator=generator))
    return model


@pytest.mark.parametrize("name", ["hgr", "hanet", "visern", "vsrnet", "mcsan"])
def test_legacy_checkpoint_loads_to_the_same_outputs(name, tmp_path, capsys):
    old = legacy_model(name)
    save_checkpoint(tmp_path / "ckpt", old)
    new = load_model_checkpoint(tmp_path / "ckpt")
    assert sum(p.numel() for p in new.parameters()) < sum(p.numel() for p in old.parameters())
    text, video = random_batch(old.config, batch=3, **SIZES)
    for (a, b) in zip(encode(old, text, video), encode(new, text, video)):
        for key in a:
            assert torch.allclose(a[key], b[key], atol=1e-5), key
    said = capsys.readouterr().err
    assert said.count("dropped") == 1 and "bias" in said


def test_legacy_training_state_resumes_with_its_optimiser_moments(tmp_path):
    old = legacy_model("vsrnet").train()
    optimizer = torch.optim.Adam(old.parameters(), lr=1e-3)
    old(training_batch(*random_batch(old.config, batch=4, **SIZES)))["loss"].backward()
    optimizer.step()
    save_checkpoint(tmp_path / "ckpt", old, optimizer=optimizer, state={"epoch": 1})
    new = build("vsrnet")
    new_optimizer = torch.optim.Adam(new.parameters(), lr=1e-3)
    assert load_training_state(tmp_path / "ckpt", new, new_optimizer, None) == {"epoch": 1}
    legacy_bias = dict(old.named_parameters())["global_temporal.blocks.0.attn.qkv.bias"]
    moment = optimizer.state[legacy_bias]["exp_avg"]
    dim = moment.shape[0] // 3
    got = new_optimizer.state[dict(new.named_parameters())["global_temporal.blocks.0.attn.qkv.bias"]]["exp_avg"]
    assert torch.equal(got, torch.cat([moment[:dim], moment[2 * dim:]]))


def test_any_other_mismatch_is_refused_by_name(tmp_path):
    model = legacy_model("hgr")
    model.extra = nn.Linear(2, 2)
    save_checkpoint(tmp_path / "ckpt", model)
    with pytest.raises(StrataError, match=r"unexpected \['extra.bias', 'extra.weight'\]"):
        load_model_checkpoint(tmp_path / "ckpt")
