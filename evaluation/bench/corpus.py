"""The benchmark corpus: SynthVTR videos the demo's model never trained on, drawn one at a time in the served
model's sizes and indexed through the gateway batch by batch.

Corpus position ``p`` is SynthVTR video ``N + p`` of the demo's generator config (``data.synth`` of
training/configs/train/demo.yaml, whose set is its first ``N`` videos) with the served model's frame and region
sizes, in the ``tst`` split (seen triples): the arrays and sentences ``strata synth`` writes for that index with
that config (in a set large enough, where the index is not in ``tst_unseen``), never one of the demo's videos.
Its video id is ``synth-PPPPPP`` (source ``synthvtr``, duration unknown, as for a dataset folder's videos), its
caption (the video's first, full one) ``synth-cap-PPPPPP``. The end-to-end benchmarks' corpus is positions
``[0, E2E_VIDEOS)``. Torch-free.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Callable, Iterator

from common.config import from_dict
from common.errors import ConfigError
from training.progress import progress
from training.synth.captions import render
from training.synth.config import SynthConfig
from training.synth.features import Renderer
from training.synth.generator import Item, caption_plans, render_item, video_plan
from training.synth.world import World

if TYPE_CHECKING:
    from clients.client import StrataClient, Video
    from serving.proto.strata.v1 import strata_pb2 as pb

E2E_VIDEOS = 100_000
KINDS = ("videos", "captions")
SPLIT = "tst"
SOURCE = "synthvtr"
PROBE_TEXT = "a person"      # any text: ScoreVideos only has to find the id


def video_id(position: int) -> str:
    return f"synth-{position:06d}"


def caption_id(position: int) -> str:
    return f"synth-cap-{position:06d}"


def demo_synth_config() -> SynthConfig:
    """The SynthVTR config the demo's model trained on (``data.synth`` of its train config)."""
    from deploy.demo import DEMO_CONFIG
    from training.engine.config import load_train_config

    synth = load_train_config(DEMO_CONFIG).data.synth
    if synth is None:
        raise ConfigError(f"train config {DEMO_CONFIG!r} has no data.synth: the benchmark corpus is drawn from the "
                          "demo's SynthVTR generator")
    return from_dict(SynthConfig, synth, where=f"data.synth of train config {DEMO_CONFIG!r}")


class CorpusGenerator:
    """Draws corpus positions: SynthVTR video ``first + position`` of ``config`` (``first``: the videos of the
    set a model trained on, so none of them is drawn)."""

    def __init__(self, config: SynthConfig, first: int):
        self.config, self.first = config, first
        self.world = World(config.seed, config.heldout_triples)

    @classmethod
    @lru_cache(maxsize=4)
    def demo(cls, frame_dim: int = 0, region_dim: int = 0) -> "CorpusGenerator":
        """The demo's generator at a served model's sizes; 0 keeps the demo config's own size (a model that reads
        no regions: its frames are then those of the demo's generator). Built once per sizes: every batch of a
        fill draws from the same one (it keeps no state between items)."""
        config = demo_synth_config()
        return cls(replace(config, frame_dim=frame_dim or config.frame_dim,
                           region_dim=region_dim or config.region_dim), config.videos)

    @cached_property
    def renderer(self) -> Renderer:
        return Renderer(self.world, self.config)

    def item(self, position: int) -> Item:
        return render_item(self.world, self.renderer, self.config, self.first + position, SPLIT)

    def caption(self, position: int) -> str:
        """The video's first (full) caption, drawn without rendering its features."""
        index = self.first + position
        plan = video_plan(self.world, self.config, index, SPLIT)
        return render(self.world, caption_plans(self.world, self.config, index, plan)[0]).sentence


def corpus_video(generator: CorpusGenerator, position: int, regions: bool) -> "Video":
    from clients.client import Video

    item = generator.item(position)
    return Video(video_id(position), item.video.frames, item.video.regions if regions else None, source=SOURCE)


def corpus_caption(generator: CorpusGenerator, position: int) -> tuple[str, str, str]:
    return caption_id(position), generator.caption(position), video_id(position)


def corpus_videos(info: "pb.DescribeResponse", count: int, start: int = 0) -> Iterator["Video"]:
    """Positions ``[start, start + count)`` as the served model (``info``: the gateway's describe()) takes them."""
    generator = CorpusGenerator.demo(info.frame_dim, info.region_dim)
    return (corpus_video(generator, p, info.region_dim > 0) for p in range(start, start + count))


def corpus_captions(count: int, start: int = 0) -> Iterator[tuple[str, str, str]]:
    """(caption id, text, video id) of positions ``[start, start + count)``; the text does not depend on the
    model's sizes."""
    generator = CorpusGenerator.demo()
    return (corpus_caption(generator, p) for p in range(start, start + count))


@dataclass(frozen=True)
class Ingested:
    """One kind's run: items sent, items the gateway wrote, the seconds spent drawing them and in the index calls,
    and the kind's count in the gateway afterwards."""

    items: int
    indexed: int
    generate_s: float
    index_s: float
    total: int

    def figures(self) -> dict[str, float]:
        return {"items": self.items, "indexed": self.indexed, "total": self.total,
                "generate_s": round(self.generate_s, 3), "index_s": round(self.index_s, 3),
                "generated_per_s": round(self.items / self.generate_s, 1) if self.generate_s else 0.0,
                "indexed_per_s": round(self.items / self.index_s, 1) if self.index_s else 0.0}


def ingest(client: "StrataClient", info: "pb.DescribeResponse", kind: str, positions: range, batch: int,
           show: bool = True) -> Ingested:
    """Index the corpus ``kind`` (videos or captions) at ``positions``, ``batch`` a call to IndexVideos or
    IndexCaptions (upserts by id). Each batch is drawn before its call, so only the calls count as index time."""
    if kind == "videos":
        generator, regions = CorpusGenerator.demo(info.frame_dim, info.region_dim), info.region_dim > 0
        make, call, total = (lambda p: corpus_video(generator, p, regions)), client.index_videos, info.videos
    elif kind == "captions":
        generator = CorpusGenerator.demo()
        make, call, total = (lambda p: corpus_caption(generator, p)), client.index_captions, info.captions
    else:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    generate_s = index_s = 0.0
    indexed = 0
    starts = range(positions.start, positions.stop, batch)
    for begin in progress(starts, len(starts), f"index {kind}", f"batches of {batch}", enabled=show):
        started = time.perf_counter()
        items = [make(p) for p in range(begin, min(begin + batch, positions.stop))]
        drawn = time.perf_counter()
        answer = call(items, batch=batch)
        index_s += time.perf_counter() - drawn
        generate_s += drawn - started
        indexed, total = indexed + answer.indexed, answer.total
    return Ingested(len(positions), indexed, generate_s, index_s, total)


def corpus_prefix(client: "StrataClient") -> int:
    """How many corpus positions the gateway holds: :func:`fill` indexes them from position 0 up, so the held ones
    are a prefix, found by probing for video ids (ScoreVideos says NOT_FOUND for one not indexed)."""
    import grpc

    from clients.client import StrataCallError

    def held(position: int) -> bool:
        try:
            client.score_videos(PROBE_TEXT, [video_id(position)])
            return True
        except StrataCallError as err:
            if err.code == grpc.StatusCode.NOT_FOUND:
                return False
            raise

    if not held(0):
        return 0
    low, high = 0, 1             # held(low); find a high not held, then bisect
    while held(high):
        low, high = high, 2 * high
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if held(middle) else (low, middle)
    return high


FILL_AHEAD = 2   # batches the drawing process renders ahead of the one being indexed


def draw_batch(frame_dim: int, region_dim: int, positions: range) -> tuple[list["Video"], list[tuple[str, str, str]]]:
    """One batch of a fill: the videos of ``positions`` at the served model's sizes, and their captions (run in
    the fill's drawing process)."""
    videos = CorpusGenerator.demo(frame_dim, region_dim)
    captions = CorpusGenerator.demo()
    return ([corpus_video(videos, p, region_dim > 0) for p in positions],
            [corpus_caption(captions, p) for p in positions])


def fill(client: "StrataClient", items: int, log: Callable[[str], None], batch: int = 128,
         show: bool = True) -> dict[str, dict[str, float]]:
    """Bring the gateway's corpus to positions ``[0, items)``, videos with their captions, indexing only what is
    missing (and the last batch before it again: a fill stopped between a batch's videos and its captions leaves
    those captions out). Other items the gateway holds stay and are not counted. Returns each kind's figures
    (:meth:`Ingested.figures`; the drawing time is the time spent waiting for the drawer, counted with the videos).

    The batches are drawn in a process of their own, :data:`FILL_AHEAD` ahead of the one being indexed, so that
    drawing (the generator's Python, about 17 ms a position) overlaps the gateway's work instead of adding to it."""
    import multiprocessing
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    held = corpus_prefix(client)
    start = min(max(0, held - batch), items)
    info = client.describe()
    chunks = [range(begin, min(begin + batch, items)) for begin in range(start, items, batch)]
    runs = {kind: Ingested(0, 0, 0.0, 0.0, getattr(info, kind)) for kind in KINDS}
    calls = {"videos": client.index_videos, "captions": client.index_captions}
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as drawer:
        pending = deque(drawer.submit(draw_batch, info.frame_dim, info.region_dim, chunk) for chunk in chunks[:FILL_AHEAD])
        for k in progress(range(len(chunks)), len(chunks), "fill corpus", f"batch of {batch}", enabled=show):
            waiting = time.perf_counter()
            drawn = dict(zip(KINDS, pending.popleft().result()))
            waited = time.perf_counter() - waiting
            if k + FILL_AHEAD < len(chunks):
                pending.append(drawer.submit(draw_batch, info.frame_dim, info.region_dim, chunks[k + FILL_AHEAD]))
            for kind in KINDS:
                started = time.perf_counter()
                answer = calls[kind](drawn[kind], batch=batch)
                run = runs[kind]
                runs[kind] = Ingested(run.items + len(chunks[k]), run.indexed + answer.indexed,
                                      run.generate_s + (waited if kind == "videos" else 0.0),
                                      run.index_s + time.perf_counter() - started, answer.total)
    for kind, total in runs.items():
        if total.items:
            log(f"indexed {total.items} corpus {kind} in {total.index_s:.1f}s ({total.items / total.index_s:.0f}/s; "
                f"waited {total.generate_s:.1f}s for the drawing process); {total.total} indexed")
    return {kind: total.figures() for kind, total in runs.items()}
