"""Training end to end on a tiny SynthVTR set: the report folder, evaluation, resume after a kill, Ray jobs."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import yaml

from clients.cli import main as strata
from tests.conftest import TINY_SYNTH
from tests.deploy.ray_jobs import run_manifest_job
from tests.ports import PortInUse, start_on_free_ports

# In-process training sets torch's process-wide thread count (threads_per_worker); restored after the module.
pytestmark = pytest.mark.usefixtures("one_thread")

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
                                                  "replace_scene", "incomplete_event", "switch_roles_many",
                                                  "switch_roles_heldout"}
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


def test_role_switched_twins_join_the_batches_from_role_switch_from_epoch(strata_home, tmp_path):
    """data.role_switch_from_epoch=2: epoch 1 trains on the ranking loss alone, epoch 2 on the twins' hinge too,
    and the best checkpoint is one that trained on them."""
    config = write_config(tmp_path, "later-twins", epochs=2)
    assert strata(["train", str(config), "--set", "data.role_switch_negatives=true",
                   "--set", "data.role_switch_from_epoch=2", "--set", "data.test_splits=[tst]"]) == 0
    run = strata_home / "runs" / "later-twins-seed3"
    assert "(no twins before epoch 2, no best yet)" in (run / "train.log").read_text()
    first, second = (row["loss_parts"] for row in history(run))
    assert "switch_rank" not in first and second["switch_rank"] > 0
    assert json.loads((run / "best" / "state.json").read_text())["best_epoch"] == 2


# Trains like `strata train CONFIG`, and SIGKILLs itself as soon as epoch 1 is logged (its checkpoint is written
# before): the kill always lands between epochs 1 and 2, however fast the machine.
KILLED_AFTER_EPOCH_1 = """
import os, signal, sys
from training.engine.session import RunLog, train_from_config
log = RunLog.__call__
def log_then_die(self, message):
    log(self, message)
    if message.startswith("epoch 1:"):
        os.kill(os.getpid(), signal.SIGKILL)
RunLog.__call__ = log_then_die
train_from_config(sys.argv[1])
"""


def test_resume_after_kill_ends_at_the_uninterrupted_metrics(strata_home, tmp_path):
    env = {**os.environ, "STRATA_HOME": str(strata_home), "PATH": f"{BIN}:{os.environ['PATH']}"}
    straight = write_config(tmp_path, "straight")
    subprocess.run([BIN / "strata", "train", str(straight)], env=env, check=True, capture_output=True)

    killed = write_config(tmp_path, "killed")
    run = strata_home / "runs" / "killed-seed3"
    dead = subprocess.run([sys.executable, "-c", KILLED_AFTER_EPOCH_1, str(killed)], env=env, cwd=REPO,
                          capture_output=True, text=True)
    assert dead.returncode == -signal.SIGKILL, dead.stderr[-3000:]
    assert json.loads((run / "last" / "state.json").read_text())["epoch"] == 1

    result = subprocess.run([BIN / "strata", "train", str(killed)], env=env, check=True, capture_output=True, text=True)
    assert "resuming killed-seed3 after epoch 1" in result.stdout
    a, b = history(strata_home / "runs" / "straight-seed3"), history(run)
    # Same single-threaded kernels on the same inputs: the metrics match; losses are summed floats, compared
    # with a tolerance rather than rounded (two values a hair apart may round apart).
    assert [r["val"] for r in a] == [r["val"] for r in b]
    assert [r["train_loss"] for r in b] == pytest.approx([r["train_loss"] for r in a], rel=1e-6)
    test_a = json.loads((strata_home / "runs" / "straight-seed3" / "test_metrics.json").read_text())
    test_b = json.loads((run / "test_metrics.json").read_text())
    assert test_a["splits"]["tst"]["fused"] == test_b["splits"]["tst"]["fused"]


def test_raising_epochs_extends_a_finished_run_to_the_uninterrupted_metrics(strata_home, tmp_path, capsys):
    """A finished 2-epoch run, rerun with optim.epochs=3, resumes to epoch 3 and ends where a straight 3-epoch run
    ends; the report records the extension. Lowering epochs, or extending an early-stopped run, is refused."""
    from training.engine.config import load_train_config
    from training.engine.session import extension_refusal

    straight = write_config(tmp_path, "straight")
    assert strata(["train", str(straight)]) == 0
    extended = write_config(tmp_path, "extended", epochs=2)
    assert strata(["train", str(extended)]) == 0
    run = strata_home / "runs" / "extended-seed3"
    assert len(history(run)) == 2
    assert strata(["train", str(extended), "--set", "optim.epochs=3"]) == 0
    a, b = history(strata_home / "runs" / "straight-seed3"), history(run)
    assert [r["val"] for r in a] == [r["val"] for r in b]
    report = json.loads((run / "test_metrics.json").read_text())
    assert report["extensions"] == [{"from_epoch": 2, "to_epoch": 3}] and report["epochs_trained"] == 3
    assert "extending extended-seed3 from epoch 2 to 3" in (run / "train.log").read_text()
    capsys.readouterr()
    assert strata(["train", str(extended), "--set", "optim.epochs=2"]) != 0
    assert "epochs can be raised, not lowered" in capsys.readouterr().err
    config = load_train_config(str(extended), ["optim.epochs=9", "optim.early_stop_patience=1"])
    assert "early stopping" in extension_refusal(config, 3, {"epoch": 3, "stopped_early": True})
    assert extension_refusal(config, 3, {"epoch": 3, "stopped_early": False}) is None


def test_hanet_with_auto_concept_heads_trains_and_diagnose_reports_every_section(strata_home, tmp_path, capsys):
    """Concept heads sized from the tiny set's vocabulary (auto) end to end, then `strata diagnose` on the
    checkpoint: level spread, concept precision, gradient norms per term and branch, role measurements, switch
    roles by level."""
    config = yaml.safe_load(write_config(tmp_path, "hanet").read_text())
    config.update(model="hanet", model_overrides=["local_actions=2", "local_entities=2"])
    config["optim"]["epochs"] = 1
    path = tmp_path / "hanet.yaml"
    path.write_text(yaml.safe_dump(config))
    assert strata(["train", str(path)]) == 0
    best = strata_home / "runs" / "hanet-seed3" / "best"
    saved = json.loads((best / "config.json").read_text())["config"]["concepts"]
    assert all(isinstance(saved[k], int) for k in ("num_verbs", "num_nouns"))  # auto resolved from the data
    # an explicit size in the run's model_overrides wins over the data's (the worker reads the overrides too)
    config["model_overrides"] = config["model_overrides"] + ["concepts.num_verbs=40"]
    config["run_name"] = "hanet-explicit"
    path.write_text(yaml.safe_dump(config))
    assert strata(["train", str(path)]) == 0
    explicit = json.loads((strata_home / "runs" / "hanet-explicit" / "best" / "config.json").read_text())
    assert explicit["config"]["concepts"]["num_verbs"] == 40
    out = tmp_path / "diagnosis.json"
    assert strata(["diagnose", str(best), "--videos", "8", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "level spread" in printed and "gradient norm" in printed and "role-switched twin" in printed
    d = json.loads(out.read_text())
    assert set(d["levels"]) >= {"fused", "global", "local_action", "concept_entity"}
    assert d["concepts"]["video verbs"]["heads"] == saved["num_verbs"]
    assert {"rank", "concept_rank", "bce_video", "bce_text"} <= set(d["gradients"])
    assert "text_encoder" in d["gradients"]["bce_text"] and "video_verb_classifier" not in d["gradients"]["bce_text"]
    assert 0 < d["switch_roles_twin_cosine"]["mean"] <= 1 and set(d["agent_probe"]) == {"text", "video"}
    assert "heads_without_concept" not in d["concepts"]["video verbs"]  # auto: one head per concept
    # switch roles by level: the fused column is the training report's selection on the same split and set
    report = json.loads((strata_home / "runs" / "hanet-seed3" / "test_metrics.json").read_text())["splits"][d["split"]]
    by_level = d["switch_roles_by_level"]["switch_roles"]
    assert by_level["fused"] == report["binary_selection"]["switch_roles"]
    assert set(by_level) == {"fused", *d["levels"]} and all(0 <= v <= 100 for v in by_level.values())
    assert "switch-roles selection, by the fused score and by each level alone" in printed
    # explicit sizes past the vocabulary: diagnose says how often the model's own top 5 lands on a head with no concept
    assert strata(["diagnose", str(strata_home / "runs" / "hanet-explicit" / "best"), "--videos", "8",
                   "--json", str(out)]) == 0
    verbs = json.loads(out.read_text())["concepts"]["video verbs"]
    assert verbs["heads"] == saved["num_verbs"] and verbs["heads_without_concept"] == 40 - saved["num_verbs"]
    assert 0 <= verbs["without_concept@5"] <= 100 and "more heads with no concept" in capsys.readouterr().out


# Ray turns token authentication on for a head when ~/.ray/auth_token exists (any local ray.init() writes one),
# and the test's job client would then be refused: a loopback test head says its mode, whatever the home holds.
RAY_TEST_AUTH = {"RAY_AUTH_MODE": "disabled"}


def _start_ray(env: dict, ports: tuple[int, ...]) -> tuple[int, ...]:
    """``ray start --head`` on (GCS, dashboard) ``ports``; PortInUse when one was taken meanwhile."""
    gcs, dashboard = ports
    started = subprocess.run([str(BIN / "ray"), "start", "--head", "--num-cpus=2", f"--port={gcs}",
                              "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
                              "--include-dashboard=true", "--disable-usage-stats"],
                             env={**env, **RAY_TEST_AUTH}, capture_output=True, text=True, timeout=180)
    if started.returncode != 0:
        said = started.stdout + started.stderr
        error = PortInUse if "in use" in said.lower() else RuntimeError
        raise error(f"ray start failed:\n{said[-3000:]}")
    return ports


@pytest.mark.slow
def test_the_training_rayjob_s_entrypoint_trains_with_two_workers_on_a_local_head(strata_home, tmp_path):
    if shutil.which("ray", path=str(BIN)) is None:
        pytest.fail("ray is not installed in this environment")
    env = {**os.environ, "STRATA_HOME": str(strata_home), "PATH": f"{BIN}:{os.environ['PATH']}",
           "RAY_ADDRESS": ""}
    ray = str(BIN / "ray")
    _, dashboard = start_on_free_ports(partial(_start_ray, env), 2)
    try:   # the entrypoint of deploy/k8s/ray-job-train.yaml, as KubeRay submits it
        config = write_config(tmp_path, "rayjob", epochs=2)
        status, logs = run_manifest_job(f"http://127.0.0.1:{dashboard}", "ray-job-train.yaml",
                                        {"TRAIN_CONFIG": str(config), "TRAIN_WORKERS": "2"})
        assert status == "SUCCEEDED", logs[-3000:]
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)
    run = strata_home / "runs" / "rayjob-seed3"
    assert [r["epoch"] for r in history(run)] == [1, 2]
    assert (run / "test_metrics.json").is_file() and (run / "curves.png").is_file()
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["workers"] == 2
