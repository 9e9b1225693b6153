"""ResNet-152 written here, with torchvision's state-dict keys (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer1.0.downsample.0``, ..., ``fc``), so a user's torchvision weights file loads with ``strict=True``.

torchvision's wheel does not import beside this project's CPU torch (its compiled operators do not register), so
the architecture is written out: the bottleneck ResNet of He et al. (2016), v1.5 as torchvision builds it (the
stride sits on the 3x3 convolution), layers [3, 8, 36, 3] -- the backbone behind HGR's released features.
"""
from __future__ import annotations

import torch
from torch import nn

RESNET152_LAYERS = (3, 8, 36, 3)
FEATURE_DIM = 2048


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, layers: tuple[int, ...] = RESNET152_LAYERS, num_classes: int = 1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._layer(64, layers[0])
        self.layer2 = self._layer(128, layers[1], stride=2)
        self.layer3 = self._layer(256, layers[2], stride=2)
        self.layer4 = self._layer(512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * Bottleneck.expansion, num_classes)
        for m in self.modules():   # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * Bottleneck.expansion, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes * Bottleneck.expansion))
        layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """[batch, 3, H, W] -> layer4's map [batch, 2048, H/32, W/32]."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.feature_map(x)), 1))


def resnet152() -> ResNet:
    return ResNet(RESNET152_LAYERS)


class FrameFeatures(nn.Module):
    """The frame backbone's graph: images -> the pooled frame feature (HGR's: layer4 averaged, 2048-d) and grid
    regions (layer4's cells average-pooled to ``grid`` x ``grid``, row-major; Jiang et al., CVPR 2020)."""

    def __init__(self, resnet: ResNet, grid: int):
        super().__init__()
        self.resnet, self.grid = resnet, grid

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fmap = self.resnet.feature_map(images)                                   # [b, 2048, h, w]
        frame = fmap.mean(dim=(2, 3))                                             # [b, 2048]
        return frame, grid_cells(fmap, self.grid)                                 # [b, g*g, 2048]


def grid_cells(fmap: torch.Tensor, grid: int) -> torch.Tensor:
    """[b, c, h, w] -> [b, grid*grid, c]: adaptive average pooling written as slices (PyTorch's bins: rows
    floor(i h / g) .. ceil((i + 1) h / g)), since the ONNX exporter refuses a size that does not divide the map."""
    h, w = int(fmap.shape[2]), int(fmap.shape[3])
    cells = []
    for i in range(grid):
        for j in range(grid):
            rows = slice(i * h // grid, -(-(i + 1) * h // grid))
            cols = slice(j * w // grid, -(-(j + 1) * w // grid))
            cells.append(fmap[:, :, rows, cols].mean(dim=(2, 3)))
    return torch.stack(cells, dim=1)
