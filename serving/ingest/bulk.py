"""Bulk ingest: a dataset folder's videos (pre-extracted features), raw video files, and captions, through the
served model version's towers on Triton and the writer, as a Ray Data pipeline (``--workers N``) or in this
process (``--workers 0``, as ``strata train`` does).

Work is cut into units of fixed composition (``batch`` consecutive items of one kind, in a fixed order), so a
rerun embeds any unit it redoes from exactly the same batch, giving bit-equal vectors. A unit whose every id
already has its Milvus row is skipped: the writer's order (tensor store first, Milvus row last) makes that row the
mark of a committed item, and both writes are upserts by id, so a killed ingest run again leaves every item once.

Pipeline (Ray Data): units -> ``read`` (read features from HDF5, or decode video files with PyAV: CPU tasks in
parallel) -> ``commit`` (an actor pool of ``workers`` actors, each with its own connection to Triton, Milvus and
the tensor store: frame backbone for raw video, then the video or text tower, then the writer) -> progress.

Test hook: ``STRATA_CRASH_AT=POINT:N`` ends the process (exit 75, no clean-up, as a kill would) the N-th time it
reaches POINT: ``decode`` (inside reading a unit), ``after_store`` (the writer, between a batch's tensor-store
write and its Milvus insert), ``mid_batch`` (the writer, after a batch's Milvus insert, before the unit's next
batch). See :func:`serving.gateway.writer.crash_point`.
"""
from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from common.settings import Settings
from serving.gateway.writer import crash_point

VIDEOS, FILES, CAPTIONS = "videos", "files", "captions"


@dataclass(frozen=True)
class Unit:
    kind: str                     # videos (features), files (raw video), captions
    ids: tuple[str, ...]
    source: str                   # dataset folder, or "" for files
    split: str = ""
    start: int = 0                # first index in the split (videos, captions)
    paths: tuple[str, ...] = ()   # files
    texts: tuple[str, ...] = ()   # captions
    video_ids: tuple[str, ...] = ()


@dataclass
class Progress:
    kind: str
    total: int
    done: int = 0
    skipped: int = 0
    errors: list = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    stages: dict = field(default_factory=dict)

    def add(self, result: dict, log) -> None:
        self.done += result["count"]
        self.errors += result["errors"]
        for name, ms in result["stages"].items():
            self.stages[name] = self.stages.get(name, 0.0) + ms
        log(f"  {self.kind}: {self.done + self.skipped}/{self.total} ({self.rate:.1f} {self.unit}/s)")

    @property
    def unit(self) -> str:
        return "captions" if self.kind == CAPTIONS else "videos"

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    @property
    def rate(self) -> float:
        return self.done / max(self.seconds, 1e-9)


# -- planning ----------------------------------------------------------------------------------------------------
def plan_dataset(folder: str, splits: list[str], batch: int, captions: bool) -> list[Unit]:
    from training.synth.generator import open_dataset

    dataset = open_dataset(folder)
    units = []
    for split_name in splits:
        split = dataset.split(split_name, 1)
        for start in range(0, len(split), batch):
            names = split.names[start:start + batch]
            units.append(Unit(VIDEOS, tuple(names), str(dataset.root), split_name, start))
        if captions:
            rows = [(f"{v}#{k}", text, v) for v, texts in zip(split.names, split.captions) for k, text in enumerate(texts)]
            for start in range(0, len(rows), batch):
                chunk = rows[start:start + batch]
                units.append(Unit(CAPTIONS, tuple(r[0] for r in chunk), str(dataset.root), split_name, start,
                                  texts=tuple(r[1] for r in chunk), video_ids=tuple(r[2] for r in chunk)))
    return units


def plan_files(paths: list[str], batch: int) -> list[Unit]:
    from serving.ingest.decode import files_with_ids

    files = [(i, str(p)) for i, p in files_with_ids(paths)]
    return [Unit(FILES, tuple(i for i, _ in files[s:s + batch]), "", paths=tuple(p for _, p in files[s:s + batch]))
            for s in range(0, len(files), batch)]


def unit_from_dict(data: dict) -> Unit:
    return Unit(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


# -- the two stages ----------------------------------------------------------------------------------------------
def read_unit(unit: Unit, max_frames: int, regions: bool, image=None) -> dict:
    """Stage 1 (CPU, no server): the unit's features, or its decoded frames; a payload of NumPy arrays."""
    from common.frame_backbone import ImageSpec
    from serving.ingest.decode import VideoFileError, decode_video

    started = time.perf_counter()
    arrays, meta = {}, {"unit": asdict(unit), "errors": [], "kept": [], "durations": []}
    if unit.kind == VIDEOS:
        from training.synth.generator import open_dataset

        split = open_dataset(unit.source).split(unit.split, max_frames, regions=regions)
        for k in range(len(unit.ids)):
            crash_point("decode")
            item = split.video(unit.start + k)
            arrays[f"{k}/frames"] = item.frames
            if item.regions is not None:
                arrays[f"{k}/regions"] = item.regions
            meta["kept"].append(k)
    elif unit.kind == FILES:
        spec = image or ImageSpec()
        for k, (vid, path) in enumerate(zip(unit.ids, unit.paths)):
            crash_point("decode")
            try:
                decoded = decode_video(path, max_frames, spec, name=path)
            except VideoFileError as err:
                meta["errors"].append({"id": vid, "file": path, "message": str(err)})
                continue
            arrays[f"{k}/images"] = decoded.images
            meta["kept"].append(k)
            meta["durations"].append(decoded.duration)
            if decoded.times is not None:
                arrays[f"{k}/times"] = decoded.times
    meta["read_ms"] = 1e3 * (time.perf_counter() - started)
    return {"meta": json.dumps(meta), "arrays": _pack(arrays)}


def _pack(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _unpack(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


class Committer:
    """Stage 2: embed a read unit on Triton and commit it through the writer (one per process or Ray actor)."""

    def __init__(self, settings: dict):
        from serving.gateway.service import RetrievalService

        self.service = RetrievalService(Settings(**settings))
        self.service.refresh()
        self.version = self.service.active()
        self._raw = None

    def raw(self):
        if self._raw is None:
            from serving.ingest.raw import RawVideos

            self._raw = RawVideos(self.service)
        return self._raw

    def __call__(self, row: dict) -> dict:
        from serving.gateway.types import CaptionInput, VideoInput

        meta, stages = json.loads(row["meta"]), {}
        unit = unit_from_dict(meta["unit"])
        stages["read"] = meta.get("read_ms", 0.0)
        arrays = _unpack(row["arrays"]) if unit.kind != CAPTIONS else {}
        started = time.perf_counter()
        if unit.kind == VIDEOS:
            videos = [VideoInput(unit.ids[k], arrays[f"{k}/frames"], arrays.get(f"{k}/regions"),
                                 f"{Path(unit.source).name}/{unit.split}") for k in meta["kept"]]
            self.service.index_videos(videos)
        elif unit.kind == FILES:
            from serving.ingest.decode import DecodedVideo

            decoded = [DecodedVideo(unit.paths[k], arrays[f"{k}/images"], 0, np.zeros(0), d, arrays.get(f"{k}/times"))
                       for k, d in zip(meta["kept"], meta["durations"])]
            if decoded:
                t0 = time.perf_counter()
                features = self.raw().backbone(self.version).features(decoded)
                stages["backbone"] = 1e3 * (time.perf_counter() - t0)
                videos = [VideoInput(unit.ids[k], f, r, Path(d.name).name, d.duration, d.times)
                          for k, d, (f, r) in zip(meta["kept"], decoded, features)]
                self.service.index_videos(videos)
        else:
            self.service.index_captions([CaptionInput(i, t, v) for i, t, v in zip(unit.ids, unit.texts, unit.video_ids)])
        stages["embed+commit"] = 1e3 * (time.perf_counter() - started) - stages.get("backbone", 0.0)
        count = len(meta["kept"]) if unit.kind != CAPTIONS else len(unit.ids)
        return {"count": count, "errors": meta["errors"], "stages": stages}

    def committed(self, unit: Unit) -> bool:
        kind = "captions" if unit.kind == CAPTIONS else "videos"
        return len(self.service.index.exists(self.version.collections[kind], unit.ids)) == len(unit.ids)


# -- running -----------------------------------------------------------------------------------------------------
def served_settings(settings: Settings) -> Settings:
    """The settings with the addresses the running local stack actually bound (its records), where it runs, and
    absolute paths: workers may run with another STRATA_HOME."""
    from common.connect import service_settings

    return replace(service_settings(settings), model_repository=str(settings.repository),
                   tensor_store=settings.tensor_store_root)


def run_bulk(units: list[Unit], settings: Settings, workers: int, log=print) -> list[Progress]:
    """Ingest ``units`` (skipping committed ones); returns progress per kind (videos, files, captions)."""
    from dataclasses import fields

    settings = served_settings(settings)
    plain = {f.name: getattr(settings, f.name) for f in fields(settings)}
    committer = Committer(plain)
    model = committer.version.model
    image = None
    if any(u.kind == FILES for u in units):
        image = committer.raw().backbone(committer.version).info.image
    results: list[Progress] = []
    for kind in (VIDEOS, FILES, CAPTIONS):
        todo = [u for u in units if u.kind == kind]
        if not todo:
            continue
        progress = Progress(kind, sum(len(u.ids) for u in todo))
        pending = [u for u in todo if not committer.committed(u)]
        progress.skipped = progress.total - sum(len(u.ids) for u in pending)
        if progress.skipped:
            log(f"  {kind}: {progress.skipped} already committed, skipped")
        progress.started = time.perf_counter()
        if workers == 0:
            for unit in pending:
                progress.add(committer(read_unit(unit, model.max_frames, model.reads_regions, image)), log)
        else:
            for result in _ray_pipeline(pending, plain, workers, model.max_frames, model.reads_regions, image):
                progress.add(result, log)
        results.append(progress)
    committer.service.close()
    return results


def _ray_pipeline(units: list[Unit], settings: dict, workers: int, max_frames: int, regions: bool,
                  image) -> Iterator[dict]:
    import os

    import ray

    if not units:
        return
    if not ray.is_initialized():
        env = {k: v for k, v in os.environ.items() if k.startswith("STRATA_")}
        ray.init(log_to_driver=False, runtime_env={"env_vars": env} if env else None)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    rows = [{"unit": json.dumps(asdict(u))} for u in units]

    def read(batch: dict) -> dict:
        out = [read_unit(unit_from_dict(json.loads(u)), max_frames, regions, image) for u in batch["unit"]]
        return {"meta": [o["meta"] for o in out], "arrays": [o["arrays"] for o in out]}

    class Commit:
        def __init__(self):
            self.committer = Committer(settings)

        def __call__(self, batch: dict) -> dict:
            out = [self.committer({"meta": m, "arrays": a}) for m, a in zip(batch["meta"], batch["arrays"])]
            return {"result": [json.dumps(o) for o in out]}

    ds = ray.data.from_items(rows, override_num_blocks=len(rows))
    ds = ds.map_batches(read, batch_size=1, concurrency=workers, num_cpus=0.5)
    ds = ds.map_batches(Commit, batch_size=1, concurrency=workers, num_cpus=0.5)
    for row in ds.iter_rows():
        yield json.loads(row["result"])


def summary(results: list[Progress]) -> str:
    lines = []
    for p in results:
        where = ", ".join(f"{k} {v / 1e3:.1f}s" for k, v in sorted(p.stages.items()))
        lines.append(f"{p.kind}: {p.done} {p.unit} in {p.seconds:.1f}s ({p.rate:.1f} {p.unit}/s), {p.skipped} already "
                     f"committed, {len(p.errors)} not decodable" + (f"; time in stages (summed over workers): {where}"
                                                                    if where else ""))
        for e in p.errors:
            lines.append(f"  not indexed: {e['file']}: {e['message']}")
    return "\n".join(lines)
