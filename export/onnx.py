"""One part of a model (text tower, video tower or scorer) as an ONNX graph, and its PyTorch reference outputs.

The graph takes the part's inputs positionally in layout order and returns its outputs in layout order, with
the layout's dynamic axes (batch, words, frames, ...). Model tests use it too::

    path = export_part(model, "text", batch, tmp_path / "text.onnx")
    onnx = OnnxPart(path).run(batch)                 # export.runner
    torch_ = torch_outputs(model, "text", batch)
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.layout import TowerLayout
from common.repository import part_layout

OPSET = 17
Arrays = Mapping[str, np.ndarray]


class PartModule(nn.Module):
    """``model``'s ``part`` as a module with positional inputs and a tuple of outputs, both in layout order."""

    def __init__(self, model: nn.Module, part: str):
        super().__init__()
        self.model = model
        self.part = part
        self.tower: TowerLayout = part_layout(model.layout, part)

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        named = dict(zip(self.tower.input_names, args))
        if self.part == "text":
            out = self.model.encode_text(named)
        elif self.part == "video":
            out = self.model.encode_video(named)
        else:
            text = {k: v for k, v in named.items() if k.startswith("text_")}
            video = {k: v for k, v in named.items() if k.startswith("video_")}
            out = self.model.score(text, video)
        return tuple(out[name] for name in self.tower.output_names)


def _tensors(tower: TowerLayout, inputs: Arrays) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(np.ascontiguousarray(inputs[name])) for name in tower.input_names)


@torch.no_grad()
def torch_outputs(model: nn.Module, part: str, inputs: Arrays) -> dict[str, np.ndarray]:
    """Eager PyTorch outputs of ``part`` (model in eval mode), keyed by the layout's output names."""
    module = PartModule(model, part).eval()
    out = module(*_tensors(module.tower, inputs))
    return {name: t.numpy() for name, t in zip(module.tower.output_names, out)}


@contextmanager
def parity_checked_warnings() -> Iterator[None]:
    """Silence the exporter's warnings that the parity check answers (every export is compared with PyTorch on
    batches of several sizes before it is written), so they do not reach the user as if something were wrong."""
    with warnings.catch_warnings():
        # A GRU traced at batch > 1 "may fail at other batch sizes": parity runs every graph at several.
        warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size other than 1")
        # Advanced indexing (x[rows, cols]) exports as Reshape/Transpose/Concat/Gather, and the exporter warns that
        # negative indices would then give wrong results. The graphs index only with non-negative positions they
        # compute themselves (arange, lengths, argmax), and parity checks the result.
        warnings.filterwarnings("ignore", message=r"Exporting aten::index operator of advanced indexing")
        # The legacy TorchScript exporter (dynamo=False) is the chosen one; its deprecation notices are not news.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        yield


def export_part(model: nn.Module, part: str, inputs: Arrays, path: str | Path) -> Path:
    """Trace ``part`` on the sample ``inputs`` (give every dynamic axis a size > 1) and write it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = PartModule(model, part).eval()
    tower = module.tower
    dynamic_axes = {t.name: t.dynamic_axes for t in tower.inputs + tower.outputs if t.dynamic_axes}
    with torch.no_grad(), parity_checked_warnings():
        torch.onnx.export(
            module,
            _tensors(tower, inputs),
            str(path),
            input_names=list(tower.input_names),
            output_names=list(tower.output_names),
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            dynamo=False,
        )
    return path
