"""The soak's load (tests/soak/test_soak.py), for Locust: each user is a gRPC client of the gateway at ``--host``
(:class:`evaluation.bench.load_user.GatewayUser`) asking both directions and ingesting now and then.

Ingests upsert a fixed pool of ids, so the corpus keeps its size and memory that grows is memory kept, not data.
"""
from __future__ import annotations

from locust import between, task

from clients.client import Video
from evaluation.bench.load_user import GatewayUser
from tests.serving.gateway.corpus import VIDEOS, corpus_videos, sample_captions

POOL = 32                   # ids the ingests upsert over and over
TEXTS = sample_captions(200)
FRAMES = [frames for _, frames in corpus_videos(POOL, seed=7)]


class StrataUser(GatewayUser):
    wait_time = between(0.0, 0.05)

    def on_start(self) -> None:
        super().on_start()
        self.turn = 0

    def _next(self) -> int:
        self.turn += 1
        return self.turn

    @task(6)
    def text_to_video(self) -> None:
        text = TEXTS[self._next() % len(TEXTS)]
        self.timed("SearchVideos", lambda: self.client.search_videos(text, top_k=10))

    @task(3)
    def video_to_text(self) -> None:
        video_id = f"vid{self._next() % VIDEOS:04d}"
        self.timed("SearchCaptions", lambda: self.client.search_captions(video_id=video_id, top_k=10))

    @task(1)
    def ingest_captions(self) -> None:
        k = self._next()
        captions = [(f"soak-cap{(k + i) % POOL:02d}", TEXTS[(k + i) % len(TEXTS)], f"vid{i:04d}") for i in range(4)]
        self.timed("IndexCaptions", lambda: self.client.index_captions(captions))

    @task(1)
    def ingest_videos(self) -> None:
        k = self._next() % POOL
        video = Video(f"soak-vid{k:02d}", FRAMES[k], source="soak", duration=len(FRAMES[k]) / 2)
        self.timed("IndexVideos", lambda: self.client.index_videos([video]))
