"""strata export: files, config, manifest, parity figures, and the refusals (overwrite, signature, options)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from clients.cli import main
from common.config import to_dict
from common.errors import ConfigError
from common.repository import MANIFEST_FORMAT, read_manifest
from export.batches import random_inputs
from export.exporter import ParityData, export_version, load_source
from export.parity import check_parity
from export.runner import OnnxRunner
from export.triton_config import ServingOptions
from training.engine.runner import TorchRunner
from training.models.factory import resolve_config

FAST_PARITY = ParityData(random_queries=32)


def _export(repo, version, seed=0, overrides=(), options=ServingOptions()):
    model, source = load_source(None, "vsepp", "fast", seed, overrides)
    return model, export_version(model, source, repo, version, options, FAST_PARITY)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    _export(repo, 1, seed=0)
    return repo


def test_files_config_and_manifest(repo):
    for part in ("text", "video", "scorer"):
        folder = repo / f"vsepp_fast_{part}"
        assert sorted(p.name for p in (folder / "1").iterdir()) == ["manifest.json", "model.onnx", "model.py"]
        assert (folder / "config.pbtxt").read_text().startswith(f'name: "vsepp_fast_{part}"\nbackend: "python"')
    manifest = read_manifest(repo, "vsepp_fast", 1, "scorer")
    assert manifest == json.loads((repo / "vsepp_fast_text" / "1" / "manifest.json").read_text())
    config = resolve_config("vsepp", "fast")
    assert (manifest["model"], manifest["preset"], manifest["base"], manifest["version"]) == ("vsepp", "fast", "vsepp_fast", 1)
    assert manifest["config"] == to_dict(config)
    assert manifest["layout"] == json.loads(json.dumps(config.layout().to_json()))
    assert manifest["levels"] == ["global"]
    assert manifest["preprocessing"]["max_frames"] == 20 and manifest["preprocessing"]["max_words"] == 30
    assert manifest["preprocessing"]["text_features"]["kind"] == "minilm"
    assert manifest["source"]["seed"] == 0 and manifest["source"]["checkpoint_sha256"] is None
    assert manifest["files"]["text"]["model.onnx"]["bytes"] == (repo / "vsepp_fast_text" / "1" / "model.onnx").stat().st_size
    parity = manifest["parity"]
    assert parity["data"] == "random" and len(parity["batches"]) == 3
    assert set(parity["outputs"]) == {"text.text_global", "text.text_index", "video.video_global", "video.video_index",
                                      "scorer.score", "scorer.level_scores"}
    assert all(f["max_abs"] <= 1e-4 for f in parity["outputs"].values())
    assert parity["ranking"] == {"text_to_video": {"queries": 32, "top_k_mismatches": 0},
                                 "video_to_text": {"queries": 32, "top_k_mismatches": 0}}


def test_refuses_overwrite_signature_change_and_other_options(repo):
    with pytest.raises(ConfigError, match="vsepp_fast_text/1 exists: versions are never overwritten"):
        _export(repo, 1)
    with pytest.raises(ConfigError, match="would change the signature of version 1"):
        _export(repo, 2, overrides=("embed_dim=128",))
    with pytest.raises(ConfigError, match="config.pbtxt differs"):
        _export(repo, 2, options=ServingOptions(max_batch_size=8))
    assert not (repo / "vsepp_fast_text" / "2").exists()
    assert not [p for p in repo.iterdir() if p.name.startswith(".staging")]


def test_refuses_a_model_that_declares_no_serving_tables(tmp_path, monkeypatch):
    """The manifest records the first stage the model's serving tables choose: without them there is none to record."""
    from training.models import factory

    monkeypatch.setattr(factory, "SERVING_TABLES_MODULE", "training.models.{name}.undeclared")
    with pytest.raises(ConfigError, match=r"model 'vsepp' declares no serving tables: "
                                          r"training/models/vsepp/undeclared\.py must define TABLES"):
        _export(tmp_path, 1)
    assert not list(tmp_path.iterdir())


def test_the_manifest_records_the_first_stage_of_the_models_serving_tables(repo):
    assert read_manifest(repo, "vsepp_fast", 1)["first_stage"] == {"videos": {"strategy": "index", "depth": 10},
                                                                   "captions": {"strategy": "index", "depth": 10}}


def test_parity_names_the_diverging_output(repo, tmp_path):
    """A PyTorch model against the ONNX graphs of other weights: the report says which output, by how much."""
    other, _ = load_source(None, "vsepp", "fast", seed=5)
    layout = other.layout
    batch = (random_inputs(layout.text, {"batch": 4, "words": 6}), random_inputs(layout.video, {"batch": 4, "frames": 5}))
    report = check_parity(TorchRunner(other), OnnxRunner(repo, "vsepp_fast", 1), [batch], ([batch[0]], [batch[1]]))
    assert not report.ok
    failures = "\n".join(report.failures())
    assert "text output 'text_global': max |diff|" in failures and "video output 'video_index'" in failures
    same = check_parity(TorchRunner(load_source(None, "vsepp", "fast", seed=0)[0]), OnnxRunner(repo, "vsepp_fast", 1),
                        [batch], ([batch[0]], [batch[1]]))
    assert same.ok, same.failures()


def test_onnxruntime_backend_has_no_python_adapter(tmp_path):
    _, manifest = _export(tmp_path, 3, options=ServingOptions(backend="onnxruntime"))
    assert sorted(p.name for p in (tmp_path / "vsepp_fast_video" / "3").iterdir()) == ["manifest.json", "model.onnx"]
    assert 'platform: "onnxruntime_onnx"' in (tmp_path / "vsepp_fast_video" / "config.pbtxt").read_text()
    assert manifest["serving"]["backend"] == "onnxruntime"


def test_cli_exports_a_checkpoint_with_its_hash(tmp_path, capsys):
    from training.checkpoint import checkpoint_hash, save_checkpoint

    model, _ = load_source(None, "vsepp", "fast", seed=3)
    ckpt = save_checkpoint(tmp_path / "ckpt", model, train_config={"model": "vsepp", "preset": "fast"})
    repo = tmp_path / "repo"
    assert main(["export", str(ckpt), "--repo", str(repo), "--version", "4", "--no-text-backbone"]) == 0
    assert not (repo / "text_backbone").exists()
    out = capsys.readouterr().out
    assert "exported vsepp_fast version 4" in out and "top-10 text_to_video: 96 queries, 0 mismatches" in out
    manifest = read_manifest(repo, "vsepp_fast", 4)
    assert manifest["source"]["checkpoint_sha256"] == checkpoint_hash(ckpt)
    text = random_inputs(model.layout.text, {"batch": 3, "words": 8})
    np.testing.assert_allclose(OnnxRunner(repo, "vsepp_fast").encode_text(text)["text_index"],
                               TorchRunner(model).encode_text(text)["text_index"], atol=1e-5)
    assert main(["export", "--repo", str(repo)]) == 2
    assert "give either a CHECKPOINT or --random-init" in capsys.readouterr().err


@pytest.mark.parametrize("reader", ["model", "frame_backbone"])
@pytest.mark.parametrize("found, fix", [(MANIFEST_FORMAT + 1, "written by a newer Strata .*upgrade Strata"),
                                        (MANIFEST_FORMAT - 1, "export this version again with this Strata"),
                                        (None, "export this version again with this Strata")])
def test_a_manifest_of_another_format_is_refused_with_the_fix(tmp_path, reader, found, fix):
    from common.frame_backbone import FRAME_BACKBONE, read_backbone

    folder = tmp_path / (FRAME_BACKBONE if reader == "frame_backbone" else "m_text") / "1"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({} if found is None else {"format": found}))
    with pytest.raises(ConfigError, match=fix):
        read_backbone(tmp_path, 1) if reader == "frame_backbone" else read_manifest(tmp_path, "m", 1)
