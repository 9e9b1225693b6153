"""The MiniLM text backbone: exported once beside the first MiniLM model, served by Triton, feeding a text tower."""
from __future__ import annotations

import os

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from clients.cli import main
from common.repository import ONNX_FILE, TEXT_BACKBONE, versions
from export.runner import OnnxPart, OnnxRunner
from serving.triton.client import TritonModel, TritonTowers
from training.text.tokenize import BACKBONE_LAYOUT, WordTokenizer

pytestmark = pytest.mark.slow
os.environ.setdefault("HF_HUB_OFFLINE", "1")

CAPTIONS = ["a dog runs after a cat in the garden", "a man sings", "two children build a sandcastle on the beach"]


def test_backbone_then_text_tower_through_triton_equal_onnx_runtime(tmp_path, start_server, capsys):
    repo = tmp_path / "repo"
    assert main(["export", "--model", "vsepp", "--preset", "fast", "--random-init", "--repo", str(repo)]) == 0
    assert versions(repo, TEXT_BACKBONE) == [1]  # added with the first MiniLM model
    assert main(["export", "--model", "vsepp", "--preset", "fast", "--random-init", "--seed", "1", "--repo", str(repo)]) == 0
    assert versions(repo, TEXT_BACKBONE) == [1]  # ... and only once
    capsys.readouterr()

    _, state = start_server(repo, [TEXT_BACKBONE, "vsepp_fast_text"])
    tokens = WordTokenizer()([c.split() for c in CAPTIONS])
    ort_backbone = OnnxPart(repo / TEXT_BACKBONE / "1" / ONNX_FILE)
    ort_text = OnnxRunner(repo, "vsepp_fast", 2, parts=("text",))
    want_feats = ort_backbone.run(tokens.backbone_inputs())
    want = ort_text.encode_text({"word_feats": want_feats["word_feats"], "word_mask": tokens.word_mask})
    client = grpcclient.InferenceServerClient(state.grpc_url)
    for shared_memory in (False, True):
        backbone = TritonModel(client, TEXT_BACKBONE, BACKBONE_LAYOUT, shared_memory=shared_memory)
        feats = backbone.infer(tokens.backbone_inputs())
        for name in BACKBONE_LAYOUT.output_names:
            np.testing.assert_allclose(feats[name], want_feats[name], atol=1e-5, rtol=0, err_msg=name)
        with TritonTowers(state.grpc_url, "vsepp_fast", ort_text.layout, shared_memory=shared_memory) as towers:
            got = towers.encode_text({"word_feats": feats["word_feats"], "word_mask": tokens.word_mask})
        np.testing.assert_allclose(got["text_index"], want["text_index"], atol=1e-5, rtol=0)
        backbone.release()
