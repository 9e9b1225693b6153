"""On real SynthVTR batches: export parity on a test split, and evaluation through Triton gives PyTorch's metrics."""
from __future__ import annotations

import os

import pytest

from clients.cli import main
from serving.triton.client import TritonTowers
from serving.triton.repository import read_manifest
from training.checkpoint import save_checkpoint
from training.engine.config import DataConfig
from training.engine.evaluate import evaluate_split
from training.engine.runner import TorchRunner
from training.models.factory import create_model

pytestmark = pytest.mark.slow
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def test_export_on_a_split_and_evaluate_through_triton(tmp_path, monkeypatch, start_server, capsys):
    monkeypatch.setenv("STRATA_HOME", str(tmp_path / "home"))
    data_dir = tmp_path / "synth"
    assert main(["synth", "--out", str(data_dir), "--videos", "100", "--captions-per-video", "2", "--no-progress"]) == 0
    from training.engine.data import prepare_data

    data = prepare_data(DataConfig(path=str(data_dir)), "hgr", "fast", progress=False)
    model = create_model("hgr", "fast", overrides=data.model_overrides("hgr", "fast"))
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
    with TritonTowers.from_repository(state.grpc_url, repo, "hgr_fast", version=1) as triton:
        through_triton = evaluate_split(triton, data, "tst", batch_size=16)
    in_pytorch = evaluate_split(TorchRunner(model), data, "tst", batch_size=16)
    assert through_triton["captions"] == in_pytorch["captions"] == len(captions)
    assert through_triton["fused"] == pytest.approx(in_pytorch["fused"])
    assert through_triton["levels"].keys() == in_pytorch["levels"].keys() == {"event", "action", "entity"}
    for level, metrics in in_pytorch["levels"].items():
        assert through_triton["levels"][level] == pytest.approx(metrics), level
    assert through_triton["binary_selection"] == pytest.approx(in_pytorch["binary_selection"])
