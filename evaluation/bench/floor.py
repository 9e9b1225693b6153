"""The floor under the service's figures: the gateway's own query code, run in the bench's process on the same
model version, Milvus and tensor store, with the towers and the text backbone in ONNX Runtime here (as Triton's
instances run them) instead of behind Triton, and no gRPC in front. What the service takes beyond it is the cost
of how its parts are connected; what it takes is the cost of the work itself on this machine.

Per direction, every query once, one at a time: the median and 99th percentile of a query's time, each stage's
median (the gateway's stage names), and the CPU a query takes here and in Milvus, from which the most queries per
second this machine's cores could answer follows (cores divided by CPU seconds per query). Ingest likewise: items
per second through the gateway's own ingest code, and the CPU an item takes here and in Milvus.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from common.settings import Settings


@contextmanager
def in_process_version(settings: Settings, model: str, version: int) -> Iterator:
    """The running service's ``model`` version as the gateway holds it (:class:`serving.gateway.version.Version`),
    here: Milvus, the repository and the tensor store of the running local stack (else the settings'), the towers
    and the text backbone in ONNX Runtime in this process. -> (the Version, the settings it uses)."""
    from common.connect import service_settings
    from serving.gateway.model import ServedModel
    from serving.gateway.version import Version
    from serving.index.milvus_index import MilvusIndex

    settings = service_settings(settings)
    index = MilvusIndex.from_settings(settings, where="Milvus (the bench's own connection)")
    try:
        served = Version(ServedModel(settings.repository, model, version, None), index, settings)
        try:
            yield served, settings
        finally:
            served.close()
    finally:
        index.close()


def measure_floor(settings: Settings, model: str, version: int, plans: dict[str, Sequence[str]], top_k: int,
                  depths: dict[str, int], evidence: bool = False) -> dict[str, dict]:
    """``plans``: per direction (``text_to_video`` / ``video_to_text``), the queries (texts / indexed video ids);
    ``depths``: per direction, the first-stage depth the service used; ``evidence``: ask for each hit's temporal
    evidence, as the service was asked. -> per direction: p50_ms, p99_ms,
    stages_p50_ms, cpu_ms (per query, here and in Milvus), qps_ceiling."""
    from evaluation.bench.parts import cpu_seconds, local_parts
    from serving.gateway.queries import search_captions, search_videos

    milvus = {name: process for name, process in local_parts().items() if name == "milvus"}   # none if remote
    with in_process_version(settings, model, version) as (served, settings):
        asks: dict[str, Callable] = {
            "text_to_video": lambda text: search_videos(served, settings, text, top_k, depths["text_to_video"],
                                                        evidence),
            "video_to_text": lambda video: search_captions(served, settings, video_id=video, top_k=top_k,
                                                           depth=depths["video_to_text"], evidence=evidence),
        }
        return {direction: _measure(asks[direction], queries, lambda: sum(cpu_seconds(milvus).values()))
                for direction, queries in plans.items() if queries}


def measure_ingest_floor(settings: Settings, model: str, version: int, items: dict[str, Sequence],
                         batch: int) -> dict[str, dict]:
    """``items``: per kind (``videos`` / ``captions``), the gateway's inputs (:class:`VideoInput`,
    :class:`CaptionInput`), indexed ``batch`` at a time by the gateway's own ingest code (checks, towers, tensor
    store, Milvus: upserts by id). -> per kind: items, seconds, items_per_s, cpu_ms (per item, here and in Milvus),
    ceiling_per_s (the most items per second this machine's cores could index at that CPU cost)."""
    from evaluation.bench.parts import cpu_seconds, local_parts

    milvus = {name: process for name, process in local_parts().items() if name == "milvus"}   # none if remote
    found = {}
    with in_process_version(settings, model, version) as (served, _):
        for kind, inputs in items.items():
            if not inputs:
                continue
            write = served.index_videos if kind == "videos" else served.index_captions
            write(inputs[:1])   # warm: the first call loads what later ones reuse (an upsert: written again below)
            cpu_before, milvus_before = time.process_time(), sum(cpu_seconds(milvus).values())
            started = time.perf_counter()
            for begin in range(0, len(inputs), batch):
                write(inputs[begin:begin + batch])
            seconds = time.perf_counter() - started
            cpu_s = time.process_time() - cpu_before + sum(cpu_seconds(milvus).values()) - milvus_before
            per_item = cpu_s / len(inputs)
            found[kind] = {"items": len(inputs), "seconds": seconds, "items_per_s": len(inputs) / seconds,
                           "cpu_ms": per_item * 1e3,
                           "ceiling_per_s": (os.cpu_count() or 1) / per_item if per_item else 0.0}
    return found


def _measure(ask: Callable, queries: Sequence[str], milvus_cpu: Callable[[], float]) -> dict:
    ask(queries[0])   # warm: the first call loads what later ones reuse
    walls, stages = [], {}
    cpu_before, milvus_before = time.process_time(), milvus_cpu()
    for query in queries:
        started = time.perf_counter()
        answer = ask(query)
        walls.append((time.perf_counter() - started) * 1e3)
        for stage, ms in answer.timings.items():
            stages.setdefault(stage, []).append(ms)
    cpu_s = (time.process_time() - cpu_before) + (milvus_cpu() - milvus_before)
    per_query = cpu_s / len(queries)
    return {"queries": len(queries), "p50_ms": float(np.percentile(walls, 50)),
            "p99_ms": float(np.percentile(walls, 99)),
            "stages_p50_ms": {stage: float(np.median(ms)) for stage, ms in stages.items()},
            "cpu_ms": per_query * 1e3, "qps_ceiling": (os.cpu_count() or 1) / per_query if per_query else 0.0}
