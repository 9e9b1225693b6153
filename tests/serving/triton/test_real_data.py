"""On real SynthVTR batches: export parity on a test split; evaluating a checkpoint through its exported graphs
(ONNX Runtime, Triton) gives its PyTorch metrics."""
from __future__ import annotations

import os
from functools import partial

import pytest

from clients.cli import main
from common.errors import ConfigError
from common.repository import read_manifest
from evaluation.runners import runner_for_checkpoint
from export.versions import checkpoint_version, weights_sha256
from serving.triton.client import TritonTowers
from training.checkpoint import checkpoint_hash, save_checkpoint
from training.engine.config import DataConfig
from training.engine.session import evaluate_checkpoint
from training.models.factory import create_model

pytestmark = pytest.mark.slow
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def test_export_on_a_split_and_evaluate_through_triton(tmp_path, monkeypatch, start_server, capsys):
    monkeypatch.setenv("STRATA_HOME", str(tmp_path / "home"))
    data_dir = tmp_path / "synth"
    assert main(["synth", "--out", str(data_dir), "--videos", "100", "--captions-per-video", "2", "--no-progress"]) == 0
    from training.engine.data import prepare_data

    data = prepare_data(DataConfig(path=str(data_dir)), "hgr", "fast", progress=False)
    model = create_model("hgr", "fast", overrides=data.model_overrides())
    ckpt = save_checkpoint(tmp_path / "ckpt", model, train_config={"model": "hgr", "preset": "fast",
                                                                    "data": {"path": str(data_dir), "max_frames": 20}})
    repo = tmp_path / "repo"
    # the checkpoint's training data is the default parity data
    assert main(["export", str(ckpt), "--repo", str(repo), "--no-text-backbone"]) == 0
    assert f"parity on {data_dir}:tst" in capsys.readouterr().out
    manifest = read_manifest(repo, "hgr_fast", 1)
    _, captions, _ = data.eval_set("tst")
    assert manifest["parity"]["ranking"]["text_to_video"] == {"queries": len(captions), "top_k_mismatches": 0}
    assert all(f["max_abs"] <= 1e-4 for f in manifest["parity"]["outputs"].values())

    _, state = start_server(repo)
    runners = {"torch": None, **{backend: partial(runner_for_checkpoint, ckpt, backend, str(repo), url=state.grpc_url)
                                 for backend in ("onnx", "triton")}}
    results = {backend: evaluate_checkpoint(ckpt, data=data, splits=["tst"], make_runner=make_runner, backend=backend,
                                            log=lambda *_: None)["splits"]["tst"]
               for backend, make_runner in runners.items()}
    assert isinstance(runner_for_checkpoint(ckpt, "triton", repo, url=state.grpc_url), TritonTowers)
    in_pytorch = results["torch"]
    assert in_pytorch["captions"] == len(captions)
    for backend in ("onnx", "triton"):
        assert results[backend]["fused"] == pytest.approx(in_pytorch["fused"]), backend
        assert results[backend]["levels"].keys() == in_pytorch["levels"].keys() == {"event", "action", "entity"}
        for level, metrics in in_pytorch["levels"].items():
            assert results[backend]["levels"][level] == pytest.approx(metrics), (backend, level)
        assert results[backend]["binary_selection"] == pytest.approx(in_pytorch["binary_selection"]), backend


def test_a_version_not_exported_from_the_checkpoint_is_refused(tmp_path):
    model = create_model("vsepp", "fast")
    ckpt = save_checkpoint(tmp_path / "ckpt", model, train_config={"model": "vsepp", "preset": "fast"})
    assert weights_sha256(ckpt) == checkpoint_hash(ckpt)
    with pytest.raises(ConfigError, match="any version .* of vsepp_fast was not exported from"):
        checkpoint_version(ckpt, tmp_path / "repo")
