"""The PyTorch runner of a model's towers and scorer over NumPy dicts (see ``training.engine.evaluate``)."""
from __future__ import annotations

import numpy as np
import torch

from training.models.base import RetrievalModel


def to_tensors(arrays: dict[str, np.ndarray], names, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(np.ascontiguousarray(arrays[name])).to(device) for name in names}


class TorchRunner:
    def __init__(self, model: RetrievalModel, device: torch.device | str = "cpu"):
        self.model = model.eval()
        self.device = device
        self.levels = model.layout.levels

    @torch.no_grad()
    def encode_text(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self.model.encode_text(to_tensors(inputs, self.model.layout.text.input_names, self.device))
        return {k: v.cpu().numpy() for k, v in out.items()}

    @torch.no_grad()
    def encode_video(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self.model.encode_video(to_tensors(inputs, self.model.layout.video.input_names, self.device))
        return {k: v.cpu().numpy() for k, v in out.items()}

    @torch.no_grad()
    def score(self, text: dict[str, np.ndarray], video: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        layout = self.model.layout
        names_t = [n for n in layout.text.output_names if n in layout.scorer.input_names]
        names_v = [n for n in layout.video.output_names if n in layout.scorer.input_names]
        out = self.model.score(to_tensors(text, names_t, self.device), to_tensors(video, names_v, self.device))
        return {k: v.cpu().numpy() for k, v in out.items()}
