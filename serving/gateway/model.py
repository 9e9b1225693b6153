"""One exported model version as the gateway runs it (torch-free).

Text: parse (spaCy; its tokenizer alone when the text tower reads no role graph) -> MiniLM tokenisation ->
``text_backbone`` on Triton -> the text tower on Triton. Video: sampled,
padded frame features -> the video tower on Triton. Scoring: the version's scorer ONNX in this process (ONNX
Runtime, CPU): the multi-level fusion, the same graph that was parity-checked against training. Every Triton
request is pinned to this version (and the backbone to the version its manifest records), so one answer is
wholly one version's.

Without a Triton address the towers and the backbone run here too, in ONNX Runtime as Triton's instances run them:
the floor ``strata bench e2e`` sets each stage of the service beside.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.frame_backbone import video_sizes
from common.layout import ATTENTION_PREFIX, LEVEL_SCORES, SCORE, VIDEO_INDEX, empty_levels
from common.repository import (
    ONNX_FILE,
    TEXT_BACKBONE,
    TOKENIZER_FILE,
    manifest_layout,
    read_manifest,
    version_dir,
    versions,
)
from export.runner import OnnxPart, OnnxRunner
from serving.gateway import metrics
from serving.gateway.errors import FailedPrecondition, InvalidArgument
from serving.gateway.items import Record, axis_lengths, split_items, stack_items
from serving.triton.client import TritonModel, TritonTowers
from training.data.encode import TextLimits, encode_graph, encode_text_batch, encode_video_batch
from training.data.sampling import pad_rows
from training.models.config import ROLE_GRAPH_INPUTS

log = logging.getLogger("strata.gateway")


@dataclass(frozen=True)
class EmbeddedTexts:
    items: list[Record]                # text tower outputs per caption (ragged axes cut)
    empty: list[tuple[bool, ...]]      # per caption, per level: no text node of that level
    nodes: list[dict[str, list[str]]]  # per caption, its verb and noun nodes' words ({} without a role graph)


@dataclass(frozen=True)
class Scored:
    fused: np.ndarray                  # [texts, videos]
    levels: np.ndarray                 # [levels, texts, videos]
    attention: dict[str, np.ndarray]   # when asked: level -> [texts, videos, nodes, frames] (its temporal evidence)


def node_words(words: Sequence[str], graph) -> dict[str, list[str]]:
    """The words of each verb and noun node of an encoded role graph, in the tower's node order."""
    return {axis: [" ".join(words[w] for w in span) for span in spans]
            for axis, spans in (("verbs", graph.verb_spans), ("nouns", graph.noun_spans))}


class ServedModel:
    """``<base>`` version ``version`` of ``repo``: towers on the Triton server at ``triton_url`` (here when it is
    None), scorer here."""

    def __init__(self, repo: str | Path, base: str, version: int, triton_url: str | None, timeout_s: float = 30.0):
        self.repo, self.base, self.version = Path(repo), base, int(version)
        self.manifest = read_manifest(self.repo, base, self.version)
        self.layout = manifest_layout(self.manifest)
        config = self.manifest["config"]
        if config["text"]["kind"] != "minilm":
            raise FailedPrecondition(f"{base} version {version} reads a learned word vocabulary, which the model "
                                     f"repository does not carry; the gateway serves MiniLM-input models")
        prep = self.manifest["preprocessing"]
        self.max_frames = int(prep["max_frames"])
        self.limits = TextLimits(prep["max_words"], prep["max_verbs"], prep["max_nouns"])
        self.frame_dim, self.region_dim = video_sizes(config["video"], self.layout)
        self.reads_regions = self.region_dim > 0
        # A tower that takes none of the role graph's inputs needs the caption's words only, not its parse.
        self.reads_role_graph = bool(set(ROLE_GRAPH_INPUTS) & set(self.layout.text.input_names))
        self.backbone_version = self._backbone_version()
        from training.text.tokenize import BACKBONE_LAYOUT, TokenizerConfig, WordTokenizer

        if triton_url is None:   # as a Triton instance of a default export runs them: ONNX Runtime's threads, no spinning
            self.towers = OnnxRunner(self.repo, base, self.version, parts=("text", "video"), spinning=False)
            self.run_backbone = OnnxPart(self.repo / TEXT_BACKBONE / str(self.backbone_version) / ONNX_FILE,
                                         spinning=False).run
        else:
            self.towers = TritonTowers(triton_url, base, self.layout, self.version, timeout_s=timeout_s)
            self.run_backbone = TritonModel(self.towers.client, TEXT_BACKBONE, BACKBONE_LAYOUT, self.backbone_version,
                                            timeout_s=timeout_s).infer
        self.tokenizer = WordTokenizer(TokenizerConfig(max_words=self.limits.max_words), self._tokenizer_path())
        self.scorer = OnnxPart(version_dir(self.repo, base, "scorer", self.version) / ONNX_FILE, threads=1, spinning=False)

    def _backbone_version(self) -> int:
        recorded = (self.manifest.get("text_backbone") or {}).get("version")
        if recorded is not None:
            return int(recorded)
        found = versions(self.repo, TEXT_BACKBONE)
        if not found:
            raise FailedPrecondition(f"{self.repo} has no {TEXT_BACKBONE}: export it (strata export --text-backbone)")
        log.warning("%s version %d: its manifest predates recording the text_backbone version; using the latest, %d",
                    self.base, self.version, found[-1])
        return found[-1]

    def _tokenizer_path(self) -> Path:
        """The tokenizer file the text backbone version carries (the serving install has no MiniLM package)."""
        path = self.repo / TEXT_BACKBONE / str(self.backbone_version) / TOKENIZER_FILE
        if not path.is_file():   # Triton refuses such a version too: its manifest predates per-file hashes
            raise FailedPrecondition(f"{TEXT_BACKBONE} version {self.backbone_version} carries no {TOKENIZER_FILE} "
                                     f"(exported before it did): export the text backbone again "
                                     f"(strata export --text-backbone) and the model against it")
        return path

    @property
    def levels(self) -> tuple[str, ...]:
        return self.layout.levels

    @property
    def index_dim(self) -> int:
        return int(self.layout.video.spec(VIDEO_INDEX).shape[-1])

    def describe(self) -> dict:
        return {"name": self.base, "version": self.version, "levels": list(self.levels), "frame_dim": self.frame_dim,
                "region_dim": self.region_dim, "max_frames": self.max_frames, "backbone_version": self.backbone_version}

    # -- text ----------------------------------------------------------------------------------------------------
    def embed_texts(self, texts: Sequence[str], timings: dict[str, float] | None = None) -> EmbeddedTexts:
        from training.text.parser import parse_captions, tokenize_captions

        timings = {} if timings is None else timings
        for i, text in enumerate(texts):
            if not text or not text.strip():
                raise InvalidArgument(f"text {i} is empty: give a sentence describing a video")
        texts = [t.strip() for t in texts]
        with stage(timings, "parse"):
            if self.reads_role_graph:
                parsed = [(p.tokens, p.graph.nodes, p.graph.edges) for p in parse_captions(texts)]
            else:   # the words alone: spaCy's tokenizer, the same words without the tagger and parser
                parsed = [(words, {}, ()) for words in tokenize_captions(texts)]
            if any(not words for words, _, _ in parsed):
                raise InvalidArgument("a text has no words after parsing")
            graphs = [encode_graph(nodes, edges, len(words), self.limits, where=repr(text))
                      for text, (words, nodes, edges) in zip(texts, parsed)]
            tokens = self.tokenizer([words for words, _, _ in parsed])
        with stage(timings, "backbone"):
            features = self.run_backbone(tokens.backbone_inputs())
        word_feats = [pad_rows(features["word_feats"][i, :tokens.num_words[i]], g.total_words)
                      for i, g in enumerate(graphs)]
        inputs = encode_text_batch(graphs, word_feats=word_feats, sent_feats=features["sent_feat"])
        with stage(timings, "tower"):
            outputs = self.towers.encode_text(inputs)
        items = split_items(self.layout.text.outputs, outputs, axis_lengths(inputs))
        nodes = [node_words(words, g) if self.reads_role_graph else {} for (words, _, _), g in zip(parsed, graphs)]
        return EmbeddedTexts(items, [empty_levels(self.levels, inputs, i) for i in range(len(texts))], nodes)

    def text_nodes(self, texts: Sequence[str]) -> list[dict[str, list[str]]]:
        """The verb and noun nodes' words of stored captions, as the text tower took them: each caption parsed again
        (the parse is deterministic), for the temporal evidence of caption hits."""
        from training.text.parser import parse_captions

        parsed = parse_captions([t.strip() for t in texts])
        return [node_words(p.tokens, encode_graph(p.graph.nodes, p.graph.edges, len(p.tokens), self.limits,
                                                   where=repr(text)))
                for text, p in zip(texts, parsed)]

    # -- video ---------------------------------------------------------------------------------------------------
    def check_video(self, where: str, frames: np.ndarray, regions: np.ndarray | None) -> None:
        """Refuse features this model cannot take, naming the item and what was expected."""
        if frames.ndim != 2 or frames.shape[0] < 1 or frames.shape[1] != self.frame_dim:
            raise InvalidArgument(f"{where}: frames must be [frames >= 1, {self.frame_dim}] float32 for {self.base}, "
                                  f"got shape {list(frames.shape)}")
        if not np.isfinite(frames).all():
            raise InvalidArgument(f"{where}: frame features contain NaN or infinity")
        if self.reads_regions:
            if regions is None:
                raise InvalidArgument(f"{where}: {self.base} reads region features [frames, regions, "
                                      f"{self.region_dim}]; none were given")
            if regions.ndim != 3 or regions.shape[0] != frames.shape[0] or regions.shape[2] != self.region_dim:
                raise InvalidArgument(f"{where}: regions must be [{frames.shape[0]}, regions, {self.region_dim}], "
                                      f"got shape {list(regions.shape)}")
            if not np.isfinite(regions).all():
                raise InvalidArgument(f"{where}: region features contain NaN or infinity")

    def embed_videos(self, frames: Sequence[np.ndarray], regions: Sequence[np.ndarray | None],
                     timings: dict[str, float] | None = None) -> list[Record]:
        """Video tower outputs per video (features already checked with :meth:`check_video`).

        Frames are padded and masked as in training. Regions are not: the region models read a frame's regions as a
        set (ViSERN's graph and mean, VSR-Net's spatial Transformer without positions and mean), with no region
        mask, and take any count; as one training set has one count, videos of different counts go through the
        tower in separate calls, each as it would alone."""
        timings = {} if timings is None else timings
        counts = sorted({r.shape[1] for r in regions}) if self.reads_regions else []
        if len(counts) > 1:
            out: list[Record] = [{} for _ in frames]
            for count in counts:
                chosen = [i for i, r in enumerate(regions) if r.shape[1] == count]
                embedded = self.embed_videos([frames[i] for i in chosen], [regions[i] for i in chosen], timings)
                for i, item in zip(chosen, embedded):
                    out[i] = item
            return out
        inputs = encode_video_batch(list(frames), list(regions) if self.reads_regions else None, self.max_frames)
        with stage(timings, "tower"):
            outputs = self.towers.encode_video(inputs)
        return split_items(self.layout.video.outputs, outputs, axis_lengths(inputs))

    # -- scoring -------------------------------------------------------------------------------------------------
    def score(self, texts: Sequence[Mapping[str, np.ndarray]], videos: Sequence[Mapping[str, np.ndarray]],
              attention: bool = False) -> Scored:
        """Every text against every video with the version's scorer graph; with ``attention``, also each attending
        level's attention (the same graph's outputs: asked for only then, so other calls copy nothing more)."""
        text_specs = [s for s in self.layout.scorer.inputs if s.name.startswith("text_")]
        video_specs = [s for s in self.layout.scorer.inputs if s.name.startswith("video_")]
        attending = [ATTENTION_PREFIX + level for level in self.layout.attentions] if attention else []
        out = self.scorer.run({**stack_items(text_specs, texts), **stack_items(video_specs, videos)},
                              (SCORE, LEVEL_SCORES, *attending))
        metrics.count_scored(len(texts) * len(videos))
        return Scored(out[SCORE], out[LEVEL_SCORES],
                      {name[len(ATTENTION_PREFIX):]: out[name] for name in attending})

    def close(self) -> None:
        self.towers.close()


@contextmanager
def stage(timings: dict[str, float], name: str) -> Iterator[None]:
    """Adds the block's wall time (ms) to ``timings[name]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + 1e3 * (time.perf_counter() - start)
