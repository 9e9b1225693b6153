"""TensorRT plans built on the serving GPU: `strata export --backend tensorrt --plans-on-serving-gpu` needs no GPU
and writes, beside each part's ONNX, the trtexec flags of its plan (the profile `build_plans` would use); Triton's
init step (deploy/k8s/build-plans.sh) runs trtexec once for each version that lacks a plan; the version then loads
with its plan, and with nothing else unlisted.

No GPU or TensorRT runs here, so the init step's trtexec is a stand-in script that records its arguments and
writes an engine file; the real one is NVIDIA's, in the image triton.yaml names."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from clients.cli import main
from common.errors import ConfigError
from common.repository import (ONNX_FILE, PARTS, PLAN_FILE, TamperedVersion, manifest_layout, model_name, part_layout,
                               verify_version, version_dir)
from export.tensorrt import PLAN_SHAPES, axis_max, profile_shapes

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
BASE = "hgr_fast"
FAKE_TRTEXEC = """#!/bin/sh
# records its arguments, and writes an "engine" where --saveEngine says
echo "$*" >> "$CALLS"
for arg in "$@"; do case $arg in --saveEngine=*) printf 'engine' > "${arg#--saveEngine=}" ;; esac; done
"""


@pytest.fixture(scope="module")
def deferred(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("trt") / "repo"
    assert main(["export", "--model", "hgr", "--preset", "fast", "--random-init", "--no-text-backbone",
                 "--backend", "tensorrt", "--plans-on-serving-gpu", "--repo", str(repo)]) == 0
    return repo


def manifest(repo: Path) -> dict:
    return json.loads((version_dir(repo, BASE, "text", 1) / "manifest.json").read_text())


def test_the_export_writes_each_part_s_onnx_and_plan_shapes_and_no_plan(deferred):
    from export.triton_config import ServingOptions
    from training.engine.config import DataConfig

    recorded = manifest(deferred)
    assert recorded["serving"]["backend"] == "tensorrt" and recorded["serving"]["trt_plans"] == "serving"
    limits = DataConfig(path="", **{k: v for k, v in recorded["preprocessing"].items()
                                    if k in DataConfig.__dataclass_fields__})
    maxima = axis_max(limits, ServingOptions(**recorded["serving"]))
    layout = manifest_layout(recorded)
    for part in PARTS:
        folder = version_dir(deferred, BASE, part, 1)
        assert (folder / ONNX_FILE).is_file() and not (folder / PLAN_FILE).exists()
        assert 'platform: "tensorrt_plan"' in (folder.parent / "config.pbtxt").read_text()
        flags = dict(flag.split("=", 1) for flag in (folder / PLAN_SHAPES).read_text().split() if "=" in flag)
        for k, which in enumerate(("min", "opt", "max")):
            shapes = dict(item.split(":") for item in flags[f"--{which}Shapes"].split(","))
            want = {spec.name: "x".join(map(str, profile_shapes(spec, maxima)[k]))
                    for spec in part_layout(layout, part).inputs}
            assert shapes == want, (part, which)
        assert "--fp16" in (folder / PLAN_SHAPES).read_text().split()   # the default precision, as build_plans
        verify_version(deferred, model_name(BASE, part), 1)   # no plan yet: the files are the export's


def test_the_init_step_builds_each_missing_plan_once_and_the_version_then_loads(deferred, tmp_path):
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "trtexec").write_text(FAKE_TRTEXEC)
    (tools / "trtexec").chmod(0o755)
    calls = tmp_path / "calls"
    env = {**os.environ, "PATH": f"{tools}:{os.environ['PATH']}", "MODEL_REPOSITORY": str(deferred),
           "CALLS": str(calls)}
    script = DEPLOY / "k8s" / "build-plans.sh"
    first = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert f"{len(PARTS)} plan(s) built" in first.stdout
    lines = calls.read_text().splitlines()
    assert len(lines) == len(PARTS)
    for part in PARTS:
        folder = version_dir(deferred, BASE, part, 1)
        (line,) = [line for line in lines if f"--onnx={folder / ONNX_FILE}" in line]
        assert line.endswith((folder / PLAN_SHAPES).read_text().strip())   # the export's flags, as written
        assert (folder / PLAN_FILE).read_text() == "engine" and not (folder / "model.plan.tmp").exists()
        verify_version(deferred, model_name(BASE, part), 1)   # the built plan is the one file the manifest may lack
    again = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "0 plan(s) built" in again.stdout and len(calls.read_text().splitlines()) == len(PARTS)
    stray = version_dir(deferred, BASE, "video", 1) / "extra.bin"
    stray.write_bytes(b"x")
    with pytest.raises(TamperedVersion, match="extra.bin was not written by the export"):
        verify_version(deferred, model_name(BASE, "video"), 1)
    stray.unlink()


def test_plans_on_the_serving_gpu_are_an_option_of_the_tensorrt_backend_alone():
    from export.cli import _backbone_options
    from export.triton_config import ServingOptions

    with pytest.raises(ConfigError, match="--plans-on-serving-gpu is an option of --backend tensorrt"):
        ServingOptions(backend="onnxruntime", device="gpu", trt_plans="serving")
    # the text backbone beside such an export is served by ONNX Runtime on the GPU, with no plan of its own
    backbone = _backbone_options(ServingOptions(backend="tensorrt", device="gpu", trt_plans="serving"))
    assert (backbone.backend, backbone.device, backbone.trt_plans) == ("onnxruntime", "gpu", "export")
