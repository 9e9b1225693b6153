"""Helpers shared by the zoo's model tests: build a model by name, random batches sized for its config, and the
contracts every model keeps (scorer batching, padding invariance, gradients reaching every parameter, ONNX
Runtime parity), plus the small NumPy references several formula tests use."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from export.onnx import export_part, torch_outputs
from export.runner import OnnxPart
from tests.zoo_batches import random_text_batch, random_video_batch
from training.models.common.transformer import QueryKeyValue
from training.models.factory import create_model

VOCAB = ("text.kind=vocab", "text.vocab_size=50", "text.word_dim=32")  # learned-vocabulary text input
LENGTH_MASKS = {"words": "word_mask", "verbs": "verb_mask", "nouns": "noun_mask", "frames": "frame_mask"}


def build(name, preset="fast", overrides=()):
    """Model ``name`` in eval mode, with the same initial weights on every call."""
    torch.manual_seed(0)
    return create_model(name, preset, overrides=overrides).eval()


def random_arrays(config, batch=4, seed=0, words=9, frames=7, regions=None, **text_sizes):
    """NumPy (text, video) batches with ``config``'s feature sizes; region features sized only when ``regions``
    is given (other models keep the batch helper's default regions); ``text_sizes``: verbs, nouns."""
    text = random_text_batch(batch=batch, words=words, word_dim=config.text.word_dim, sent_dim=config.text.sent_dim,
                             seed=seed, **text_sizes)
    region_sizes = {} if regions is None else {"regions": regions, "region_dim": config.video.region_dim}
    video = random_video_batch(batch=batch, frames=frames, frame_dim=config.video.frame_dim, seed=seed,
                               **region_sizes)
    return text, video


def as_tensors(arrays):
    return {k: torch.from_numpy(v) for k, v in arrays.items()}


def random_batch(config, **sizes):
    """``random_arrays`` as tensors."""
    text, video = random_arrays(config, **sizes)
    return as_tensors(text), as_tensors(video)


def training_batch(text, video, **extra):
    """One batch for ``model(batch)``: both towers' inputs and ``video_ids`` 0..B-1 (each caption its own video)."""
    return {**text, **video, "video_ids": torch.arange(text["word_mask"].shape[0]), **extra}


def encode(model, text, video):
    """Both towers without gradients, each fed only its layout's inputs."""
    with torch.no_grad():
        return model.encode_text(model.text_inputs(text)), model.encode_video(model.video_inputs(video))


def scores(model, text, video):
    """Scorer outputs of every text against every video, without gradients."""
    t, v = encode(model, text, video)
    with torch.no_grad():
        return model.score(t, v)


def encode_vocab_text(model):
    """Text tower outputs for word ids of a 50-word vocabulary (a model built with the ``VOCAB`` overrides)."""
    text = as_tensors(random_text_batch(batch=2, words=9, vocab_size=50))
    with torch.no_grad():
        return model.encode_text(model.text_inputs(text))


GRADIENT_FLOOR = 1e-6  # of the whole gradient's norm; in float64 an inert parameter sits near 1e-16 of it
# Modules whose biases fuse several maps, by the number of equal slices: a GRU's three gates (r, z, n), the
# query and value biases of self-attention. Each slice must get a gradient of its own.
FUSED_BIASES = {nn.GRU: 3, QueryKeyValue: 2}


def gradient_pieces(model) -> dict[str, torch.Tensor]:
    """The gradient of every parameter and of every slice of a fused bias, by name (slices as ``name[i/n]``);
    a parameter that got no gradient counts as zero."""
    pieces = {n: torch.zeros_like(p) if p.grad is None else p.grad for n, p in model.named_parameters()}
    for prefix, module in model.named_modules():
        slices = next((n for kind, n in FUSED_BIASES.items() if isinstance(module, kind)), None)
        for name, _ in module.named_parameters(recurse=False) if slices else ():
            if "bias" in name:
                full = f"{prefix}.{name}" if prefix else name
                pieces.update({f"{full}[{i}/{slices}]": g for i, g in enumerate(pieces[full].chunk(slices))})
    return pieces


def check_gradients(model, batch):
    """One float64 training step on ``batch``: the loss is positive and the gradient of every parameter, and of
    every slice of a fused bias, has a norm above ``GRADIENT_FLOOR`` of the whole gradient's. In float64 a real
    but small gradient stays far from rounding noise, so the check does not depend on the CPU's float32 kernels."""
    model = model.double()
    batch = {k: v.double() if v.is_floating_point() else v for k, v in batch.items()}
    out = model(batch)
    assert out["loss"].item() > 0
    out["loss"].backward()
    pieces = gradient_pieces(model)
    total = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]).norm()
    weak = {n: float(g.norm() / total) for n, g in pieces.items() if not g.norm() > GRADIENT_FLOOR * total}
    assert weak == {}, f"parameters or bias slices without a gradient (norm / total): {weak}"
    return out


def check_scorer_batching(model, t, v):
    """Scoring the encoded batches ``t`` x ``v`` at once equals scoring each (text, video) pair alone."""
    with torch.no_grad():
        full = model.score(t, v)
        for i in range(t["text_index"].shape[0]):
            for j in range(v["video_index"].shape[0]):
                one = model.score({k: x[i:i + 1] for k, x in t.items()}, {k: x[j:j + 1] for k, x in v.items()})
                assert torch.allclose(one["score"][0, 0], full["score"][i, j], atol=1e-6)
                assert torch.allclose(one["level_scores"][:, 0, 0], full["level_scores"][:, i, j], atol=1e-6)
                for name in model.layout.scorer.output_names[2:]:   # each attending level's attention
                    assert torch.allclose(one[name][0, 0], full[name][i, j], atol=1e-6), name


def _item_index(shape, b, lengths):
    """Index of item ``b`` cut to its own ``lengths`` on the ragged axes named in ``shape``."""
    return tuple(slice(b, b + 1) if d == "batch" else slice(0, lengths[d]) if d in lengths else slice(None)
                 for d in shape)


def check_item_alone_equals_item_in_batch(model, text, video):
    """Each item encoded alone, cut to its own lengths, gives the outputs it has inside the padded batch (ragged
    outputs cut the same way, as the layout names their axes) and the same level scores.
    Returns the batch's encodings (text, video)."""
    t_all, v_all = encode(model, text, video)
    with torch.no_grad():
        full = model.score(t_all, v_all)["level_scores"]
    arrays = {**text, **video}
    for b in range(text["word_mask"].shape[0]):
        lengths = {axis: int(arrays[mask][b].sum()) for axis, mask in LENGTH_MASKS.items() if mask in arrays}
        one = {spec.name: arrays[spec.name][_item_index(spec.shape, b, lengths)]
               for spec in model.layout.text.inputs + model.layout.video.inputs}
        t_one, v_one = encode(model, one, one)
        for tower, alone, batched in ((model.layout.text, t_one, t_all), (model.layout.video, v_one, v_all)):
            for k, x in alone.items():
                ref = batched[k][_item_index(tower.spec(k).shape, b, lengths)]
                assert torch.allclose(x[0], ref[0], atol=1e-5), k
        with torch.no_grad():
            s_one = model.score(t_one, v_one)["level_scores"][:, 0, 0]
        assert torch.allclose(s_one, full[:, b, b], atol=1e-5)
    return t_all, v_all


def check_onnx_parity(model, trace, check, tmp_path):
    """Text tower, video tower and scorer exported on the ``trace`` (text, video) arrays give, under ONNX
    Runtime, PyTorch's outputs on the ``check`` arrays (other sizes: the dynamic axes)."""
    def scorer_inputs(text, video):
        return {**torch_outputs(model, "text", text), **torch_outputs(model, "video", video)}

    (trace_text, trace_video), (check_text, check_video) = trace, check
    parts = {"text": (trace_text, check_text), "video": (trace_video, check_video),
             "scorer": (scorer_inputs(trace_text, trace_video), scorer_inputs(check_text, check_video))}
    for part, (trace_inputs, check_inputs) in parts.items():
        path = export_part(model, part, trace_inputs, tmp_path / f"{part}.onnx")
        got = OnnxPart(path).run(check_inputs)
        for name, arr in torch_outputs(model, part, check_inputs).items():
            np.testing.assert_allclose(got[name], arr, atol=1e-4, err_msg=f"{part}:{name}")


# -- NumPy references (float64; independent of the modules under test) ------------------------------------------
def np64(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def np_linear(x, fc):
    """``fc`` (an nn.Linear, with or without bias) applied to NumPy rows ``x``."""
    out = x @ np64(fc.weight).T
    return out if fc.bias is None else out + np64(fc.bias)


def np_query_key_value(x, qkv):
    """``qkv`` (a QueryKeyValue: biases on the query and the value only) applied to NumPy rows ``x``."""
    q, k, v = np.split(x @ np64(qkv.weight).T, 3, axis=-1)
    bias_q, bias_v = np.split(np64(qkv.bias), 2)
    return q + bias_q, k, v + bias_v


def np_layer_norm(x, ln):
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + ln.eps) * np64(ln.weight) + np64(ln.bias)
