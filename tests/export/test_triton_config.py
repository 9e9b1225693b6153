"""config.pbtxt generation from the tensor layout, for the three backends: the GPU routes as text, and every
route parsed by Triton's own model-config protobuf (the one tritonclient ships)."""
from __future__ import annotations

import shutil
import subprocess

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

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
    ({"device": "gpu"}, "python backend runs its graphs in ONNX Runtime on the CPU"),
    ({"backend": "triton"}, "not one of python, onnxruntime, tensorrt"),
    ({"max_batch_size": 0}, "max_batch_size and instances must be >= 1"),
])
def test_bad_options_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ServingOptions(**kwargs)


ROUTES = {
    "python on CPU": ServingOptions(threads=1),
    "onnxruntime on CPU": ServingOptions(backend="onnxruntime", threads=2),
    "onnxruntime on GPU": ServingOptions(backend="onnxruntime", device="gpu"),
    "onnxruntime + TensorRT on GPU": ServingOptions(backend="onnxruntime", device="gpu", trt_accelerator=True),
    "tensorrt on GPU": ServingOptions(backend="tensorrt", device="gpu", instances=2),
}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("part", ["text", "video", "scorer"])
def test_every_route_parses_as_triton_model_config(route, part):
    """HGR's layout (role graphs, and the scorer's attention outputs) through Triton's ModelConfig message: a field
    Triton does not know, or a malformed block, fails the parse."""
    options, tower = ROUTES[route], getattr(resolve_config("hgr", "fast").layout(), part)
    config = text_format.Parse(config_pbtxt(f"hgr_fast_{part}", tower, options), model_config_pb2.ModelConfig())
    assert config.name == f"hgr_fast_{part}"
    assert (config.backend, config.platform) == {"python": ("python", ""),
                                                 "onnxruntime": ("", "onnxruntime_onnx"),
                                                 "tensorrt": ("", "tensorrt_plan")}[options.backend]
    assert config.max_batch_size == (options.max_batch_size if is_batched(tower) else 0)
    assert [i.name for i in config.input] == [t.name for t in tower.inputs]
    assert [o.name for o in config.output] == [t.name for t in tower.outputs]
    (group,) = config.instance_group
    assert group.count == options.instances
    assert group.kind == (model_config_pb2.ModelInstanceGroup.KIND_GPU if options.device == "gpu"
                          else model_config_pb2.ModelInstanceGroup.KIND_CPU)
    accelerators = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert [a.name for a in accelerators] == (["tensorrt"] if options.trt_accelerator else [])


def _has_gpu() -> bool:
    smi = shutil.which("nvidia-smi")
    return smi is not None and subprocess.run([smi, "-L"], capture_output=True, text=True).stdout.startswith("GPU")


@pytest.mark.skipif(_has_gpu(), reason="this machine has a GPU: TensorRT plans can be built here")
def test_tensorrt_without_gpu_stops_with_a_clear_message():
    with pytest.raises(ConfigError, match="builds engine plans on a GPU, and this machine has none"):
        require_gpu()
