"""The frame backbone's contract (torch-free): one more model of the Triton repository, ``frame_backbone/<N>/``.

Its graph maps preprocessed images ``images`` [batch, 3, S, S] to ``frame_feat`` [batch, frame_dim] and, where it
has them, ``region_feat`` [batch, regions, region_dim]. ``strata export --frame-backbone`` writes it
(:mod:`export.backbone`); ingest decodes video files into its inputs (:mod:`serving.ingest.decode`) and runs it
(:mod:`serving.ingest.backbone`). This module is what both sides agree on: the names, the tensor layout, the image
preprocessing and the frame sampling rule recorded in each version's manifest, and the one check that a model version
reads the features a backbone gives (:func:`check_compatible`), run by ``strata export`` on whichever side is
exported second, by ``strata up`` and by the gateway before it decodes a file.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from common.errors import ConfigError
from common.layout import ModelLayout, TensorSpec, TowerLayout
from common.repository import (MANIFEST_FILE, check_manifest_format, latest_version, manifest_layout, model_bases,
                               read_manifest, versions)

FRAME_BACKBONE = "frame_backbone"
IMAGES, FRAME_FEAT, REGION_FEAT = "images", "frame_feat", "region_feat"


def backbone_layout(size: int, frame_dim: int, regions: int = 0, region_dim: int = 0) -> TowerLayout:
    outputs = [TensorSpec(FRAME_FEAT, "float32", ("batch", frame_dim), "one feature per frame")]
    if regions:
        outputs.append(TensorSpec(REGION_FEAT, "float32", ("batch", regions, region_dim), "region features per frame"))
    return TowerLayout(inputs=(TensorSpec(IMAGES, "float32", ("batch", 3, size, size), "preprocessed RGB frames"),),
                       outputs=tuple(outputs))


SAMPLING = ("every frame of the first video stream decoded in presentation order; n > T frames keep "
            "round(linspace(0, n - 1, T)) (NumPy round), n <= T keep all n, zero-padded with a mask by the tower")


@dataclass(frozen=True)
class ImageSpec:
    size: int = 224
    resize: int = 256
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def to_dict(self) -> dict:
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: dict) -> "ImageSpec":
        return cls(int(data["size"]), int(data["resize"]), tuple(data["mean"]), tuple(data["std"]))


@dataclass(frozen=True)
class BackboneInfo:
    version: int
    manifest: dict

    @property
    def image(self) -> ImageSpec:
        return ImageSpec.from_dict(self.manifest["image"])

    @property
    def frame_dim(self) -> int:
        return int(self.manifest["frame_dim"])

    @property
    def regions(self) -> int:
        return int(self.manifest["regions"]["count"])

    @property
    def region_dim(self) -> int:
        return int(self.manifest["regions"]["dim"])

    @property
    def layout(self) -> TowerLayout:
        return backbone_layout(self.image.size, self.frame_dim, self.regions, self.region_dim)


def read_backbone(repo: str | Path, version: int | None = None) -> BackboneInfo:
    """``frame_backbone`` version ``version`` (None: the latest) of ``repo``."""
    found = versions(Path(repo), FRAME_BACKBONE)
    if not found:
        raise ConfigError(f"{repo} has no {FRAME_BACKBONE}: export one (strata export --frame-backbone resnet152 "
                          f"--weights FILE, or --frame-backbone YOUR.onnx) before indexing raw video")
    version = found[-1] if version is None else int(version)
    path = Path(repo) / FRAME_BACKBONE / str(version) / MANIFEST_FILE
    if not path.is_file():
        raise ConfigError(f"{repo}: {FRAME_BACKBONE} version {version} has no manifest ({path})")
    manifest = json.loads(path.read_text())
    check_manifest_format(path, manifest)
    return BackboneInfo(version, manifest)


def video_sizes(video_config: Mapping, layout: ModelLayout) -> tuple[int, int]:
    """(frame_dim, region_dim) of the features a model version takes per video; region_dim 0 where its video tower
    reads no regions. Frames are always given (they set the frame axis and are stored as the video's source)."""
    reads_regions = "region_feats" in layout.video.input_names
    return int(video_config["frame_dim"]), int(video_config["region_dim"]) if reads_regions else 0


def check_compatible(info: BackboneInfo, model: str, frame_dim: int, region_dim: int) -> None:
    """Refuse a backbone whose features the model cannot read (frame_dim, or regions where the model reads them),
    naming both sizes and the fix. Any region count is taken: both region models read a frame's regions as a set."""
    backbone = f"{FRAME_BACKBONE} version {info.version} ({info.manifest.get('source', 'unknown source')})"
    fix = ("export a backbone that gives them (strata export --frame-backbone resnet152 gives 2048-d frames and, "
           "with --grid, 2048-d regions; a user ONNX gives its outputs' sizes), or export the model with those "
           "sizes (--set video.frame_dim=N --set video.region_dim=N) or into another repository")
    if info.frame_dim != frame_dim:
        raise ConfigError(f"{backbone} gives {info.frame_dim}-d frame features; {model} reads {frame_dim}-d frames: "
                          f"{fix}")
    if region_dim and info.regions == 0:
        raise ConfigError(f"{model} reads {region_dim}-d region features; {backbone} gives none: {fix}")
    if region_dim and info.region_dim != region_dim:
        raise ConfigError(f"{backbone} gives {info.region_dim}-d regions; {model} reads {region_dim}-d regions: "
                          f"{fix}")


def latest_backbone(repo: str | Path) -> BackboneInfo | None:
    """The repository's latest ``frame_backbone``, or None where it has none."""
    return read_backbone(repo) if versions(Path(repo), FRAME_BACKBONE) else None


def check_version(repo: str | Path, base: str, version: int, info: BackboneInfo | None = None) -> None:
    """``base`` version ``version`` of the repository reads ``info`` (None: the repository's latest backbone, and
    nothing to check where it has none). ``strata up`` runs it for the version it serves."""
    info = info or latest_backbone(repo)
    if info is not None:
        manifest = read_manifest(Path(repo), base, version)
        check_compatible(info, f"{base} version {version}",
                         *video_sizes(manifest["config"]["video"], manifest_layout(manifest)))


def check_backbone(repo: str | Path, info: BackboneInfo) -> None:
    """Every model of the repository (its latest version) reads the backbone ``info``; run at its export."""
    for base in model_bases(Path(repo)):
        check_version(repo, base, latest_version(Path(repo), base), info)
