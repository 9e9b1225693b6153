"""The exported ONNX text backbone computes the cached training features (ONNX Runtime, CPU)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from export.text_backbone import OPSET, export_text_backbone
from training.text.features import MiniLMBackbone, TextFeatureExtractor, ensure_text_feature_cache
from training.text.tokenize import BACKBONE_LAYOUT, SENT_FEAT, WORD_FEATS, WordTokenizer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
CAPTIONS_CSV = Path(__file__).parents[2] / "training/data/samples/msrvtt_1ka_test_captions.csv"


@pytest.fixture(scope="module")
def exported(tmp_path_factory, one_thread):
    """One backbone module: it is exported, and it fills the feature cache."""
    backbone = MiniLMBackbone.pretrained()
    path = export_text_backbone(tmp_path_factory.mktemp("onnx"), backbone=backbone)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return path, session, TextFeatureExtractor(backbone=backbone)


def test_graph_declares_the_layout(exported):
    path, session, _ = exported
    model = onnx.load(str(path), load_external_data=False)
    assert any(o.domain in ("", "ai.onnx") and o.version == OPSET for o in model.opset_import)
    declared = {t.name: t for t in BACKBONE_LAYOUT.inputs + BACKBONE_LAYOUT.outputs}
    for node in session.get_inputs() + session.get_outputs():
        assert list(declared[node.name].shape) == node.shape  # dynamic axes keep their names
    assert [n.name for n in session.get_inputs()] == list(BACKBONE_LAYOUT.input_names)
    assert [n.name for n in session.get_outputs()] == [WORD_FEATS, SENT_FEAT]


def test_onnx_matches_the_cached_features_on_real_captions(exported, tmp_path):
    _, session, extractor = exported
    lines = CAPTIONS_CSV.read_text().splitlines()[1:]
    sentences = [line.split(";")[3] for line in lines[100:124]]
    captions = {s: s.split() for s in sentences}
    cache = ensure_text_feature_cache(tmp_path / "feats.h5", captions, extractor=extractor, batch_size=8,
                                      progress=False)
    worst = 0.0
    # A 24-caption padded batch (shapes unlike the traced example) and one caption with no padding at all.
    for batch in (sentences, sentences[:1]):
        tokens = WordTokenizer()([captions[s] for s in batch])
        word_feats, sent_feat = session.run([WORD_FEATS, SENT_FEAT], tokens.backbone_inputs())
        for b, sentence in enumerate(batch):
            item = cache[sentence]
            n = len(item.words)
            worst = max(worst, np.abs(word_feats[b, :n] - item.word_feats).max(),
                        np.abs(sent_feat[b] - item.sent_feat).max())
            assert not word_feats[b, n:].any()
    print(f"ONNX Runtime vs cached features: max abs diff {worst:.2e}")
    assert worst <= 1e-4
