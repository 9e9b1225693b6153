"""The soak's load (tests/soak/test_soak.py), for Locust: each user is a gRPC client of the gateway at ``--host``
asking both directions and ingesting now and then, every call reported to Locust with its time and outcome.

Ingests upsert a fixed pool of ids, so the corpus keeps its size and memory that grows is memory kept, not data.
"""
from __future__ import annotations

import time

import grpc.experimental.gevent as grpc_gevent
from locust import User, between, task

from clients.client import StrataClient, Video
from tests.serving.gateway.corpus import VIDEOS, corpus_videos, sample_captions

grpc_gevent.init_gevent()   # gRPC's completion queue cooperates with Locust's greenlets

POOL = 32                   # ids the ingests upsert over and over
TEXTS = sample_captions(200)
FRAMES = [frames for _, frames in corpus_videos(POOL, seed=7)]


class StrataUser(User):
    wait_time = between(0.0, 0.05)

    def on_start(self) -> None:
        self.client = StrataClient(self.host, timeout_s=30)
        self.turn = 0

    def on_stop(self) -> None:
        self.client.close()

    def _timed(self, name: str, call) -> None:
        start = time.perf_counter()
        failure = None
        try:
            call()
        except Exception as err:  # noqa: BLE001 - every failure is counted by Locust, none ends the user
            failure = err
        self.environment.events.request.fire(request_type="grpc", name=name, response_length=0, exception=failure,
                                             response_time=(time.perf_counter() - start) * 1000.0, context={})

    def _next(self) -> int:
        self.turn += 1
        return self.turn

    @task(6)
    def text_to_video(self) -> None:
        text = TEXTS[self._next() % len(TEXTS)]
        self._timed("SearchVideos", lambda: self.client.search_videos(text, top_k=10))

    @task(3)
    def video_to_text(self) -> None:
        video_id = f"vid{self._next() % VIDEOS:04d}"
        self._timed("SearchCaptions", lambda: self.client.search_captions(video_id=video_id, top_k=10))

    @task(1)
    def ingest_captions(self) -> None:
        k = self._next()
        captions = [(f"soak-cap{(k + i) % POOL:02d}", TEXTS[(k + i) % len(TEXTS)], f"vid{i:04d}") for i in range(4)]
        self._timed("IndexCaptions", lambda: self.client.index_captions(captions))

    @task(1)
    def ingest_videos(self) -> None:
        k = self._next() % POOL
        video = Video(f"soak-vid{k:02d}", FRAMES[k], source="soak", duration=len(FRAMES[k]) / 2)
        self._timed("IndexVideos", lambda: self.client.index_videos([video]))
