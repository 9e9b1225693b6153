"""A tiny user frame backbone ONNX for the ingest tests: 32 x 32 images -> 32-d frames (and a second output of
``grid`` x ``grid`` = 4 regions of 24-d by default: the cells of its feature map)."""
from __future__ import annotations

from pathlib import Path

FRAME_DIM, REGIONS, REGION_DIM, SIZE = 32, 4, 24, 32


def write_tiny_backbone(path: Path, seed: int = 0, frame_dim: int = FRAME_DIM, regions: bool = False,
                        region_dim: int = REGION_DIM, grid: int = 2) -> Path:
    import torch
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 16, 4, stride=4)            # [b, 16, 8, 8]
            self.frame = nn.Linear(16, frame_dim)
            self.region = nn.Linear(16, region_dim)

        def forward(self, x):
            fmap = torch.relu(self.conv(x))
            frame = self.frame(fmap.mean(dim=(2, 3)))
            if not regions:
                return frame
            cells = nn.functional.adaptive_avg_pool2d(fmap, grid).flatten(2).transpose(1, 2)   # [b, grid^2, 16]
            return frame, self.region(cells)

    torch.manual_seed(seed)
    names = ["frame_out", "region_out"] if regions else ["frame_out"]
    axes = {"pixels": {0: "n"}, **{n: {0: "n"} for n in names}}
    with torch.no_grad():
        torch.onnx.export(Tiny().eval(), (torch.zeros(2, 3, SIZE, SIZE),), str(path), input_names=["pixels"],
                          output_names=names, dynamic_axes=axes, opset_version=17, dynamo=False)
    return path
