"""The load of ``strata bench e2e``, for Locust: each user asks one direction in a closed loop (no think time),
walking the plan's query list (every user the next query, so each query is asked once before any is asked twice).
The plan is the JSON file named by ``$STRATA_BENCH_PLAN``: ``direction`` (``text_to_video``: texts;
``video_to_text``: indexed video ids), ``queries``, ``top_k``, ``depth`` (0: the gateway's), ``evidence`` (ask
each hit's temporal evidence), ``limit`` (stop after
that many calls; 0: run for Locust's ``--run-time``) and ``out``, where each call's wall time, the gateway's stage
times, the failed queries and the span from the first call's start to the last one's end are written when Locust
quits."""
from __future__ import annotations

import itertools
import json
import os
import time

from locust import constant, events, task

from evaluation.bench.load_user import GatewayUser

PLAN = json.loads(open(os.environ["STRATA_BENCH_PLAN"]).read())
TURNS = itertools.count()
WALLS: list[float] = []
STAGES: dict[str, list[float]] = {}
FAILED: list[str] = []
SPAN: list[float] = []       # when the first call started and the last one ended (time.monotonic)


class QueryUser(GatewayUser):
    wait_time = constant(0)

    @task
    def ask(self) -> None:
        turn = next(TURNS)
        if PLAN["limit"] and turn >= PLAN["limit"]:
            self.environment.runner.quit()
            return
        query = PLAN["queries"][turn % len(PLAN["queries"])]
        if PLAN["direction"] == "text_to_video":
            name, call = "SearchVideos", lambda: self.client.search_videos(query, PLAN["top_k"], PLAN["depth"],
                                                                           evidence=PLAN["evidence"])
        else:
            name, call = "SearchCaptions", lambda: self.client.search_captions(
                video_id=query, top_k=PLAN["top_k"], candidate_depth=PLAN["depth"], evidence=PLAN["evidence"])
        started = time.monotonic()
        SPAN[:1] = SPAN[:1] or [started]
        answer, ms = self.timed(name, call)
        SPAN[1:] = [time.monotonic()]
        if answer is None:
            FAILED.append(query)
            return
        WALLS.append(ms)
        for timing in answer.timings:
            STAGES.setdefault(timing.stage, []).append(timing.ms)


@events.quitting.add_listener
def _write_out(environment, **_) -> None:
    with open(PLAN["out"], "w") as handle:
        json.dump({"walls_ms": WALLS, "stages_ms": STAGES, "failed": FAILED,
                   "seconds": SPAN[1] - SPAN[0] if len(SPAN) == 2 else 0.0}, handle)
