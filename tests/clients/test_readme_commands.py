"""Every `strata` command line shown in the READMEs is accepted by the real parser as written: the flags exist,
the values are in range and the choices are real. Each ``a|b`` is tried in every form, ``[...]`` parts are
included, and placeholders (DIR, CHECKPOINT, N, ...) take a sample value."""
from __future__ import annotations

import itertools
import re
import shlex
from pathlib import Path

import pytest

from clients.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
READMES = ["README.md", "model_repository/README.md", "training/synth/README.md"]
PLACEHOLDERS = {"N": "2", "K": "3", "S": "0"}


def readme_commands() -> list[tuple[str, str]]:
    found = []
    for name in READMES:
        in_block, pending = False, ""
        for line in (ROOT / name).read_text().splitlines():
            if line.startswith("```"):
                in_block = not in_block
                continue
            if not in_block:
                continue
            line = pending + line.strip()
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            pending = ""
            line = re.split(r"\s+#\s", line)[0].strip()
            if " -- strata " in line:
                line = line.split(" -- ", 1)[1]
            if line.startswith("strata "):
                found.append((name, line))
    return found


def variants(line: str) -> list[list[str]]:
    words = shlex.split(line.replace("[", "").replace("]", ""))[1:]
    choices = [w.split("|") if "|" in w else [w] for w in words]
    return [[PLACEHOLDERS.get(w, w) for w in combo] for combo in itertools.product(*choices)]


COMMANDS = readme_commands()


def test_the_readmes_show_commands():
    assert len(COMMANDS) >= 20


@pytest.mark.parametrize("where, line", COMMANDS, ids=[line for _, line in COMMANDS])
def test_a_readme_command_parses_as_written(where, line):
    parser = build_parser()
    for argv in variants(line):
        try:
            args = parser.parse_args(argv)
        except SystemExit as exit_info:
            pytest.fail(f"{where}: `strata {' '.join(argv)}` is refused (exit {exit_info.code})")
        assert callable(args.func)
