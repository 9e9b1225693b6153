"""``strata swap NAME --version N [--retire M]``: move the whole system to another model version, as one unit.

1. Triton loads N's text tower, video tower and scorer (and the text backbone N reads) beside what it serves.
2. The corpus is re-embedded from what the active version stored: each video's source features and each
   caption's text go through N's towers into N's own collections and tensor stores, through the same writer as
   any ingest. Items N already holds are skipped, so a swap that died half-way continues where it stopped.
3. The active-version record in Milvus flips to N in one write. Every gateway replica watches it and switches;
   calls already running finish on the version they started on.
4. ``--retire M`` waits until no replica reports M in use, then unloads M from Triton and drops its
   collections and tensor stores.

Until step 3 nothing the gateways read has changed, so a swap that fails before it leaves the old version serving.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from common.connect import triton_client
from common.errors import ConfigError, StrataError
from common.repository import PARTS, model_name, versions
from common.serving_tables import CAPTIONS, VIDEOS
from common.settings import Settings
from serving.gateway.active import active_pin, read_active, set_active
from serving.gateway.evidence import FRAME_TIMES
from serving.gateway.replicas import fresh_replicas
from serving.gateway.types import CaptionInput, VideoInput
from serving.gateway.version import Version
from serving.index.naming import collection_name, owned_collections
from serving.triton.swap import SwapError, ensure_loaded


@dataclass(frozen=True)
class SwapReport:
    model: str
    version: int
    previous: tuple[str, int]
    videos: int
    captions: int
    reembedded: int
    seconds: float


def _wait_replicas(index, done: Callable[[list], bool], what: str, timeout: float, log) -> None:
    deadline = time.monotonic() + timeout
    while True:
        pending = [name for name, used in fresh_replicas(index).items() if not done(used)]
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise SwapError(f"gateway replica(s) {', '.join(pending)} did not {what} within {timeout:.0f} s")
        time.sleep(0.2)


def check_graphs(repo, base: str, version: int) -> None:
    """Each of the version's graphs opens in ONNX Runtime here, before Triton is asked (a Triton reload that fails
    can take the model's served versions down with it)."""
    from common.repository import ONNX_FILE, version_dir
    from export.runner import OnnxPart

    for part in PARTS:
        path = version_dir(repo, base, part, version) / ONNX_FILE
        try:
            OnnxPart(path)
        except Exception as err:  # noqa: BLE001 - ONNX Runtime raises its own types; all mean "does not load"
            raise SwapError(f"{base} version {version}: its {part} graph {path} does not load ({err}); the active "
                            f"version keeps serving") from None


def swap(settings: Settings, base: str, version: int | None = None, retire: int | None = None,
         log: Callable[[str], None] = print, wait_s: float = 120.0) -> SwapReport:
    from serving.gateway.model import ServedModel
    from serving.index.milvus_index import IndexUnavailable, MilvusIndex

    if version is None and retire is None:
        raise ConfigError("give --version N to activate, --retire M to drop, or both")
    if version is not None:
        exported = versions(settings.repository, model_name(base, "text"))
        if version not in exported:
            raise ConfigError(f"version {version} of {base} is not in the repository {settings.repository} (it holds "
                              f"version(s) {', '.join(map(str, exported)) or 'none'}); export it first: "
                              f"strata export CHECKPOINT")
    started = time.monotonic()
    index = MilvusIndex.from_settings(settings)
    try:
        previous = read_active(index)
    except IndexUnavailable as err:
        raise ConfigError(f"{err}; is the service running? start it with strata up") from None
    if previous is None:
        raise ConfigError("no model version is active yet: start the service first (strata up)")
    reembedded = 0
    active = previous
    if version is not None and (base, version) != previous:
        check_graphs(settings.repository, base, version)
        target = ServedModel(settings.repository, base, version, settings.triton_url, settings.request_timeout_s)
        try:
            log(f"1/3 Triton: loading {base} version {version} beside {previous[0]} version {previous[1]}")
            try:
                ensure_loaded(settings.triton_url, settings.repository, base, version, target.backbone_version)
            except StrataError as err:
                ensure_loaded(settings.triton_url, settings.repository, *previous, None,
                              active_pin(index))   # a failed reload may have dropped them
                raise SwapError(f"{base} version {version} did not load in Triton ({err}); "
                                f"{previous[0]} version {previous[1]} keeps serving") from None
            source = Version(ServedModel(settings.repository, *previous, settings.triton_url,
                                         settings.request_timeout_s), index, settings)
            new = Version(target, index, settings)
            try:
                reembedded = _reembed(source, new, log)
            finally:
                source.close()
        except BaseException:
            target.close()
            raise
        log(f"3/3 activating {base} version {version}")
        set_active(index, settings.repository, base, version)
        active = (base, version)
        _wait_replicas(index, lambda used: used[:1] == [list(active)], f"switch to {base} version {version}",
                       wait_s, log)
        videos, captions = new.count(VIDEOS), new.count(CAPTIONS)
        new.close()
    else:
        videos = index.count(collection_name(*active, VIDEOS))
        captions = index.count(collection_name(*active, CAPTIONS))
    if retire is not None:
        _retire(settings, index, base, retire, active, wait_s, log)
    return SwapReport(active[0], active[1], previous, videos, captions, reembedded, time.monotonic() - started)


def _reembed(source: Version, target: Version, log) -> int:
    """Every item of ``source`` that ``target`` lacks, embedded by ``target`` from what ``source`` stored."""
    done = 0
    for kind in (VIDEOS, CAPTIONS):
        ids = source.stores[kind].ids()
        missing = sorted(set(ids) - target.index.exists(target.collections[kind], ids)) if ids else []
        log(f"2/3 re-embedding {len(missing)} of {len(ids)} {kind} into {target.collections[kind]}")
        started = time.monotonic()
        for start in range(0, len(missing), target.batch):
            chunk = missing[start:start + target.batch]
            if kind == VIDEOS:
                records = source.stores[VIDEOS].get(chunk)
                rows = target.index.get(source.collections[VIDEOS], chunk, ["source", "duration"])
                target.index_videos([VideoInput(i, np.asarray(r["frame_feats"]), _regions(r), rows.get(i, {}).get("source", ""),
                                                float(rows.get(i, {}).get("duration", -1.0)), r.get(FRAME_TIMES))
                                     for i, r in zip(chunk, records) if r is not None])
            else:
                rows = target.index.get(source.collections[CAPTIONS], chunk, ["text", "video_id"])
                target.index_captions([CaptionInput(i, rows[i]["text"], rows[i].get("video_id", ""))
                                       for i in chunk if i in rows])
            done += len(chunk)
            rate = (start + len(chunk)) / max(time.monotonic() - started, 1e-9)
            log(f"    {kind}: {start + len(chunk)}/{len(missing)} ({rate:.0f}/s)")
    return done


def _regions(record: dict) -> np.ndarray | None:
    return np.asarray(record["region_feats"]) if "region_feats" in record else None


def _retire(settings: Settings, index, base: str, retire: int, active: tuple[str, int], wait_s: float, log) -> None:
    from serving.store import open_store
    from serving.triton.swap import served_versions, swap as load_versions

    if (base, retire) == active:
        raise ConfigError(f"{base} version {retire} is the active version; activate another before retiring it")
    log(f"retiring {base} version {retire}: waiting until no gateway answers with it")
    _wait_replicas(index, lambda used: [base, retire] not in used, f"finish their calls on {base} version {retire}",
                   wait_s, log)
    client = triton_client(settings.triton_url)
    try:
        served = served_versions(client)
        for part in PARTS:
            name = model_name(base, part)
            current = served.get(name, [])
            if current == [retire]:
                client.unload_model(name)           # its last served version
            elif retire in current:
                load_versions(settings.triton_url, settings.repository, name, retire=retire)
    finally:
        client.close()
    from common.serving_tables import STRATEGIES

    existing = set(index.collections())
    for name in owned_collections(base, retire, (VIDEOS, CAPTIONS), STRATEGIES):
        if name in existing:
            index.drop(name)
    for kind in (VIDEOS, CAPTIONS):
        open_store(f"{settings.tensor_store_root}/{collection_name(base, retire, kind)}").drop()
    log(f"retired {base} version {retire}: unloaded from Triton, its collections and tensor stores dropped")
