"""config.pbtxt generation from the tensor layout, for the three backends (the GPU routes are tested as text)."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from common.errors import ConfigError
from export.tensorrt import axis_max, profile_shapes, require_gpu
from export.triton_config import ServingOptions, config_pbtxt, is_batched
from training.engine.config import DataConfig
from training.models.factory import resolve_config

LAYOUT = resolve_config("vsepp", "fast").layout()


def test_tower_is_batched_with_implicit_batch_dim_and_dynamic_batching():
    text = config_pbtxt("vsepp_fast_text", LAYOUT.text, ServingOptions(max_batch_size=16, queue_delay_us=250, instances=2))
    assert is_batched(LAYOUT.text)
    assert text.startswith('name: "vsepp_fast_text"\nbackend: "python"\nmax_batch_size: 16\n')
    # word_feats is [batch, words, 384]: batch implicit, words dynamic
    assert '    name: "word_feats"\n    data_type: TYPE_FP32\n    dims: [ -1, 384 ]' in text
    assert '    name: "word_mask"\n    data_type: TYPE_FP32\n    dims: [ -1 ]' in text
    assert '    name: "text_index"\n    data_type: TYPE_FP32\n    dims: [ 256 ]' in text
    assert "dynamic_batching {\n  max_queue_delay_microseconds: 250\n}" in text
    assert "count: 2\n    kind: KIND_CPU" in text


def test_scorer_takes_full_dims_without_batching():
    scorer = config_pbtxt("vsepp_fast_scorer", LAYOUT.scorer, ServingOptions())
    assert not is_batched(LAYOUT.scorer)
    assert "max_batch_size: 0\n" in scorer and "dynamic_batching" not in scorer
    assert '    name: "text_global"\n    data_type: TYPE_FP32\n    dims: [ -1, 256 ]' in scorer
    assert '    name: "level_scores"\n    data_type: TYPE_FP32\n    dims: [ 1, -1, -1 ]' in scorer


def test_int64_inputs_map_to_triton_int64():
    layout = resolve_config("vsepp", "fast", ["text.kind=vocab", "text.vocab_size=100", "text.word_dim=64"]).layout()
    text = config_pbtxt("m", layout.text, ServingOptions())
    assert '    name: "word_ids"\n    data_type: TYPE_INT64\n    dims: [ -1 ]' in text


def test_onnxruntime_backend_with_tensorrt_accelerator_on_gpu():
    options = ServingOptions(backend="onnxruntime", device="gpu", trt_accelerator=True, trt_precision="FP16", threads=2)
    text = config_pbtxt("vsepp_fast_video", LAYOUT.video, options)
    assert 'platform: "onnxruntime_onnx"\ndefault_model_filename: "model.onnx"\n' in text
    assert "kind: KIND_GPU" in text
    assert 'gpu_execution_accelerator: [\n      {\n        name: "tensorrt"' in text
    assert 'parameters { key: "precision_mode" value: "FP16" }' in text
    assert 'key: "intra_op_thread_count"\n  value: { string_value: "2" }' in text
    assert "backend: \"python\"" not in text


def test_tensorrt_backend_config_and_profiles():
    text = config_pbtxt("vsepp_fast_video", LAYOUT.video, ServingOptions(backend="tensorrt", device="gpu", max_batch_size=32))
    assert 'platform: "tensorrt_plan"\ndefault_model_filename: "model.plan"\nmax_batch_size: 32\n' in text
    assert "kind: KIND_GPU" in text and "optimization" not in text
    maxima = axis_max(DataConfig(path="", max_frames=20), ServingOptions(backend="tensorrt", device="gpu", max_batch_size=32))
    frames = LAYOUT.video.spec("frame_feats")
    assert profile_shapes(frames, maxima) == ((1, 1, 256), (16, 10, 256), (32, 20, 256))


@pytest.mark.parametrize("kwargs, message", [
    ({"backend": "tensorrt"}, "GPU instances only"),
    ({"trt_accelerator": True}, "TensorRT accelerator is an option of the onnxruntime backend"),
    ({"backend": "triton"}, "not one of python, onnxruntime, tensorrt"),
    ({"max_batch_size": 0}, "max_batch_size and instances must be >= 1"),
])
def test_bad_options_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ServingOptions(**kwargs)


def _has_gpu() -> bool:
    smi = shutil.which("nvidia-smi")
    return smi is not None and subprocess.run([smi, "-L"], capture_output=True, text=True).stdout.startswith("GPU")


@pytest.mark.skipif(_has_gpu(), reason="this machine has a GPU: TensorRT plans can be built here")
def test_tensorrt_without_gpu_stops_with_a_clear_message():
    with pytest.raises(ConfigError, match="builds engine plans on a GPU, and this machine has none"):
        require_gpu()
