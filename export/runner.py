"""ONNX Runtime runner of one exported model version (torch-free).

:class:`OnnxPart` runs one ONNX graph (a tower or the scorer); :class:`OnnxRunner` is one exported version's text
tower, video tower and scorer, with the same ``encode_text`` / ``encode_video`` / ``score`` interface as the
PyTorch models and as :class:`serving.triton.client.TritonTowers`. The gateway uses it for CPU-side score fusion;
the Triton python-backend adapter (``model_repository/_templates/model.py``) runs the same :class:`OnnxPart`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from common.errors import ConfigError, DataError
from common.layout import LEVEL_SCORES, SCORE
from common.repository import (
    ONNX_FILE,
    PARTS,
    latest_version,
    manifest_layout,
    read_manifest,
    version_dir,
)

Arrays = Mapping[str, np.ndarray]

_ORT_DTYPES = {"tensor(float)": np.dtype("float32"), "tensor(float16)": np.dtype("float16"),
               "tensor(int64)": np.dtype("int64")}


class OnnxPart:
    """One ONNX graph on the CPU. Inputs are taken by name from a mapping that may hold more than the graph needs."""

    def __init__(self, path: str | Path, threads: int = 0, spinning: bool = True):
        """``threads``: intra-op threads (0: ONNX Runtime's default). ``spinning=False`` stops idle worker threads
        from busy-waiting between calls: for a server process sharing its cores with its callers."""
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"ONNX file not found: {self.path}")
        options = ort.SessionOptions()
        if threads > 0:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name: (_ORT_DTYPES[i.type], len(i.shape)) for i in self.session.get_inputs()}
        self.output_names = tuple(o.name for o in self.session.get_outputs())

    def feed(self, inputs: Arrays) -> dict[str, np.ndarray]:
        """The graph's inputs from ``inputs``, checked for presence, dtype and rank."""
        missing = [n for n in self.inputs if n not in inputs]
        if missing:
            raise DataError(f"{self.path}: missing input(s) {', '.join(missing)}; got {', '.join(sorted(inputs))}")
        feed = {}
        for name, (dtype, rank) in self.inputs.items():
            value = np.asarray(inputs[name])
            if value.dtype != dtype or value.ndim != rank:
                raise DataError(f"{self.path}: input {name!r} must be {dtype} of rank {rank}, got {value.dtype} {value.shape}")
            feed[name] = np.ascontiguousarray(value)
        return feed

    def run(self, inputs: Arrays, outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        names = list(outputs or self.output_names)
        unknown = [n for n in names if n not in self.output_names]
        if unknown:
            raise DataError(f"{self.path}: unknown output(s) {', '.join(unknown)}; outputs: {', '.join(self.output_names)}")
        return dict(zip(names, self.session.run(names, self.feed(inputs))))

    def run_many(self, requests: Sequence[Arrays], batched: bool) -> list[dict[str, np.ndarray] | Exception]:
        """Run several requests; with ``batched`` (every input and output batch-first, as the towers are),
        requests whose inputs agree on every non-batch dimension run as one concatenated batch.

        Returns one result per request, or the exception that request's group raised (a failed request does
        not fail the others).
        """
        results: list[dict[str, np.ndarray] | Exception | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        for i, request in enumerate(requests):
            try:
                feed = self.feed(request)
            except DataError as err:
                results[i] = err
                continue
            key = tuple((n, v.dtype.str, v.shape[1:]) for n, v in feed.items()) if batched else (i,)
            groups.setdefault(key, []).append(i)
        for members in groups.values():
            try:
                if len(members) == 1:
                    results[members[0]] = self.run(requests[members[0]])
                    continue
                sizes = [len(np.asarray(requests[i][next(iter(self.inputs))])) for i in members]
                joined = {n: np.concatenate([np.asarray(requests[i][n]) for i in members]) for n in self.inputs}
                out = self.run(joined)
                bounds = np.cumsum(sizes)[:-1]
                pieces = {n: np.split(v, bounds) for n, v in out.items()}
                for k, i in enumerate(members):
                    results[i] = {n: pieces[n][k] for n in out}
            except Exception as err:  # noqa: BLE001 - reported per request by the caller
                for i in members:
                    results[i] = err
        return results  # type: ignore[return-value]


class OnnxRunner:
    """One exported version of a model: its two towers and its scorer, read from a Strata model repository."""

    def __init__(self, repo: str | Path, base: str, version: int | None = None, threads: int = 0,
                 parts: Sequence[str] = PARTS, spinning: bool = True):
        self.repo = Path(repo)
        self.base = base
        self.version = latest_version(self.repo, base) if version is None else int(version)
        self.manifest = read_manifest(self.repo, base, self.version)
        self.layout = manifest_layout(self.manifest)
        self.parts = {p: OnnxPart(version_dir(self.repo, base, p, self.version) / ONNX_FILE, threads, spinning)
                      for p in parts}

    @property
    def levels(self) -> tuple[str, ...]:
        return self.layout.levels

    def encode_text(self, inputs: Arrays, outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        return self._part("text").run(inputs, outputs)

    def encode_video(self, inputs: Arrays, outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        return self._part("video").run(inputs, outputs)

    def score(self, text: Arrays, video: Arrays, outputs: Sequence[str] = (SCORE, LEVEL_SCORES)
              ) -> dict[str, np.ndarray]:
        """Every text against every video: ``score`` [texts, videos] and ``level_scores`` [levels, texts, videos]
        (and any other of the scorer's ``outputs``, e.g. a level's attention)."""
        return self._part("scorer").run({**text, **video}, outputs)

    def close(self) -> None:
        self.parts.clear()

    def _part(self, part: str) -> OnnxPart:
        if part not in self.parts:
            raise ConfigError(f"{self.base} version {self.version}: part {part!r} not loaded (loaded: {', '.join(self.parts)})")
        return self.parts[part]
