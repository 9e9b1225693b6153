"""Client of one exported model on a Triton server, over gRPC (torch-free).

:class:`TritonModel` is one Triton model (a tower, the scorer or the text backbone) over a tensor layout;
:class:`TritonTowers` has the interface of :class:`export.runner.OnnxRunner` (``encode_text`` /
``encode_video`` / ``score`` over NumPy dicts) so evaluation and the gateway can run either. Requests can be pinned
to a version (both versions of a swap are served side by side), ask for a subset of outputs, and move tensors
through system shared memory instead of protobuf (``shared_memory=True``, for callers on the server's machine:
big inputs such as frame features cost far less that way).
"""
from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException

from common.connect import triton_client
from common.deadline import DeadlineExpired, call_timeout, caller_gone
from common.errors import DataError, StrataError
from common.layout import LEVEL_SCORES, SCORE, ModelLayout, TowerLayout
from common.repository import PARTS, latest_version, manifest_layout, model_name, part_layout, read_manifest

Arrays = Mapping[str, np.ndarray]
TRITON_DTYPES = {"float32": "FP32", "int64": "INT64"}
RELEASE_WAIT_S = 5.0


class TritonRequestError(StrataError):
    """Triton answered a request with an error; ``status`` is the gRPC status it gave (``StatusCode.NOT_FOUND``:
    no such model version loaded, ``StatusCode.DEADLINE_EXCEEDED``: the request's timeout ran out, ...), or None
    when the call failed before any answer (nothing listening)."""

    def __init__(self, message: str, status: str | None = None):
        super().__init__(message)
        self.status = status


class _Region:
    """One system shared-memory region registered with the server; grows when a request needs more."""

    def __init__(self, client: grpcclient.InferenceServerClient, name: str):
        self.client, self.name, self.size, self.handle = client, name, 0, None

    def ensure(self, size: int) -> None:
        if size <= self.size:
            return
        self.release()
        size = max(size, 2 * self.size)
        self.handle = shm.create_shared_memory_region(self.name, f"/{self.name}", size)
        self.client.register_system_shared_memory(self.name, f"/{self.name}", size)
        self.size = size

    def release(self) -> None:
        """Unregister and free the region. Triton lets go of a region shortly after answering the request that
        used it, so an unregister refused as "in use" is tried again for up to ``RELEASE_WAIT_S``."""
        if self.handle is None:
            return
        deadline = time.monotonic() + RELEASE_WAIT_S
        while True:
            try:
                self.client.unregister_system_shared_memory(self.name)
                break
            except InferenceServerException as err:
                if "in use" not in str(err) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.02)
        shm.destroy_shared_memory_region(self.handle)
        self.handle, self.size = None, 0


def _bind_axes(tower: TowerLayout, inputs: Arrays) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for spec in tower.inputs:
        for axis, dim in enumerate(spec.shape):
            if isinstance(dim, str):
                sizes.setdefault(dim, int(np.shape(inputs[spec.name])[axis]))
    return sizes


class TritonModel:
    """One Triton model whose inputs and outputs ``tower`` declares (a tower, the scorer, or the text backbone)."""

    def __init__(self, client: grpcclient.InferenceServerClient, name: str, tower: TowerLayout,
                 version: int | None = None, shared_memory: bool = False, timeout_s: float | None = None):
        self.client, self.name, self.tower = client, name, tower
        self.version, self.shared_memory, self.timeout_s = version, shared_memory, timeout_s
        self._regions: dict[str, _Region] = {}
        self._lock = threading.Lock()
        self._max_batch_size: int | None = None

    @property
    def max_batch_size(self) -> int:
        """The served config's ``max_batch_size`` (0: no batch axis, e.g. the scorer), read once."""
        if self._max_batch_size is None:
            try:
                config = self.client.get_model_config(self.name, as_json=True)["config"]
            except InferenceServerException as err:
                raise TritonRequestError(f"{self.name}: cannot read its config from Triton: {err.message()}",
                                         err.status()) from None
            self._max_batch_size = int(config.get("max_batch_size", 0))
        return self._max_batch_size

    def infer(self, inputs: Arrays, outputs: Sequence[str] | None = None, version: int | None = None) -> dict[str, np.ndarray]:
        """Outputs for ``inputs``; a batch larger than the model's ``max_batch_size`` goes as several requests.

        ``version`` (else this model's, else the server's version policy) pins every request.
        """
        limit = self.max_batch_size
        size = len(next(iter(inputs.values()))) if inputs else 0
        if limit <= 0 or size <= limit:
            return self._infer_one(inputs, outputs, version)
        parts = [self._infer_one({k: v[start:start + limit] for k, v in inputs.items()}, outputs, version)
                 for start in range(0, size, limit)]
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}

    def _infer_one(self, inputs: Arrays, outputs: Sequence[str] | None, version: int | None) -> dict[str, np.ndarray]:
        """One request."""
        names = tuple(outputs or self.tower.output_names)
        arrays = []
        for spec in self.tower.inputs:
            if spec.name not in inputs:
                raise DataError(f"{self.name}: missing input {spec.name!r}")
            value = np.ascontiguousarray(inputs[spec.name])
            if value.dtype != np.dtype(spec.dtype):
                raise DataError(f"{self.name}: input {spec.name!r} must be {spec.dtype}, got {value.dtype}")
            arrays.append((spec, value))
        pinned = version if version is not None else self.version
        if self.shared_memory:
            with self._lock:
                return self._infer_shm(arrays, names, pinned)
        request = []
        for spec, value in arrays:
            item = grpcclient.InferInput(spec.name, list(value.shape), TRITON_DTYPES[spec.dtype])
            item.set_data_from_numpy(value)
            request.append(item)
        result = self._call(request, [grpcclient.InferRequestedOutput(n) for n in names], pinned)
        return {n: result.as_numpy(n) for n in names}

    def _call(self, request, outputs, version: int | None):
        """One inference request, its timeout cut to the time the gateway's caller has left (:mod:`common.deadline`)."""
        timeout = call_timeout("triton", self.timeout_s if self.timeout_s is not None else math.inf,
                               f"Triton ({self.name})")
        try:
            return self.client.infer(self.name, request, model_version="" if version is None else str(version),
                                     outputs=outputs, client_timeout=None if math.isinf(timeout) else timeout)
        except InferenceServerException as err:
            if caller_gone():
                raise DeadlineExpired(f"the caller's deadline ran out during a request to {self.name}") from None
            raise TritonRequestError(f"{self.name} version {version or 'latest'}: {err.message()}", err.status()) from None

    def _region(self, kind: str) -> _Region:
        if kind not in self._regions:
            self._regions[kind] = _Region(self.client, f"strata_{os.getpid()}_{id(self):x}_{kind}")
        return self._regions[kind]

    def _infer_shm(self, arrays, names: tuple[str, ...], version: int | None):
        sizes = _bind_axes(self.tower, dict((s.name, v) for s, v in arrays))
        out_specs = [self.tower.spec(n) for n in names]
        out_shapes = [tuple(sizes[d] if isinstance(d, str) else d for d in s.shape) for s in out_specs]
        out_bytes = [int(np.prod(shape)) * np.dtype(s.dtype).itemsize for s, shape in zip(out_specs, out_shapes)]
        in_region, out_region = self._region("in"), self._region("out")
        in_region.ensure(sum(v.nbytes for _, v in arrays))
        out_region.ensure(sum(out_bytes))
        request, offset = [], 0
        for spec, value in arrays:
            shm.set_shared_memory_region(in_region.handle, [value], offset=offset)
            item = grpcclient.InferInput(spec.name, list(value.shape), TRITON_DTYPES[spec.dtype])
            item.set_shared_memory(in_region.name, value.nbytes, offset=offset)
            request.append(item)
            offset += value.nbytes
        outputs, offsets, offset = [], [], 0
        for name, size in zip(names, out_bytes):
            item = grpcclient.InferRequestedOutput(name)
            item.set_shared_memory(out_region.name, size, offset=offset)
            outputs.append(item)
            offsets.append(offset)
            offset += size
        self._call(request, outputs, version)
        return {name: shm.get_contents_as_numpy(out_region.handle, np.dtype(spec.dtype), shape, offset=off).copy()
                for name, spec, shape, off in zip(names, out_specs, out_shapes, offsets)}

    def release(self) -> None:
        for region in self._regions.values():
            region.release()
        self._regions.clear()


class TritonTowers:
    """``<base>_text`` / ``<base>_video`` / ``<base>_scorer`` on a Triton server (``url`` is ``host:grpc_port``)."""

    def __init__(self, url: str, base: str, layout: ModelLayout, version: int | None = None,
                 shared_memory: bool = False, timeout_s: float | None = None):
        self.url, self.base, self.layout = url, base, layout
        self.client = triton_client(url)
        self.models = {part: TritonModel(self.client, model_name(base, part), part_layout(layout, part), version,
                                         shared_memory, timeout_s) for part in PARTS}

    @classmethod
    def from_repository(cls, url: str, repo: str | Path, base: str, version: int | None = None, **kwargs) -> "TritonTowers":
        """The layout from the repository's manifest (every version of a model shares it)."""
        manifest = read_manifest(Path(repo), base, version or latest_version(Path(repo), base))
        return cls(url, base, manifest_layout(manifest), version, **kwargs)

    @property
    def levels(self) -> tuple[str, ...]:
        return self.layout.levels

    def encode_text(self, inputs: Arrays, outputs: Sequence[str] | None = None, version: int | None = None) -> dict[str, np.ndarray]:
        return self.models["text"].infer(inputs, outputs, version)

    def encode_video(self, inputs: Arrays, outputs: Sequence[str] | None = None, version: int | None = None) -> dict[str, np.ndarray]:
        return self.models["video"].infer(inputs, outputs, version)

    def score(self, text: Arrays, video: Arrays, version: int | None = None) -> dict[str, np.ndarray]:
        return self.models["scorer"].infer({**text, **video}, (SCORE, LEVEL_SCORES), version)

    def infer(self, part: str, inputs: Arrays, outputs: Sequence[str] | None = None,
              version: int | None = None) -> dict[str, np.ndarray]:
        return self.models[part].infer(inputs, outputs, version)

    def close(self) -> None:
        """Unregister and free the shared-memory regions; close the channel."""
        for model in self.models.values():
            model.release()
        self.client.close()

    def __enter__(self) -> "TritonTowers":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
