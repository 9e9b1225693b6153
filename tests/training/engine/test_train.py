"""Training end to end on a tiny SynthVTR set: the report folder, evaluation, resume after a kill, Ray jobs."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from clients.cli import main as strata
from tests.conftest import TINY_SYNTH

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


def write_config(folder: Path, name: str, **optim) -> Path:
    config = {
        "model": "vsepp", "preset": "fast",
        "data": {"path": "tiny-synthvtr", "synth": TINY_SYNTH, "test_splits": ["tst", "tst_unseen"]},
        "optim": {"lr": 1e-3, "batch_size": 16, "epochs": 3, **optim},
        "seed": 3,
        "threads_per_worker": 1,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def history(run: Path) -> list[dict]:
    return json.loads((run / "metrics.json").read_text())


def test_train_writes_a_complete_report_and_evaluate_reproduces_it(strata_home, tmp_path, capsys):
    config = write_config(tmp_path, "report")
    assert strata(["train", str(config)]) == 0
    run = strata_home / "runs" / "report-seed3"
    for name in ("config.yaml", "metrics.json", "curves.png", "test_metrics.json", "train.log",
                 "best/model.pt", "best/config.json", "last/optimizer.pt", "last/state.json"):
        assert (run / name).is_file(), name
    rows = history(run)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    test = json.loads((run / "test_metrics.json").read_text())
    assert set(test["splits"]) == {"tst", "tst_unseen"}
    for split in test["splits"].values():
        assert set(split["binary_selection"]) == {"switch_roles", "replace_action", "replace_person",
                                                  "replace_scene", "incomplete_event"}
        assert split["fused"]["rsum"] > 0
    # `strata evaluate` on the best checkpoint gives the same figures.
    out = tmp_path / "eval.json"
    assert strata(["evaluate", str(run / "best"), "--split", "tst", "--json", str(out)]) == 0
    again = json.loads(out.read_text())["splits"]["tst"]
    assert again["fused"] == test["splits"]["tst"]["fused"]
    assert "binary selection" in capsys.readouterr().out
    # The results table is rebuilt from the report folders.
    table, only_this_run = tmp_path / "results.md", tmp_path / "runs"
    shutil.copytree(run, only_this_run / run.name)
    assert strata(["results", "--runs", str(only_this_run), "--out", str(table)]) == 0
    rows = [line for line in table.read_text().splitlines() if line.startswith("| vsepp | fast | - | 3 | 1 | tst |")]
    assert len(rows) == 1 and f"{test['splits']['tst']['fused']['rsum']:.1f}" in rows[0]
    # A rerun of a finished run trains nothing more; a different config under the same name is refused.
    assert strata(["train", str(config)]) == 0
    assert len(history(run)) == 3
    assert strata(["train", str(config), "--set", "optim.lr=0.5"]) == 2


def test_resume_after_kill_ends_at_the_uninterrupted_metrics(strata_home, tmp_path):
    env = {**os.environ, "STRATA_HOME": str(strata_home), "PATH": f"{BIN}:{os.environ['PATH']}"}
    straight = write_config(tmp_path, "straight")
    subprocess.run([BIN / "strata", "train", str(straight)], env=env, check=True, capture_output=True)

    killed = write_config(tmp_path, "killed")
    run = strata_home / "runs" / "killed-seed3"
    proc = subprocess.Popen([BIN / "strata", "train", str(killed)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (run / "last" / "state.json").is_file():
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (run / "last" / "state.json").is_file(), "no checkpoint appeared before the deadline"
    done_before = json.loads((run / "last" / "state.json").read_text())["epoch"]
    assert done_before < 3, "the run finished before it could be killed"

    result = subprocess.run([BIN / "strata", "train", str(killed)], env=env, check=True, capture_output=True, text=True)
    assert f"resuming killed-seed3 after epoch {done_before}" in result.stdout
    a, b = history(strata_home / "runs" / "straight-seed3"), history(run)
    assert [r["val"] for r in a] == [r["val"] for r in b]
    assert [round(r["train_loss"], 6) for r in a] == [round(r["train_loss"], 6) for r in b]
    test_a = json.loads((strata_home / "runs" / "straight-seed3" / "test_metrics.json").read_text())
    test_b = json.loads((run / "test_metrics.json").read_text())
    assert test_a["splits"]["tst"]["fused"] == test_b["splits"]["tst"]["fused"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ray_job_submit_trains_with_two_workers(strata_home, tmp_path):
    if shutil.which("ray", path=str(BIN)) is None:
        pytest.fail("ray is not installed in this environment")
    env = {**os.environ, "STRATA_HOME": str(strata_home), "PATH": f"{BIN}:{os.environ['PATH']}",
           "RAY_ADDRESS": ""}
    gcs, dashboard = _free_port(), _free_port()
    ray = str(BIN / "ray")
    subprocess.run([ray, "start", "--head", "--num-cpus=2", f"--port={gcs}", "--dashboard-host=127.0.0.1",
                    f"--dashboard-port={dashboard}", "--include-dashboard=true", "--disable-usage-stats"],
                   env=env, check=True, capture_output=True, timeout=180)
    try:
        config = write_config(tmp_path, "rayjob", epochs=2)
        submit = subprocess.run(
            [ray, "job", "submit", "--address", f"http://127.0.0.1:{dashboard}", "--working-dir", str(REPO),
             "--", "strata", "train", str(config), "--workers", "2"],
            env=env, capture_output=True, text=True, timeout=900)
        assert submit.returncode == 0, submit.stdout[-3000:] + submit.stderr[-3000:]
        assert "succeeded" in submit.stdout
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)
    run = strata_home / "runs" / "rayjob-seed3"
    assert [r["epoch"] for r in history(run)] == [1, 2]
    assert (run / "test_metrics.json").is_file() and (run / "curves.png").is_file()
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["workers"] == 2
