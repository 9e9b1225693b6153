"""A Ray Train worker killed mid-run: Ray Train starts the worker group again from the last checkpoint it was given,
and the run ends at the metrics of an uninterrupted one (minutes: `make test-faults`, not part of `make test`)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.training.engine.test_train import BIN, RAY_TEST_AUTH, history, write_config

pytestmark = pytest.mark.faults

EPOCHS = 12
WORKER = b"RayTrainWorker"   # in the process title Ray gives each Train worker


def _train_workers() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and WORKER in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _epochs_done(run: Path) -> int:
    try:
        return len(json.loads((run / "metrics.json").read_text()))
    except (OSError, ValueError):
        return 0


def _kept_epoch(results: Path) -> int:
    """The epoch of the checkpoint Ray Train's controller has taken in (its checkpoint manager's snapshot), 0: none."""
    try:
        kept = json.loads((results / "checkpoint_manager_snapshot.json").read_text())["latest_checkpoint_result"]
    except (OSError, ValueError, KeyError):
        return 0
    return int(kept["metrics"]["epoch"]) if kept else 0


def test_a_worker_killed_mid_run_is_replaced_and_the_run_ends_at_the_uninterrupted_metrics(strata_home, tmp_path):
    env = {**os.environ, "STRATA_HOME": str(strata_home), "PATH": f"{BIN}:{os.environ['PATH']}", "RAY_ADDRESS": "",
           **RAY_TEST_AUTH}   # the drivers' local clusters write no token into the home
    train = [str(BIN / "strata"), "train", "--workers", "2"]
    straight = write_config(tmp_path, "straight", epochs=EPOCHS)
    subprocess.run([*train, str(straight)], env=env, check=True, capture_output=True, timeout=900)

    killed = write_config(tmp_path, "killed", epochs=EPOCHS)
    run = strata_home / "runs" / "killed-seed3"
    log = tmp_path / "killed.log"
    with log.open("w") as out:
        driver = subprocess.Popen([*train, str(killed)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        try:
            # Ray Train's controller takes a reported checkpoint in a little after the report: kill once it has one
            results, deadline = strata_home / "ray_results" / "killed-seed3", time.monotonic() + 600
            while _kept_epoch(results) < 1 and driver.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            workers, done = _train_workers(), _epochs_done(run)
            assert _kept_epoch(results) >= 1 and done < EPOCHS and len(workers) == 2, (done, workers,
                                                                                        log.read_text()[-3000:])
            os.kill(max(workers), signal.SIGKILL)   # one of the two, mid-run
            assert driver.wait(timeout=900) == 0, log.read_text()[-3000:]
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
    said = log.read_text()
    resumed = [line for line in said.splitlines() if "resuming killed-seed3 after epoch" in line]
    assert resumed, said[-3000:]                    # the worker group started again, from a checkpoint:
    assert all("checkpoint_" in line for line in resumed), resumed   # the one Ray Train kept, not the run's own
    a, b = history(strata_home / "runs" / "straight-seed3"), history(run)
    assert [r["epoch"] for r in b] == list(range(1, EPOCHS + 1))
    assert [r["val"] for r in a] == [r["val"] for r in b]
    assert [r["train_loss"] for r in b] == pytest.approx([r["train_loss"] for r in a], rel=1e-6)
