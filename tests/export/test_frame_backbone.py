"""The frame backbone: ResNet-152 written with torchvision's keys, exported on one frame; a user ONNX checked at
export; a backbone whose size the model does not read is a clear error."""
from __future__ import annotations

import json

import pytest

from common.errors import ConfigError
from common.frame_backbone import FRAME_BACKBONE, check_compatible, read_backbone
from export.backbone import export_frame_backbone
from tests.serving.ingest.tiny_backbone import write_tiny_backbone


def test_resnet152_has_torchvision_keys_and_parameter_count():
    from export.resnet import resnet152

    state = resnet152().state_dict()
    # torchvision's resnet152: 60,192,808 parameters; keys as its state dict names them
    assert sum(v.numel() for k, v in state.items() if "running" not in k and "num_batches" not in k) == 60_192_808
    for key in ("conv1.weight", "bn1.running_mean", "layer1.0.downsample.0.weight", "layer1.0.downsample.1.weight",
                "layer3.35.conv3.weight", "layer4.2.bn3.bias", "fc.weight", "fc.bias"):
        assert key in state
    # 155 convolutions (1 + 50 blocks x 3 + 4 downsamples), each with a BatchNorm of 5 entries, and fc: 932 keys
    assert len(state) == 155 + 155 * 5 + 2


@pytest.mark.slow
def test_resnet152_exports_with_grid_regions_and_matches_pytorch(tmp_path):
    import torch

    from export.resnet import resnet152

    weights = tmp_path / "resnet152.pth"
    torch.manual_seed(5)
    torch.save(resnet152().state_dict(), weights)
    manifest = export_frame_backbone(tmp_path / "repo", "resnet152", 1, weights=str(weights), grid=6, log=lambda *_: None)
    assert manifest["frame_dim"] == 2048
    assert manifest["regions"]["count"] == 36 and manifest["regions"]["dim"] == 2048
    assert "grid" in manifest["regions"]["source"] and "resnet152.pth" in manifest["source"]
    assert "linspace" in manifest["sampling"]
    assert manifest["parity"]["frames"] == 1
    info = read_backbone(tmp_path / "repo")
    assert (info.version, info.image.size) == (1, 224)
    assert (tmp_path / "repo" / FRAME_BACKBONE / "config.pbtxt").read_text().count("dims: [ 3, 224, 224 ]") == 1


def test_a_weights_file_of_another_architecture_is_refused(tmp_path):
    import torch

    weights = tmp_path / "other.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, weights)
    with pytest.raises(ConfigError, match="not a torchvision ResNet-152 state dict"):
        export_frame_backbone(tmp_path / "repo", "resnet152", 1, weights=str(weights), log=lambda *_: None)


def test_a_user_onnx_is_renamed_checked_and_recorded(tmp_path):
    onnx = write_tiny_backbone(tmp_path / "tiny.onnx", regions=True)
    manifest = export_frame_backbone(tmp_path / "repo", str(onnx), 1, log=lambda *_: None)
    assert (manifest["frame_dim"], manifest["regions"]["count"], manifest["regions"]["dim"]) == (32, 4, 24)
    assert manifest["image"]["size"] == 32 and manifest["source"] == "user ONNX tiny.onnx"
    saved = json.loads((tmp_path / "repo" / FRAME_BACKBONE / "1" / "manifest.json").read_text())
    assert saved["regions"]["source"] == "user graph's second output"
    with pytest.raises(ConfigError, match="gives 32-d frame features, --frame-dim says 2048"):
        export_frame_backbone(tmp_path / "repo", str(onnx), 2, frame_dim=2048, log=lambda *_: None)


def test_a_backbone_of_another_size_than_the_model_reads_is_a_clear_error(tmp_path):
    export_frame_backbone(tmp_path / "repo", str(write_tiny_backbone(tmp_path / "tiny.onnx")), 1, log=lambda *_: None)
    info = read_backbone(tmp_path / "repo")
    check_compatible(info, "vsepp_fast version 1", 32, 0)
    with pytest.raises(ConfigError, match="gives 32-d frame features; hgr_fast version 1 reads 256-d frames"):
        check_compatible(info, "hgr_fast version 1", 256, 0)
    with pytest.raises(ConfigError, match="visern_fast version 1 reads 24-d region features; frame_backbone version 1 "
                                          r"\(user ONNX tiny.onnx\) gives none"):
        check_compatible(info, "visern_fast version 1", 32, 24)


def test_a_model_export_into_a_repository_whose_backbone_it_cannot_read_is_refused_before_any_work(tmp_path, capsys):
    from clients.cli import main
    from common.repository import model_names

    repo = tmp_path / "repo"
    export_frame_backbone(repo, str(write_tiny_backbone(tmp_path / "tiny.onnx")), 1, log=lambda *_: None)
    rc = main(["export", "--model", "vsepp", "--preset", "fast", "--random-init", "--no-text-backbone",
               "--set", "video.frame_dim=48", "--repo", str(repo)])
    assert rc == 2
    assert "gives 32-d frame features; vsepp_fast version 1 reads 48-d frames" in capsys.readouterr().err
    assert model_names(repo) == [FRAME_BACKBONE]


def test_not_an_onnx_file_is_refused(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a graph")
    with pytest.raises(ConfigError, match="bad.onnx: not an ONNX model"):
        export_frame_backbone(tmp_path / "repo", str(bad), 1, log=lambda *_: None)


def test_grid_cells_equal_adaptive_average_pooling():
    import torch

    from export.resnet import grid_cells

    fmap = torch.randn(2, 5, 7, 7)
    for grid in (1, 2, 6, 7):
        expected = torch.nn.functional.adaptive_avg_pool2d(fmap, grid).flatten(2).transpose(1, 2)
        assert torch.allclose(grid_cells(fmap, grid), expected, atol=1e-6)
