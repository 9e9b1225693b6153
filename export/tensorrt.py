"""TensorRT engine plans for the ``tensorrt`` backend: built from the exported ONNX files on a GPU machine.

A plan is specific to the GPU model and TensorRT version that built it, so it is built where it will be served:
by the export itself on a GPU host (``build_plans``), or, with ``--plans-on-serving-gpu``, by the serving host's
init step, which runs NVIDIA's ``trtexec`` (from the TensorRT image of Triton's release) on each version folder
that has ``model.onnx`` and :data:`PLAN_SHAPES` but no plan yet: ``trtexec --onnx=model.onnx
--saveEngine=model.plan $(cat model.plan.shapes)`` (deploy/k8s/triton.yaml). Every dynamic axis gets one
optimisation profile range ``[1, max]`` either way; the maxima come from the preprocessing limits (words, verbs,
nouns, frames) and the batching options.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from common.errors import ConfigError
from common.repository import ONNX_FILE, PARTS, PLAN_FILE, part_layout, version_dir
from export.triton_config import ServingOptions
from training.engine.config import DataConfig

PLAN_SHAPES = "model.plan.shapes"   # trtexec's profile and precision flags, beside a plan built on the serving GPU
MAX_REGIONS = 36        # detector regions per frame: the usual bottom-up attention count
MAX_CANDIDATES = 256    # videos one scorer call re-ranks
WORKSPACE_BYTES = 1 << 30


def require_gpu() -> None:
    """Stop with a clear message where no NVIDIA GPU is visible."""
    smi = shutil.which("nvidia-smi")
    found = smi is not None and subprocess.run([smi, "-L"], capture_output=True, text=True).stdout.startswith("GPU")
    if not found:
        raise ConfigError("--backend tensorrt builds engine plans on a GPU, and this machine has none (nvidia-smi "
                          "lists no GPU); export with --backend python or onnxruntime here and build the plans on "
                          "the GPU machine that will serve them")


def axis_max(limits: DataConfig, options: ServingOptions) -> dict[str, int]:
    return {"batch": options.max_batch_size, "texts": options.max_batch_size, "videos": MAX_CANDIDATES,
            "words": limits.max_words, "verbs": limits.max_verbs, "nouns": limits.max_nouns,
            "frames": limits.max_frames, "regions": MAX_REGIONS}


def profile_shapes(spec, maxima: dict[str, int]) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(min, opt, max) shapes of one input: dynamic axes range over [1, max] with opt at half the max."""
    lo = tuple(1 if isinstance(d, str) else d for d in spec.shape)
    hi = tuple(maxima[d] if isinstance(d, str) else d for d in spec.shape)
    opt = tuple(max(1, h // 2) if isinstance(d, str) else d for d, h in zip(spec.shape, hi))
    return lo, opt, hi


def trtexec_flags(tower, maxima: dict[str, int], precision: str) -> str:
    """trtexec's flags for one part: its inputs' (min, opt, max) shapes, as ``build_plans`` profiles them, and the
    precision."""
    shapes = {spec.name: profile_shapes(spec, maxima) for spec in tower.inputs}
    flags = [f"--{which}Shapes=" + ",".join(f"{name}:{'x'.join(map(str, shape[k]))}" for name, shape in shapes.items())
             for k, which in enumerate(("min", "opt", "max"))]
    return " ".join(flags + (["--fp16"] if precision == "FP16" else []))


def write_plan_shapes(repo: Path, base: str, version: int, layout, options: ServingOptions, limits: DataConfig) -> None:
    """Beside each part's ONNX, the trtexec flags that build its plan on the serving GPU."""
    maxima = axis_max(limits, options)
    for part in PARTS:
        flags = trtexec_flags(part_layout(layout, part), maxima, options.trt_precision)
        (version_dir(repo, base, part, version) / PLAN_SHAPES).write_text(flags + "\n")


def build_plans(repo: Path, base: str, version: int, layout, options: ServingOptions, limits: DataConfig, log=print) -> None:
    try:
        import tensorrt as trt
    except ImportError:
        raise ConfigError("--backend tensorrt needs the TensorRT Python package on the GPU machine "
                          "(pip install tensorrt)") from None
    maxima = axis_max(limits, options)
    logger = trt.Logger(trt.Logger.WARNING)
    for part in PARTS:
        folder = version_dir(repo, base, part, version)
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse((folder / ONNX_FILE).read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ConfigError(f"TensorRT cannot parse {folder / ONNX_FILE}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
        if options.trt_precision == "FP16":
            config.set_flag(trt.BuilderFlag.FP16)
        profile = builder.create_optimization_profile()
        for spec in part_layout(layout, part).inputs:
            profile.set_shape(spec.name, *profile_shapes(spec, maxima))
        config.add_optimization_profile(profile)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise ConfigError(f"TensorRT failed to build a plan for {folder / ONNX_FILE} (see its log above)")
        (folder / PLAN_FILE).write_bytes(bytes(plan))
        log(f"built {folder / PLAN_FILE}")
