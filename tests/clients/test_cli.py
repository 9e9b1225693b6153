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
