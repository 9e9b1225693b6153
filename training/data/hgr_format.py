"""Reader for HGR's public dataset layout (MSR-VTT, VATEX, MSVD, TGIF features as released; SynthVTR writes it too).

A dataset is a folder; :class:`HGRFiles` says where each file lies in it (defaults: HGR's release), with
``{split}`` standing for a split name:

* ``ref_captions.json``: ``{video_name: [sentence, ...]}``
* ``<split>_names.npy``: the video names of a split; every such file present is a split (``trn``, ``val``, ``tst``,
  and any other, e.g. SynthVTR's ``tst_unseen``)
* frame features, HDF5 ``{name: float32[frames, dim]}`` with ``/`` in a name written as ``_``
* optional region features, HDF5 ``{name: float32[frames, regions, dim]}`` (same frames as the frame features)
* optional role graphs, ``sent2rolegraph.augment.json``: ``{sentence: [nodes, edges]}``

Opening a split checks every name, caption and feature shape (HDF5 metadata only); feature values are read lazily
per video, only the sampled frames, and checked for NaN/inf then. HDF5 files stay open per process and reopen
after a fork or unpickling, so a split can be handed to DataLoader workers. Every problem raises
:class:`~common.errors.DataError` naming the file and the item.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import DataError, read_json_file
from training.data.sampling import MAX_FRAMES, frame_indices

SPLIT = "{split}"


@dataclass(frozen=True)
class HGRFiles:
    """Paths inside a dataset folder; ``{split}`` is replaced by the split name (a path without it is shared)."""

    captions: str = "annotation/RET/ref_captions.json"
    role_graphs: str = "annotation/RET/sent2rolegraph.augment.json"
    split_names: str = "public_split/{split}_names.npy"
    frame_features: str = "ordered_feature/SA/resnet152.pth/{split}_ft.hdf5"
    region_features: str = "ordered_feature/regions/{split}_ft.hdf5"

    def __post_init__(self) -> None:
        if SPLIT not in self.split_names:
            raise ValueError(f"split_names must contain {SPLIT!r} to find the splits, got {self.split_names!r}")


@dataclass(frozen=True)
class VideoItem:
    name: str
    frames: np.ndarray              # [t, frame_dim] float32, t <= max_frames (sampled)
    regions: np.ndarray | None      # [t, regions, region_dim] float32, the same frames; None without regions
    num_frames: int                 # frames stored, before sampling


def feature_key(name: str) -> str:
    """The HDF5 dataset name of a video (HGR writes ``/`` as ``_``)."""
    return name.replace("/", "_")


class HGRDataset:
    """One dataset folder: its splits, captions and role graphs."""

    def __init__(self, root: str | Path, files: HGRFiles = HGRFiles()):
        self.root = Path(root)
        self.files = files
        if not self.root.is_dir():
            raise DataError(f"dataset folder not found: {self.root}")

    def path(self, pattern: str, split: str = "") -> Path:
        return self.root / pattern.replace(SPLIT, split)

    @cached_property
    def splits(self) -> tuple[str, ...]:
        """Every split with a names file, sorted."""
        prefix, suffix = self.files.split_names.split(SPLIT, 1)
        found = []
        for p in self.root.glob(self.files.split_names.replace(SPLIT, "*")):
            rel = p.relative_to(self.root).as_posix()
            if rel.startswith(prefix) and rel.endswith(suffix) and len(rel) > len(prefix) + len(suffix):
                found.append(rel[len(prefix):len(rel) - len(suffix)])
        return tuple(sorted(found))

    @cached_property
    def captions(self) -> dict[str, list[str]]:
        path = self.path(self.files.captions)
        data = read_json_file(path)
        if not isinstance(data, dict):
            raise DataError(f"{path}: expected {{video_name: [sentence, ...]}}, got a {type(data).__name__}")
        return data

    @property
    def has_role_graphs(self) -> bool:
        return self.path(self.files.role_graphs).is_file()

    @cached_property
    def role_graphs(self) -> dict[str, Any]:
        path = self.path(self.files.role_graphs)
        data = read_json_file(path)
        if not isinstance(data, dict):
            raise DataError(f"{path}: expected {{sentence: [nodes, edges]}}, got a {type(data).__name__}")
        return data

    def role_graph(self, sentence: str) -> tuple[dict[str, Any], list[Any]]:
        """The (nodes, edges) of a sentence from the role-graph file."""
        path = self.path(self.files.role_graphs)
        try:
            graph = self.role_graphs[sentence]
        except KeyError:
            raise DataError(f"{path}: no role graph for sentence {sentence!r}") from None
        if not (isinstance(graph, (list, tuple)) and len(graph) == 2 and isinstance(graph[0], dict)
                and isinstance(graph[1], (list, tuple))):
            raise DataError(f"{path}: role graph of {sentence!r} is not [nodes, edges]")
        return graph[0], list(graph[1])

    def split(self, name: str, max_frames: int = MAX_FRAMES, regions: bool = False) -> "HGRSplit":
        """Open a split; ``regions=True`` also reads region features (their file must then exist)."""
        if name not in self.splits:
            available = ", ".join(self.splits) or "none"
            raise DataError(
                f"{self.root}: unknown split {name!r}; available: {available} "
                f"(from {self.files.split_names.replace(SPLIT, '*')})"
            )
        return HGRSplit(self, name, max_frames, regions)


class HGRSplit:
    """The videos of one split, their captions, and lazily read, sampled features."""

    def __init__(self, dataset: HGRDataset, split: str, max_frames: int, regions: bool):
        if max_frames < 1:
            raise DataError(f"max_frames must be >= 1, got {max_frames}")
        self.split = split
        self.max_frames = max_frames
        self.names: tuple[str, ...] = _read_names(dataset.path(dataset.files.split_names, split))
        self.captions: tuple[tuple[str, ...], ...] = _split_captions(
            dataset.captions, self.names, dataset.path(dataset.files.captions)
        )
        self._frames = _H5(dataset.path(dataset.files.frame_features, split))
        self.frame_dim = _check_shapes(self._frames, self.names, ndim=2)[-1]
        self._regions: _H5 | None = None
        self.region_shape: tuple[int, int] | None = None
        if regions:
            self._regions = _H5(dataset.path(dataset.files.region_features, split))
            shape = _check_shapes(self._regions, self.names, ndim=3, frames_of=self._frames)
            self.region_shape = (shape[1], shape[2])

    def __len__(self) -> int:
        return len(self.names)

    @cached_property
    def pairs(self) -> tuple[tuple[int, int], ...]:
        """Every (video index, caption index) pair: the training samples."""
        return tuple((v, c) for v, caps in enumerate(self.captions) for c in range(len(caps)))

    def video(self, index: int) -> VideoItem:
        """Video ``index`` with its frames sampled to at most ``max_frames`` (regions with the same frames)."""
        name = self.names[index]
        num_frames = self._frames.shape(name)[0]
        idx = frame_indices(num_frames, self.max_frames)
        frames = self._frames.read(name, idx)
        regions = self._regions.read(name, idx) if self._regions is not None else None
        return VideoItem(name=name, frames=frames, regions=regions, num_frames=num_frames)


class _H5:
    """One HDF5 feature file, opened on first use in each process; all h5py errors become DataError."""

    def __init__(self, path: Path):
        self.path = path
        if not path.is_file():
            raise DataError(f"feature file not found: {path}")
        self._file: Any = None
        self._pid = -1

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "_file": None, "_pid": -1}

    def _open(self) -> Any:
        if self._file is None or self._pid != os.getpid():
            import h5py

            try:
                self._file = h5py.File(self.path, "r")
            except OSError as err:
                raise DataError(f"{self.path}: cannot open as HDF5: {err}") from None
            self._pid = os.getpid()
        return self._file

    def _dataset(self, name: str) -> Any:
        key = feature_key(name)
        f = self._open()
        try:
            ds = f[key]
        except KeyError:
            raise DataError(f"{self.path}: video {name!r} is missing (no dataset {key!r})") from None
        except (OSError, ValueError, RuntimeError) as err:
            raise DataError(f"{self.path}: video {name!r}: unreadable: {err}") from None
        if not hasattr(ds, "shape"):
            raise DataError(f"{self.path}: video {name!r}: {key!r} is a group, not a dataset")
        if not (np.issubdtype(ds.dtype, np.floating) or np.issubdtype(ds.dtype, np.integer)):
            raise DataError(f"{self.path}: video {name!r}: features must be numeric, got dtype {ds.dtype}")
        return ds

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._dataset(name).shape)

    def read(self, name: str, frame_idx: np.ndarray) -> np.ndarray:
        """Frames ``frame_idx`` (strictly increasing) of a video, as float32, checked for NaN/inf."""
        ds = self._dataset(name)
        try:
            data = ds[()] if len(frame_idx) == ds.shape[0] else ds[frame_idx]
        except (OSError, ValueError, RuntimeError, TypeError) as err:
            raise DataError(f"{self.path}: video {name!r}: cannot read features: {err}") from None
        data = np.asarray(data, dtype=np.float32)
        if not np.isfinite(data).all():
            frame = int(frame_idx[np.argwhere(~np.isfinite(data))[0][0]])
            raise DataError(f"{self.path}: video {name!r}: features hold NaN/inf (frame {frame})")
        return data


def _read_names(path: Path) -> tuple[str, ...]:
    if not path.is_file():
        raise DataError(f"split file not found: {path}")
    try:
        arr = np.load(path, allow_pickle=False)   # never unpickle a user's file: it could run any code
    except ValueError as err:
        if "allow_pickle" in str(err) and path.read_bytes()[:6] == b"\x93NUMPY":   # an .npy of objects
            raise DataError(f"{path}: holds Python objects (a pickled array), which Strata never loads; save the "
                            f"names as a string array, e.g. in Python: np.save(path, np.load(path, "
                            f"allow_pickle=True).astype(str)) if you trust the file") from None
        raise DataError(f"{path}: not a readable .npy array of video names: {err}") from None
    except (OSError, EOFError) as err:
        raise DataError(f"{path}: not a readable .npy array of video names: {err}") from None
    if arr.ndim != 1 or len(arr) == 0:
        raise DataError(f"{path}: expected a non-empty 1-D array of video names, got shape {arr.shape}")
    names = []
    for i, item in enumerate(arr.tolist()):
        if isinstance(item, bytes):
            item = item.decode("utf-8")
        if not isinstance(item, str) or not item:
            raise DataError(f"{path}: entry {i} is not a video name: {item!r}")
        names.append(item)
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(f"{path}: video {name!r} is listed twice")
        seen.add(name)
    return tuple(names)


def _split_captions(captions: dict[str, Any], names: tuple[str, ...], path: Path) -> tuple[tuple[str, ...], ...]:
    out = []
    for name in names:
        sentences = captions.get(name)
        if sentences is None:
            raise DataError(f"{path}: video {name!r} has no captions")
        if not isinstance(sentences, list) or not sentences:
            raise DataError(f"{path}: video {name!r}: expected a non-empty list of sentences, got {sentences!r}")
        for j, s in enumerate(sentences):
            if not isinstance(s, str) or not s.strip():
                raise DataError(f"{path}: video {name!r}: caption {j} is empty or not a string: {s!r}")
        out.append(tuple(sentences))
    return tuple(out)


def _check_shapes(h5: _H5, names: tuple[str, ...], ndim: int, frames_of: _H5 | None = None) -> tuple[int, ...]:
    """Check every video's dataset exists with ``ndim`` axes, at least one frame and the same feature shape.

    With ``frames_of``, each video must also have as many frames there. Returns the first video's shape.
    """
    first: tuple[int, ...] | None = None
    for name in names:
        shape = h5.shape(name)
        if len(shape) != ndim or shape[0] < 1:
            axes = "[frames, dim]" if ndim == 2 else "[frames, regions, dim]"
            raise DataError(f"{h5.path}: video {name!r}: expected {axes} with frames >= 1, got shape {shape}")
        if first is None:
            first = shape
        elif shape[1:] != first[1:]:
            raise DataError(
                f"{h5.path}: video {name!r}: feature shape {shape[1:]} differs from {first[1:]} "
                f"of video {names[0]!r}"
            )
        if frames_of is not None and frames_of.shape(name)[0] != shape[0]:
            raise DataError(
                f"{h5.path}: video {name!r}: {shape[0]} frames of regions but "
                f"{frames_of.shape(name)[0]} frames in {frames_of.path}"
            )
    assert first is not None
    return first
