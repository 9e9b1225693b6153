"""The retrieval core behind the gRPC servicer: queries in both directions, ingest, delete, describe (no gRPC here).

One model version is active at a time; its record (model base and version) lives in Milvus beside the index, so
every gateway replica reads the same one. Each version has its own pair of Milvus collections and tensor
stores (``<base>_v<N>_videos``, ``<base>_v<N>_captions``). A query runs wholly on the version that was active
when it started: text -> Triton (backbone, tower) -> Milvus candidates -> their tensors -> the scorer here.
"""
from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from serving.gateway.errors import FailedPrecondition, InvalidArgument, NotFound
from serving.gateway.first_stage import FirstStage
from serving.gateway.model import ServedModel, stage
from serving.gateway.writer import Item, Writer
from common.repository import TEXT_BACKBONE, latest_version, model_names, split_model_name
from common.errors import StrataError
from common.layout import TEXT_INDEX, VIDEO_INDEX
from common.settings import Settings

log = logging.getLogger("strata.gateway")

ACTIVE_KEY = "active_model"
VIDEOS, CAPTIONS = "videos", "captions"
REPLICA_PREFIX = "replica:"      # state records of running gateways: the versions each answers with
EMPTY_LEVELS = "empty_levels"   # stored with each caption: 1 for a level with no text node


@dataclass(frozen=True)
class LevelScore:
    level: str
    score: float
    empty: bool = False


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    levels: tuple[LevelScore, ...]
    source: str = ""
    duration: float = -1.0
    text: str = ""
    video_id: str = ""


@dataclass(frozen=True)
class Answer:
    hits: tuple[Hit, ...]
    model: str
    version: int
    candidates: int
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Written:
    """What an ingest or delete call did: items written (or deleted), items of that kind now, and the version."""

    count: int
    total: int
    model: str
    version: int


@dataclass(frozen=True)
class VideoInput:
    id: str
    frames: np.ndarray
    regions: np.ndarray | None = None
    source: str = ""
    duration: float = -1.0


@dataclass(frozen=True)
class CaptionInput:
    id: str
    text: str
    video_id: str = ""


def collection_name(base: str, version: int, kind: str) -> str:
    return f"{base}_v{version}_{kind}"


class Version:
    """One model version: its model, and per kind its collection, tensor store and writer.

    ``users`` counts the calls running on it; a version that stopped being active is closed once the last one
    ends, so queries in flight finish on the version they started on."""

    def __init__(self, model: ServedModel, index, settings: Settings):
        from serving.store import open_store

        self.model, self.index = model, index
        self.store_dtype = np.dtype(settings.store_dtype)
        self.batch = settings.index_batch
        self.collections = {kind: collection_name(model.base, model.version, kind) for kind in (VIDEOS, CAPTIONS)}
        self.stores = {kind: open_store(f"{settings.tensor_store_root}/{name}") for kind, name in self.collections.items()}
        for kind, name in self.collections.items():
            index.ensure_collection(name, model.index_dim, kind)
        # First stage: the model's strategy (recorded in its manifest) and the extra collections it needs.
        self.first_stage = FirstStage(index, model.manifest, model.layout, self.collections)
        self.first_stage.ensure()
        self.writers = {kind: Writer(index, self.stores[kind], self.collections[kind], settings.index_batch,
                                     self.first_stage, kind) for kind in self.collections}
        self.users = 0
        self.retired = False

    @property
    def key(self) -> tuple[str, int]:
        return self.model.base, self.model.version

    def count(self, kind: str) -> int:
        return self.index.count(self.collections[kind])

    def _stored(self, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Tower outputs as stored: floats in the store's precision."""
        return {k: v.astype(self.store_dtype) if v.dtype.kind == "f" else v for k, v in outputs.items()}

    def index_videos(self, videos: Sequence[VideoInput]) -> int:
        """Check, embed and commit videos (upsert by id); returns how many were written."""
        _check_ids([v.id for v in videos], "video")
        for v in videos:
            self.model.check_video(f"video {v.id!r}", v.frames, v.regions)
        items = []
        for start in range(0, len(videos), self.batch):
            chunk = videos[start:start + self.batch]
            outputs = self.model.embed_videos([v.frames for v in chunk], [v.regions for v in chunk])
            for v, out in zip(chunk, outputs):
                record = {**self._stored(out), "frame_feats": np.asarray(v.frames, np.float32)}
                if v.regions is not None and self.model.reads_regions:
                    record["region_feats"] = np.asarray(v.regions, np.float32)
                items.append(Item(v.id, record, out[VIDEO_INDEX], {"source": v.source, "duration": float(v.duration)}))
        return self.writers[VIDEOS].commit(items)

    def index_captions(self, captions: Sequence[CaptionInput]) -> int:
        _check_ids([c.id for c in captions], "caption")
        items = []
        for start in range(0, len(captions), self.batch):
            chunk = captions[start:start + self.batch]
            embedded = self.model.embed_texts([c.text for c in chunk])
            for c, out, empty in zip(chunk, embedded.items, embedded.empty):
                record = {**self._stored(out), EMPTY_LEVELS: np.asarray(empty, np.int64)}
                items.append(Item(c.id, record, out[TEXT_INDEX], {"text": c.text, "video_id": c.video_id}))
        return self.writers[CAPTIONS].commit(items)

    def close(self) -> None:
        for store in self.stores.values():
            store.close()
        self.model.close()


def on_active_version(method):
    """Run a service method on the active version (passed as its first argument), counted as a user of it."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self.using() as version:
            return method(self, version, *args, **kwargs)

    return wrapper


def default_version(settings: Settings) -> tuple[dict | None, str]:
    """(record, "") of the version to activate when none is: the latest of the ``model`` setting, or of the only
    model exported; else (None, why not)."""
    repo = settings.repository
    bases = sorted({parts[0] for name in model_names(repo) if name != TEXT_BACKBONE
                    and (parts := split_model_name(name)) is not None})
    base = settings.model
    if not base and len(bases) != 1:
        return None, (f"no exported model in {repo}: strata export CHECKPOINT" if not bases else
                      f"{repo} holds several models ({', '.join(bases)}); choose one with the setting model "
                      f"(STRATA_MODEL or --model)")
    base = base or bases[0]
    if base not in bases:
        return None, f"model {base!r} is not exported in {repo} (it holds: {', '.join(bases) or 'nothing'})"
    return {"model": base, "version": latest_version(repo, base)}, ""


def active_record(settings: Settings, index) -> tuple[dict | None, str]:
    """The active version's record in Milvus, or the default one (recorded there), or (None, why not)."""
    record = index.get_state(ACTIVE_KEY)
    if record is not None:
        return record, ""
    record, problem = default_version(settings)
    if record is not None:
        index.set_state(ACTIVE_KEY, record)
    return record, problem


class RetrievalService:
    def __init__(self, settings: Settings, index=None, replica_name: str = ""):
        from serving.index.milvus_index import MilvusIndex

        self.settings = settings
        self.index = index if index is not None else MilvusIndex(settings.milvus, timeout_s=settings.request_timeout_s)
        self._version: Version | None = None
        self._draining: list[Version] = []   # versions replaced while calls were still running on them
        self._lock = threading.Lock()
        self.problem = "not started"   # why there is no active version (for health and errors)
        self.replica = replica_name or f"{socket.gethostname()}:{os.getpid()}"

    # -- the active version ----------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Load the active version named by the record in Milvus (choosing and recording a default when there is
        none) and report this replica's versions; on failure keep what was loaded and remember why."""
        try:
            record, self.problem = active_record(self.settings, self.index)
            if record is not None:
                wanted = (record["model"], int(record["version"]))
                if self._version is None or self._version.key != wanted:
                    self._activate(wanted)
        except StrataError as err:
            self.problem = str(err)
            log.warning("no model version loaded: %s", err)
        self._heartbeat()

    def _activate(self, key: tuple[str, int]) -> None:
        version = Version(ServedModel(self.settings.repository, *key, self.settings.triton_url,
                                      self.settings.request_timeout_s), self.index, self.settings)
        with self._lock:
            old, self._version = self._version, version
            if old is not None:
                old.retired = True
                self._draining.append(old)
        self.problem = ""
        log.info("serving %s version %d", *version.key)
        self._close_drained()

    def _close_drained(self) -> None:
        with self._lock:
            done = [v for v in self._draining if v.users == 0]
            self._draining = [v for v in self._draining if v.users > 0]
        for version in done:
            log.info("closed %s version %d (no call in flight)", *version.key)
            version.close()

    def _heartbeat(self) -> None:
        """This replica's record beside the index: the versions it answers with now (so a swap knows when an old
        version is no longer in use anywhere)."""
        with self._lock:
            in_use = [list(v.key) for v in [self._version, *self._draining] if v is not None]
        try:
            self.index.set_state(f"{REPLICA_PREFIX}{self.replica}", {"versions": in_use, "time": time.time()})
        except StrataError as err:
            log.warning("cannot record this replica's versions: %s", err)

    @contextmanager
    def using(self) -> Iterator[Version]:
        """The active version, counted as in use until the block ends."""
        with self._lock:
            version = self._version
            if version is None:
                raise FailedPrecondition(f"no model version is active: {self.problem}")
            version.users += 1
        try:
            yield version
        finally:
            with self._lock:
                version.users -= 1
            if version.retired:
                self._close_drained()

    def active(self) -> Version:
        """The active version now (not counted as in use: for what describes it, not for work on it)."""
        version = self._version
        if version is None:
            raise FailedPrecondition(f"no model version is active: {self.problem}")
        return version

    def health(self) -> tuple[bool, str]:
        """(serving, why not): Milvus and Triton reachable and a version active."""
        if not self.index.ping():
            return False, f"Milvus unreachable at {self.settings.milvus}"
        version = self._version
        if version is None:
            return False, f"no model version is active: {self.problem}"
        client = version.model.towers.client
        try:
            parts = [m.name for m in version.model.towers.models.values()] + [TEXT_BACKBONE]
            ready = client.is_server_ready(client_timeout=2) and all(
                client.is_model_ready(name, str(v), client_timeout=2) for name, v in
                zip(parts, [version.model.version] * 3 + [version.model.backbone_version]))
        except Exception as err:  # noqa: BLE001 - any failure to reach Triton means not serving
            return False, f"Triton unreachable at {self.settings.triton_url}: {err}"
        return (True, "") if ready else (False, f"Triton does not have {version.key[0]} version {version.key[1]} ready")

    # -- queries -----------------------------------------------------------------------------------------------
    def _limits(self, top_k: int, depth: int, default_depth: int = 0) -> tuple[int, int]:
        top_k = top_k or self.settings.top_k
        depth = depth or min(max(default_depth or self.settings.candidate_depth, top_k), self.settings.max_candidate_depth)
        if not 1 <= top_k <= self.settings.max_top_k:
            raise InvalidArgument(f"top_k must be in 1..{self.settings.max_top_k}, got {top_k}")
        if not top_k <= depth <= self.settings.max_candidate_depth:
            raise InvalidArgument(f"candidate_depth must be in top_k ({top_k})..{self.settings.max_candidate_depth}, "
                                  f"got {depth}")
        return top_k, depth

    @on_active_version
    def search_videos(self, version: Version, text: str, top_k: int = 0, depth: int = 0) -> Answer:
        top_k, depth = self._limits(top_k, depth, version.first_stage.depth(VIDEOS))
        timings: dict[str, float] = {}
        embedded = version.model.embed_texts([text], timings)
        query = embedded.items[0]
        candidates = self._candidates(version, VIDEOS, query, depth, timings)
        with stage(timings, "fetch"):
            records = self._fetch(version, VIDEOS, candidates)
        with stage(timings, "rerank"):
            fused, levels = version.model.score([query], [records[i] for i in candidates])
        ranked = _top(candidates, fused[0], top_k)
        hits = self._hits(version, VIDEOS, ranked, fused[0], levels[:, 0, :], [embedded.empty[0]] * len(candidates))
        return Answer(hits, *version.key, len(candidates), timings)

    @on_active_version
    def search_captions(self, version: Version, video_id: str = "", frames: np.ndarray | None = None,
                        regions: np.ndarray | None = None, top_k: int = 0, depth: int = 0) -> Answer:
        top_k, depth = self._limits(top_k, depth, version.first_stage.depth(CAPTIONS))
        timings: dict[str, float] = {}
        if video_id:
            with stage(timings, "fetch"):
                query = self._fetch(version, VIDEOS, [video_id])[video_id]
        else:
            if frames is None:
                raise InvalidArgument("give an indexed video's id or uploaded video features")
            version.model.check_video("uploaded video", frames, regions)
            query = version.model.embed_videos([frames], [regions], timings)[0]
        candidates = self._candidates(version, CAPTIONS, query, depth, timings)
        with stage(timings, "fetch"):
            records = self._fetch(version, CAPTIONS, candidates)
        with stage(timings, "rerank"):
            fused, levels = version.model.score([records[i] for i in candidates], [query])
        empty = [tuple(bool(e) for e in records[i][EMPTY_LEVELS]) for i in candidates]
        ranked = _top(candidates, fused[:, 0], top_k)
        hits = self._hits(version, CAPTIONS, ranked, fused[:, 0], levels[:, :, 0], empty)
        return Answer(hits, *version.key, len(candidates), timings)

    @on_active_version
    def score_videos(self, version: Version, text: str, video_ids: Sequence[str]) -> Answer:
        if not video_ids:
            raise InvalidArgument("give at least one video id to score")
        if len(video_ids) > self.settings.max_candidate_depth:
            raise InvalidArgument(f"at most {self.settings.max_candidate_depth} video ids per call, got {len(video_ids)}")
        timings: dict[str, float] = {}
        ids = list(dict.fromkeys(video_ids))
        embedded = version.model.embed_texts([text], timings)
        with stage(timings, "fetch"):
            records = self._fetch(version, VIDEOS, ids)
        with stage(timings, "rerank"):
            fused, levels = version.model.score(embedded.items, [records[i] for i in ids])
        ranked = _top(ids, fused[0], len(ids))
        hits = self._hits(version, VIDEOS, ranked, fused[0], levels[:, 0, :], [embedded.empty[0]] * len(ids))
        return Answer(hits, *version.key, len(ids), timings)

    def _candidates(self, version: Version, kind: str, query: dict[str, np.ndarray], depth: int, timings) -> list[str]:
        with stage(timings, "search"):
            found = version.first_stage.candidates(kind, query, depth)
        if not found:
            what = "videos" if kind == VIDEOS else "captions"
            raise FailedPrecondition(f"no {what} are indexed for {version.key[0]} version {version.key[1]}: "
                                     f"strata index DIR (or the Index{what.capitalize()} call) first")
        return found

    def _fetch(self, version: Version, kind: str, ids: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
        records = version.stores[kind].get(list(ids))
        missing = [i for i, r in zip(ids, records) if r is None]
        if missing:
            raise NotFound(f"unknown {kind[:-1]} id(s): {', '.join(map(repr, missing[:5]))}"
                           + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
        return dict(zip(ids, records))

    def _hits(self, version: Version, kind: str, ranked: list[tuple[str, int]], fused: np.ndarray, levels: np.ndarray,
              empty: list[tuple[bool, ...]]) -> tuple[Hit, ...]:
        """Hits for positions ``ranked`` of the scored candidates, with their stored metadata."""
        names = version.model.levels
        candidate_ids = [item_id for item_id, _ in ranked]
        fields = ["source", "duration"] if kind == VIDEOS else ["text", "video_id"]
        rows = self.index.get(version.collections[kind], candidate_ids, fields)
        hits = []
        for item_id, position in ranked:
            row = rows.get(item_id, {})
            hits.append(Hit(item_id, float(fused[position]),
                            tuple(LevelScore(n, float(levels[k, position]), empty[position][k]) for k, n in enumerate(names)),
                            **{f: row[f] for f in fields if f in row}))
        return tuple(hits)

    # -- ingest ------------------------------------------------------------------------------------------------
    @on_active_version
    def index_videos(self, version: Version, videos: Sequence[VideoInput]) -> Written:
        written = version.index_videos(videos)
        return Written(written, version.count(VIDEOS), *version.key)

    @on_active_version
    def index_captions(self, version: Version, captions: Sequence[CaptionInput]) -> Written:
        written = version.index_captions(captions)
        return Written(written, version.count(CAPTIONS), *version.key)

    @on_active_version
    def delete(self, version: Version, kind: str, ids: Sequence[str]) -> Written:
        if kind not in (VIDEOS, CAPTIONS):
            raise InvalidArgument(f"kind must be videos or captions, got {kind!r}")
        _check_ids(ids, kind[:-1])
        deleted = version.writers[kind].delete(list(ids))
        return Written(deleted, version.count(kind), *version.key)

    @on_active_version
    def describe(self, version: Version) -> dict:
        return {
            **version.model.describe(),
            "videos": version.count(VIDEOS),
            "captions": version.count(CAPTIONS),
            "index_view": f"{VIDEO_INDEX} / {TEXT_INDEX}, inner product, exact (FLAT); first stage: "
                          f"{version.first_stage.describe()}",
            "triton_url": self.settings.triton_url, "milvus_uri": self.settings.milvus,
            "tensor_store": self.settings.tensor_store_root, "store_dtype": self.settings.store_dtype,
            "default_top_k": self.settings.top_k, "default_candidate_depth": version.first_stage.depth(VIDEOS),
        }

    def close(self) -> None:
        with self._lock:
            versions = [v for v in [self._version, *self._draining] if v is not None]
            self._version, self._draining = None, []
        for version in versions:
            version.close()
        try:
            self.index.delete_state(f"{REPLICA_PREFIX}{self.replica}")
        except StrataError:
            pass


def _top(ids: Sequence[str], scores: np.ndarray, k: int) -> list[tuple[str, int]]:
    """The ``k`` best (id, position) by score, ties broken by id."""
    order = sorted(range(len(ids)), key=lambda i: (-float(scores[i]), ids[i]))
    return [(ids[i], i) for i in order[:k]]


def _check_ids(ids: Sequence[str], what: str) -> None:
    if not ids:
        raise InvalidArgument(f"give at least one {what}")
    for item_id in ids:
        if not item_id or len(item_id.encode()) > 512:
            raise InvalidArgument(f"a {what} id must be 1..512 bytes, got {item_id!r}")
    if len(set(ids)) != len(ids):
        raise InvalidArgument(f"{what} ids repeat within one call: {sorted({i for i in ids if list(ids).count(i) > 1})[:5]}")
