"""The soak (``make soak``, not part of ``make test``): Locust drives the real stack for two minutes at 16 users,
both directions with ingests mixed in, after a warm-up; no call may fail and no process (the gateway, tritonserver,
the Milvus Lite server, each with its children) may grow its resident memory by more than 5%. Prints the figures.
"""
from __future__ import annotations

import csv
import os
import statistics
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from common.connect import gateway_url
from common.records import GATEWAY, MILVUS, TRITON, running_part

pytestmark = pytest.mark.soak

USERS = 16
WARM_UP_S = 30
RUN_S = 120
MAX_GROWTH = 0.05
SAMPLE_EVERY_S = 1.0
SETTLED = 5          # samples at each end whose median is compared
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
ROOT = Path(__file__).resolve().parents[2]


def run_locust(url: str, seconds: int, prefix: Path) -> list[dict[str, str]]:
    """Run Locust headless against ``url``; its per-call statistics (the rows of its stats CSV)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--users", str(USERS),
               "--spawn-rate", str(USERS), "--run-time", f"{seconds}s", "--host", url, "--csv", str(prefix),
               "--only-summary", "--stop-timeout", "30", "--exit-code-on-error", "0"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=seconds + 120)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(f"{prefix}_stats.csv", newline="") as handle:
        return list(csv.DictReader(handle))


class ResidentMemory(threading.Thread):
    """Samples, every second, the resident memory of each part with all its descendants."""

    def __init__(self, pids: dict[str, int]):
        super().__init__(daemon=True)
        import psutil

        self.parts = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.samples: dict[str, list[int]] = {name: [] for name in pids}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(SAMPLE_EVERY_S):
            for name, process in self.parts.items():
                self.samples[name].append(self._rss(process))

    @staticmethod
    def _rss(process) -> int:
        from evaluation.bench.parts import summed_over_children

        return int(summed_over_children(process, lambda p: p.memory_info().rss))

    def growth(self) -> dict[str, tuple[float, float, float]]:
        """Per part: (MiB at the start, MiB at the end, growth as a fraction) from the settled medians."""
        out = {}
        for name, values in self.samples.items():
            start, end = statistics.median(values[:SETTLED]), statistics.median(values[-SETTLED:])
            out[name] = (start / 2**20, end / 2**20, end / start - 1.0)
        return out


def test_two_minutes_at_16_users_without_an_error_or_memory_growth(stack, tmp_path):
    url = gateway_url(stack[0])      # the record: a restart may have moved the port
    pids = {"gateway": running_part(GATEWAY).pid, "tritonserver": running_part(TRITON).pid,
            "milvus": running_part(MILVUS).pid}
    run_locust(url, WARM_UP_S, tmp_path / "warm-up")
    memory = ResidentMemory(pids)
    memory.start()
    try:
        rows = run_locust(url, RUN_S, tmp_path / "soak")
    finally:
        memory.done.set()
        memory.join()
    growth = memory.growth()

    lines = [f"soak: {USERS} users for {RUN_S} s after a {WARM_UP_S} s warm-up, gateway {url}",
             f"{'call':<16}{'calls':>8}{'failed':>8}{'per s':>8}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}"]
    for row in rows:
        lines.append(f"{row['Name']:<16}{row['Request Count']:>8}{row['Failure Count']:>8}"
                     f"{float(row['Requests/s']):>8.1f}{row['50%']:>8}{row['95%']:>8}{row['99%']:>8}")
    lines.append(f"{'process':<16}{'RSS MiB start':>14}{'end':>8}{'growth':>8}")
    for name, (start, end, fraction) in growth.items():
        lines.append(f"{name:<16}{start:>14.0f}{end:>8.0f}{fraction:>8.1%}")
    report = "\n".join(lines)
    print("\n" + report)

    total = next(row for row in rows if row["Name"] == "Aggregated")
    assert int(total["Request Count"]) > 0
    assert int(total["Failure Count"]) == 0, report
    assert {row["Name"] for row in rows} >= {"SearchVideos", "SearchCaptions", "IndexCaptions", "IndexVideos"}
    assert all(fraction <= MAX_GROWTH for _, _, fraction in growth.values()), report
