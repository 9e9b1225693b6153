"""VSE++ baseline: build, train step, scorer batching, padding invariance, formula, ONNX parity."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from export.onnx import export_part, torch_outputs
from serving.onnx_runner import OnnxPart
from tests.zoo_batches import random_text_batch, random_video_batch
from training.models.factory import create_model, resolve_config

torch.set_num_threads(1)


def _batch(config, batch=4, seed=0, words=9, frames=7):
    text = random_text_batch(batch=batch, words=words, word_dim=config.text.word_dim, seed=seed)
    video = random_video_batch(batch=batch, frames=frames, frame_dim=config.video.frame_dim, seed=seed)
    as_t = lambda d: {k: torch.from_numpy(v) for k, v in d.items()}
    return as_t(text), as_t(video)


def _model(preset="fast", overrides=()):
    torch.manual_seed(0)
    return create_model("vsepp", preset, overrides=overrides).eval()


@pytest.mark.parametrize("preset", ["fast", "paper"])
def test_builds_and_scores_both_presets(preset):
    model = _model(preset)
    text, video = _batch(model.config, batch=2)
    with torch.no_grad():
        out = model.score(model.encode_text(model.text_inputs(text)), model.encode_video(model.video_inputs(video)))
    assert out["score"].shape == (2, 2) and out["level_scores"].shape == (1, 2, 2)
    assert model.layout.levels == ("global",)


def test_forward_backward_updates_every_parameter():
    model = _model().train()
    text, video = _batch(model.config, batch=6)
    batch = {**text, **video, "video_ids": torch.arange(6)}
    out = model.loss(model.encode_text(model.text_inputs(batch)), model.encode_video(model.video_inputs(batch)), batch)
    assert out["loss"].item() > 0
    out["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_scorer_batched_equals_one_pair_at_a_time():
    model = _model()
    text, video = _batch(model.config, batch=3)
    with torch.no_grad():
        t, v = model.encode_text(text), model.encode_video(video)
        full = model.score(t, v)
        for i in range(3):
            for j in range(3):
                one = model.score({k: x[i:i + 1] for k, x in t.items()}, {k: x[j:j + 1] for k, x in v.items()})
                assert torch.allclose(one["score"][0, 0], full["score"][i, j], atol=1e-6)
                assert torch.allclose(one["level_scores"][:, 0, 0], full["level_scores"][:, i, j], atol=1e-6)


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_item_alone_equals_item_in_padded_batch(pooling):
    model = _model(overrides=(f"text_pooling={pooling}",))
    text, video = _batch(model.config, batch=4)
    with torch.no_grad():
        t_all, v_all = model.encode_text(text), model.encode_video(video)
        for b in range(4):
            n_words, n_frames = int(text["word_mask"][b].sum()), int(video["frame_mask"][b].sum())
            t_one = model.encode_text({k: x[b:b + 1, :n_words] for k, x in text.items() if k in ("word_feats", "word_mask")})
            v_one = model.encode_video({"frame_feats": video["frame_feats"][b:b + 1, :n_frames],
                                        "frame_mask": video["frame_mask"][b:b + 1, :n_frames]})
            for k in t_one:
                assert torch.allclose(t_one[k][0], t_all[k][b], atol=1e-5), k
            for k in v_one:
                assert torch.allclose(v_one[k][0], v_all[k][b], atol=1e-5), k


def test_video_vector_and_cosine_match_numpy_reference():
    model = _model()
    text, video = _batch(model.config, batch=3)
    with torch.no_grad():
        t, v = model.encode_text(text), model.encode_video(video)
        scores = model.score(t, v)["score"].numpy()
    feats, mask = video["frame_feats"].numpy(), video["frame_mask"].numpy()
    weight, bias = model.video_fc.weight.detach().numpy(), model.video_fc.bias.detach().numpy()
    expected = []
    for b in range(3):
        n = int(mask[b].sum())
        vec = feats[b, :n].mean(axis=0) @ weight.T + bias
        expected.append(vec / np.linalg.norm(vec))
    expected = np.stack(expected)
    np.testing.assert_allclose(v["video_global"].numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(v["video_index"].numpy(), expected, atol=1e-5)
    text_vec = t["text_global"].numpy()
    np.testing.assert_allclose(np.linalg.norm(text_vec, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(scores, text_vec @ expected.T, atol=1e-5)


def test_text_pooling_switch_changes_scores():
    text, video = _batch(resolve_config("vsepp", "fast"))
    scores = []
    for pooling in ("last", "mean"):
        model = _model(overrides=(f"text_pooling={pooling}",))
        with torch.no_grad():
            scores.append(model.score(model.encode_text(text), model.encode_video(video))["score"])
    assert not torch.allclose(scores[0], scores[1], atol=1e-3)


def test_learned_vocabulary_input():
    model = _model(overrides=("text.kind=vocab", "text.vocab_size=50", "text.word_dim=32"))
    assert model.layout.text.input_names == ("word_ids", "word_mask")
    text = {k: torch.from_numpy(v) for k, v in random_text_batch(batch=2, words=9, vocab_size=50).items()}
    with torch.no_grad():
        out = model.encode_text(model.text_inputs(text))
    assert out["text_index"].shape == (2, model.config.embed_dim)


def test_towers_and_scorer_trace_to_onnx(tmp_path):
    """Traced on one batch, checked on another with other batch, word and frame sizes (dynamic axes)."""
    model = _model()
    config = model.config
    arrays = lambda batch, words, frames, seed: (
        random_text_batch(batch=batch, words=words, word_dim=config.text.word_dim, seed=seed),
        random_video_batch(batch=batch, frames=frames, frame_dim=config.video.frame_dim, seed=seed))
    trace_text, trace_video = arrays(batch=3, words=9, frames=7, seed=0)
    check_text, check_video = arrays(batch=5, words=11, frames=4, seed=1)

    def scorer_inputs(text, video):
        return {**torch_outputs(model, "text", text), **torch_outputs(model, "video", video)}

    parts = {"text": (trace_text, check_text), "video": (trace_video, check_video),
             "scorer": (scorer_inputs(trace_text, trace_video), scorer_inputs(check_text, check_video))}
    for part, (trace, check) in parts.items():
        path = export_part(model, part, trace, tmp_path / f"{part}.onnx")
        got = OnnxPart(path).run(check)
        for name, arr in torch_outputs(model, part, check).items():
            np.testing.assert_allclose(got[name], arr, atol=1e-4, err_msg=f"{part}:{name}")
