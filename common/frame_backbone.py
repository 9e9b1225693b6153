"""The frame backbone's contract (torch-free): one more model of the Triton repository, ``frame_backbone/<N>/``.

Its graph maps preprocessed images ``images`` [batch, 3, S, S] to ``frame_feat`` [batch, frame_dim] and, where it
has them, ``region_feat`` [batch, regions, region_dim]. ``strata export --frame-backbone`` writes it
(:mod:`export.backbone`); ingest decodes video files into its inputs (:mod:`serving.ingest.decode`) and runs it
(:mod:`serving.ingest.backbone`). This module is what both sides agree on: the names, the tensor layout, the image
preprocessing and the frame sampling rule recorded in each version's manifest.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from common.layout import TensorSpec, TowerLayout

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
