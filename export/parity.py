"""PyTorch vs ONNX Runtime parity of an exported model: the check ``strata export`` runs before writing a version.

Two tests, both on the same inputs (real SynthVTR batches of a split, or random canonical batches):

* every output of both towers and of the scorer, on batches of several lengths: ``|onnx - torch| <= ATOL`` or,
  for values larger than 1, ``<= RTOL * |torch|``;
* ranking: for every query of the split (text -> video and video -> text) the top-10 by ONNX Runtime's fused score
  equals PyTorch's, where two items whose PyTorch scores differ by less than ``TIE`` may swap places.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from common.errors import StrataError
from common.layout import SCORE

ATOL = 1e-4
RTOL = 1e-4
TIE = 1e-5
TOP_K = 10

Arrays = Mapping[str, np.ndarray]


class ParityError(StrataError):
    """The exported graph does not reproduce the PyTorch model."""


@dataclass
class OutputParity:
    part: str
    output: str
    max_abs: float = 0.0
    max_rel: float = 0.0     # |diff| / |torch| over values with |torch| > 1
    worst_excess: float = 0.0  # max of |diff| - allowed; > 0 fails

    @property
    def ok(self) -> bool:
        return self.worst_excess <= 0.0

    def update(self, reference: np.ndarray, candidate: np.ndarray) -> None:
        if reference.shape != candidate.shape:
            raise ParityError(f"{self.part} output {self.output!r}: shape {candidate.shape} from ONNX Runtime, {reference.shape} from PyTorch")
        if reference.size == 0:
            return
        ref = reference.astype(np.float64)
        diff = np.abs(candidate.astype(np.float64) - ref)
        allowed = np.maximum(ATOL, RTOL * np.abs(ref))
        large = np.abs(ref) > 1.0
        self.max_abs = max(self.max_abs, float(diff.max()))
        if large.any():
            self.max_rel = max(self.max_rel, float((diff[large] / np.abs(ref[large])).max()))
        self.worst_excess = max(self.worst_excess, float((diff - allowed).max()))


def top_k_mismatches(reference: np.ndarray, candidate: np.ndarray, k: int = TOP_K, tie: float = TIE) -> list[int]:
    """Rows (queries) of ``[queries, items]`` scores whose top-``k`` by ``candidate`` differ from ``reference``'s
    beyond ties: the item ranked ``r`` by ``candidate`` must have a reference score within ``tie`` of the
    reference's ``r``-th best score."""
    k = min(k, reference.shape[1])
    best = -np.sort(-reference, axis=1)[:, :k]
    picked = np.argsort(-candidate, axis=1, kind="stable")[:, :k]
    picked_scores = np.take_along_axis(reference, picked, axis=1)
    return [int(q) for q in np.nonzero((np.abs(picked_scores - best) >= tie).any(axis=1))[0]]


@dataclass
class ParityReport:
    outputs: dict[tuple[str, str], OutputParity]
    batches: list[dict[str, int]]
    queries: dict[str, int]
    mismatches: dict[str, list[int]]

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outputs.values()) and not any(self.mismatches.values())

    def figures(self) -> dict:
        """JSON-able figures for the manifest and the report."""
        return {
            "atol": ATOL, "rtol": RTOL, "tie": TIE, "top_k": TOP_K,
            "batches": self.batches,
            "outputs": {f"{part}.{name}": {"max_abs": o.max_abs, "max_rel": o.max_rel}
                        for (part, name), o in self.outputs.items()},
            "ranking": {direction: {"queries": self.queries[direction], "top_k_mismatches": len(self.mismatches[direction])}
                        for direction in self.queries},
        }

    def failures(self) -> list[str]:
        lines = [f"{o.part} output {o.output!r}: max |diff| {o.max_abs:.3g} (max rel {o.max_rel:.3g}) exceeds "
                 f"atol {ATOL:g} / rtol {RTOL:g} by {o.worst_excess:.3g}" for o in self.outputs.values() if not o.ok]
        for direction, rows in self.mismatches.items():
            if rows:
                lines.append(f"ranking {direction}: top-{TOP_K} differs for {len(rows)} of {self.queries[direction]} "
                             f"queries (first: query {rows[0]})")
        return lines


def check_parity(reference, candidate, batches: Sequence[tuple[Arrays, Arrays]],
                 ranking: tuple[Sequence[Arrays], Sequence[Arrays]]) -> ParityReport:
    """Compare two runners (``encode_text`` / ``encode_video`` / ``score`` over NumPy dicts, e.g. the PyTorch
    model through :class:`export.exporter.TorchParts` and :class:`export.runner.OnnxRunner`).

    ``batches``: (text inputs, video inputs) pairs of several lengths, every output compared. ``ranking``: the
    query set as text batches and video batches; the fused score matrices are compared by top-k both ways.
    """
    outputs: dict[tuple[str, str], OutputParity] = {}

    def compare(part: str, ref: Arrays, cand: Arrays) -> None:
        for name, value in ref.items():
            if name not in cand:
                raise ParityError(f"{part} output {name!r} missing from the ONNX graph")
            outputs.setdefault((part, name), OutputParity(part, name)).update(value, cand[name])

    shapes = []
    for text, video in batches:
        ref_t, ref_v = reference.encode_text(text), reference.encode_video(video)
        compare("text", ref_t, candidate.encode_text(text))
        compare("video", ref_v, candidate.encode_video(video))
        # the scorer on identical inputs, so only the scorer's own error is measured
        scored = reference.score(ref_t, ref_v)   # every output of the scorer, the attention of each level with one
        compare("scorer", scored, candidate.score(ref_t, ref_v, tuple(scored)))
        shapes.append({"texts": len(next(iter(text.values()))), "videos": len(next(iter(video.values()))),
                       **{f"max_{axis}": int(mask.sum(1).max()) for axis, mask in
                          (("words", text.get("word_mask")), ("frames", video.get("frame_mask"))) if mask is not None}})

    def fused(runner) -> np.ndarray:
        texts = [runner.encode_text(t) for t in ranking[0]]
        videos = [runner.encode_video(v) for v in ranking[1]]
        return np.concatenate([np.concatenate([runner.score(t, v)[SCORE] for v in videos], axis=1) for t in texts])

    ref_scores, cand_scores = fused(reference), fused(candidate)
    mismatches = {"text_to_video": top_k_mismatches(ref_scores, cand_scores),
                  "video_to_text": top_k_mismatches(ref_scores.T, cand_scores.T)}
    queries = {"text_to_video": ref_scores.shape[0], "video_to_text": ref_scores.shape[1]}
    return ParityReport(outputs, shapes, queries, mismatches)
