"""The `strata` dispatcher: every package's commands are there, PyTorch loads only when a torch command runs."""
from __future__ import annotations

import subprocess
import sys

import pytest

from clients.cli import build_parser, main


def test_every_subcommand_is_registered():
    choices = build_parser()._subparsers._group_actions[0].choices
    assert {"demo", "parse", "synth", "synth-check", "train", "evaluate", "results", "export", "triton",
            "bench"} <= set(choices)


def test_building_the_cli_does_not_import_torch():
    code = "import sys; from clients.cli import build_parser; build_parser(); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_flags_are_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "hgr_synthvtr", "--no-such-flag"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --no-such-flag" in capsys.readouterr().err


def test_a_strata_error_is_one_line_with_status_2(capsys):
    assert main(["train", "no_such_config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("strata: error: train config not found") and "Traceback" not in err


def test_demo_parse_only_summarises_the_real_captions(capsys):
    assert main(["demo", "--parse-only"]) == 0
    out = capsys.readouterr().out
    assert "parsed 1000 real MSR-VTT captions" in out
    assert "ARG0" in out and "richest graph" in out


def test_demo_prints_what_its_model_reached_in_both_directions():
    from deploy.demo import reached

    fused = {"t2v_r1": 60.0, "t2v_r5": 91.25, "v2t_r1": 70.0, "v2t_r5": 95.0, "rsum": 510.0}
    lines = reached({"best_epoch": 5, "epochs_trained": 6,
                     "splits": {"tst": {"videos": 60, "captions": 240, "fused": fused}}})
    assert lines[0].startswith("the demo model (epoch 5 of 6")
    assert lines[1] == ("  reached on tst (60 videos, 240 captions): text->video R@5 91.2, video->text R@5 95.0 "
                        "(R@1 60.0 / 70.0, rsum 510.0)")


def test_demo_trains_afresh_only_when_its_run_holds_another_config(monkeypatch, tmp_path):
    from dataclasses import replace

    from deploy.demo import DEMO_CONFIG, config_changed
    from training.engine.config import load_train_config, run_dir
    from training.engine.report import write_config

    monkeypatch.setenv("STRATA_HOME", str(tmp_path))
    config = load_train_config(DEMO_CONFIG)
    assert not config_changed(config)                      # no run yet: train (and resume later)
    write_config(run_dir(config), config)
    assert not config_changed(config)                      # its own run: resume it
    write_config(run_dir(config), replace(config, optim=replace(config.optim, epochs=4)))
    assert config_changed(config)                          # an earlier demo's run: train afresh
