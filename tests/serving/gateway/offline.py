"""The offline reference the gateway's answers are checked against: the same exported version run with ONNX
Runtime in this process (text backbone, towers and scorer), exhaustively over the whole corpus, with no Triton,
Milvus or tensor store in the way."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from common.repository import ONNX_FILE, TEXT_BACKBONE
from export.runner import OnnxPart, OnnxRunner
from training.data.encode import TextLimits, encode_graph, encode_text_batch, encode_video_batch
from training.data.sampling import pad_rows
from training.text.parser import parse_captions
from training.text.tokenize import TokenizerConfig, WordTokenizer


class Offline:
    def __init__(self, repo: Path, base: str, version: int):
        self.runner = OnnxRunner(repo, base, version)
        prep = self.runner.manifest["preprocessing"]
        self.limits = TextLimits(prep["max_words"], prep["max_verbs"], prep["max_nouns"])
        self.max_frames = prep["max_frames"]
        backbone = self.runner.manifest["text_backbone"]["version"]
        self.backbone = OnnxPart(repo / TEXT_BACKBONE / str(backbone) / ONNX_FILE)

    def text_inputs(self, texts: list[str]) -> dict[str, np.ndarray]:
        parsed = parse_captions(texts)
        graphs = [encode_graph(p.graph.nodes, p.graph.edges, len(p.tokens), self.limits) for p in parsed]
        tokens = WordTokenizer(TokenizerConfig(max_words=self.limits.max_words))([p.tokens for p in parsed])
        feats = self.backbone.run(tokens.backbone_inputs())
        words = [pad_rows(feats["word_feats"][i, :tokens.num_words[i]], g.total_words) for i, g in enumerate(graphs)]
        return encode_text_batch(graphs, word_feats=words, sent_feats=feats["sent_feat"])

    def texts(self, texts: list[str]) -> dict[str, np.ndarray]:
        return self.runner.encode_text(self.text_inputs(texts))

    def videos(self, frames: list[np.ndarray], regions: list[np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Video tower outputs of one batch (``regions``: for a model that reads them)."""
        return self.runner.encode_video(encode_video_batch(frames, regions, self.max_frames))

    def score(self, texts: dict[str, np.ndarray], videos: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        out = self.runner.score(texts, videos)
        return out["score"], out["level_scores"]


def rounded(outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Tower outputs as the float16 tensor store keeps them."""
    return {k: v.astype(np.float16).astype(np.float32) if v.dtype.kind == "f" else v for k, v in outputs.items()}
