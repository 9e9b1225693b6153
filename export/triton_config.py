"""``config.pbtxt`` for one part of a model, from its tensor layout (torch-free).

Triton's batch convention: with ``max_batch_size > 0`` the first dimension is implicit, so the towers (batch-first
inputs and outputs) list only the remaining dims; the scorer takes texts x videos (two independent batch axes), so it
has ``max_batch_size: 0`` and full dims. Dynamic axes are ``-1``.

Backends (``--backend``):

* ``python``       the python backend running the ONNX file with ONNX Runtime (``model.py``, the thin adapter
                   copied into each version folder) -- the only backend the PyPI server has: the embedded default;
* ``onnxruntime``  NVIDIA's image, CPU or GPU, optionally with the TensorRT execution accelerator;
* ``tensorrt``     engine plans built on a GPU (``model.plan``), GPU instances only.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from common.errors import ConfigError
from common.layout import TensorSpec, TowerLayout

BACKENDS = ("python", "onnxruntime", "tensorrt")
# The python backend's adapter, copied into each version folder: package data of ``model_repository``.
ADAPTER = Path(__file__).resolve().parents[1] / "model_repository" / "_templates" / "model.py"
TRITON_DTYPES = {"float32": "TYPE_FP32", "int64": "TYPE_INT64"}
BATCH_AXIS = "batch"


@dataclass(frozen=True)
class ServingOptions:
    backend: Literal["python", "onnxruntime", "tensorrt"] = "python"
    max_batch_size: int = 64            # towers only; the scorer is unbatched (max_batch_size 0)
    # Dynamic batching: how long a request may wait for others. 0 still batches the requests that queue while an
    # instance is busy, and a lone query does not wait: 500 us cost a text query 1.6-1.9 ms over its two Triton
    # calls at 1 user, with the same QPS at 8 (`strata bench e2e`, README "Levers").
    queue_delay_us: int = 0
    instances: int = 1                  # instance_group count
    device: Literal["cpu", "gpu"] = "cpu"
    threads: int = 0                    # ONNX Runtime intra-op threads per instance (0 = its default)
    trt_accelerator: bool = False       # onnxruntime on GPU: the TensorRT execution accelerator
    trt_precision: Literal["FP32", "FP16"] = "FP16"
    # tensorrt: where the engine plans are built. "export": by the export, on its GPU; "serving": by the serving
    # host's init step (NVIDIA's trtexec, from the ONNX and the shapes the export writes beside it: export.tensorrt)
    trt_plans: Literal["export", "serving"] = "export"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend {self.backend!r} is not one of {', '.join(BACKENDS)}")
        if self.max_batch_size < 1 or self.instances < 1 or self.queue_delay_us < 0 or self.threads < 0:
            raise ConfigError("max_batch_size and instances must be >= 1, queue_delay_us and threads >= 0")
        if self.backend == "tensorrt" and self.device != "gpu":
            raise ConfigError("the tensorrt backend runs on GPU instances only: use --device gpu")
        if self.backend == "python" and self.device == "gpu":
            raise ConfigError("the python backend runs its graphs in ONNX Runtime on the CPU, so it has no GPU "
                              "instances: for a GPU use --backend onnxruntime (with --trt-accelerator for TensorRT "
                              "inside it) or --backend tensorrt")
        if self.trt_plans not in ("export", "serving"):
            raise ConfigError(f"trt_plans must be export or serving, got {self.trt_plans!r}")
        if self.trt_plans == "serving" and self.backend != "tensorrt":
            raise ConfigError("--plans-on-serving-gpu is an option of --backend tensorrt")
        if self.trt_accelerator and (self.backend != "onnxruntime" or self.device != "gpu"):
            raise ConfigError("the TensorRT accelerator is an option of the onnxruntime backend on --device gpu")


def is_batched(tower: TowerLayout) -> bool:
    """A tower whose every input and output is batch-first is served with Triton batching."""
    return all(t.shape and t.shape[0] == BATCH_AXIS for t in tower.inputs + tower.outputs)


def _tensor(spec: TensorSpec, batched: bool) -> str:
    dims = spec.shape[1:] if batched else spec.shape
    dims_text = ", ".join(str(-1 if isinstance(d, str) else d) for d in dims)
    return f'  {{\n    name: "{spec.name}"\n    data_type: {TRITON_DTYPES[spec.dtype]}\n    dims: [ {dims_text} ]\n  }}'


def config_pbtxt(name: str, tower: TowerLayout, options: ServingOptions) -> str:
    batched = is_batched(tower)
    lines = [f'name: "{name}"']
    if options.backend == "python":
        lines.append('backend: "python"')
    elif options.backend == "onnxruntime":
        lines += ['platform: "onnxruntime_onnx"', 'default_model_filename: "model.onnx"']
    else:
        lines += ['platform: "tensorrt_plan"', 'default_model_filename: "model.plan"']
    lines.append(f"max_batch_size: {options.max_batch_size if batched else 0}")
    lines.append("input [\n" + ",\n".join(_tensor(t, batched) for t in tower.inputs) + "\n]")
    lines.append("output [\n" + ",\n".join(_tensor(t, batched) for t in tower.outputs) + "\n]")
    if batched:
        lines.append(f"dynamic_batching {{\n  max_queue_delay_microseconds: {options.queue_delay_us}\n}}")
    kind = "KIND_GPU" if options.device == "gpu" else "KIND_CPU"
    lines.append(f"instance_group [\n  {{\n    count: {options.instances}\n    kind: {kind}\n  }}\n]")
    if options.backend == "python" and options.threads:
        lines.append(f'parameters {{\n  key: "threads"\n  value: {{ string_value: "{options.threads}" }}\n}}')
    if options.backend == "onnxruntime" and options.threads:
        lines.append(f'parameters {{\n  key: "intra_op_thread_count"\n  value: {{ string_value: "{options.threads}" }}\n}}')
    if options.trt_accelerator:
        lines.append(
            "optimization {\n  execution_accelerators {\n    gpu_execution_accelerator: [\n      {\n"
            '        name: "tensorrt"\n'
            f'        parameters {{ key: "precision_mode" value: "{options.trt_precision}" }}\n'
            '        parameters { key: "max_workspace_size_bytes" value: "1073741824" }\n'
            "      }\n    ]\n  }\n}"
        )
    return "\n".join(lines) + "\n"
