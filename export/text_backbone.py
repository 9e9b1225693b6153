"""Export the frozen MiniLM text backbone, with its word and sentence pooling, to ONNX.

The exported graph is :class:`training.text.features.MiniLMBackbone` — the module that fills the training
feature cache — so serving computes the same features. Tensor names and dynamic axes come from
``training.text.tokenize.BACKBONE_LAYOUT``, which the Triton adapters and clients import too.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from export.onnx import OPSET, parity_checked_warnings
from training.text.features import MiniLMBackbone
from training.text.tokenize import BACKBONE_LAYOUT, TokenizerConfig, WordTokenizer

ONNX_FILENAME = "text_backbone.onnx"

# Two captions of different lengths, so that padding is part of the traced example.
_EXAMPLE = (["a", "dog", "is", "chasing", "a", "cat", "on", "the", "grass"], ["a", "girl", "sings"])


def export_text_backbone(out_dir: str | Path, filename: str = ONNX_FILENAME,
                         backbone: MiniLMBackbone | None = None) -> Path:
    """Write the backbone to ``out_dir/filename`` (opset 17, dynamic batch/sub-token/word axes); return the path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / filename
    module = (backbone or MiniLMBackbone.pretrained()).eval()
    tokens = WordTokenizer(TokenizerConfig())(_EXAMPLE).backbone_inputs()
    args = tuple(torch.from_numpy(tokens[name]) for name in BACKBONE_LAYOUT.input_names)
    with torch.inference_mode(), parity_checked_warnings():
        # transformers' mask code branches on shapes; for this encoder both traced branches are fixed
        # (a mask is always given, its length is the sequence length), as the ONNX parity test checks.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=list(BACKBONE_LAYOUT.input_names),
            output_names=list(BACKBONE_LAYOUT.output_names),
            dynamic_axes={t.name: t.dynamic_axes for t in BACKBONE_LAYOUT.inputs + BACKBONE_LAYOUT.outputs},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    return path
