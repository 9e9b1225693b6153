"""The command line as a new user meets it: every mistake is refused through the real ``strata`` entry point,
before any heavy work, with exit status 2 and a message that names the problem and the fix; nothing is created
at a path the user did not ask for.

Each row runs in a scratch folder (the current folder) with a private ``STRATA_HOME``. ``{dataset}``,
``{checkpoint}``, ``{repo}`` and ``{port}`` in a row are a tiny SynthVTR folder, a checkpoint folder trained on
it (metadata only: every row fails before weights are read), a model repository holding version 1 of
``hgr_fast`` and a port nobody listens on.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from clients.cli import main

STRATA = Path(sys.executable).parent / "strata"


@dataclass(frozen=True)
class Mistake:
    name: str
    argv: str                       # formatted with the fixtures above, then split on spaces
    problem: tuple[str, ...]        # substrings of stderr that name what is wrong ...
    fix: tuple[str, ...] = ()       # ... and what to do instead
    server: bool = False            # a Triton server is recorded as running (on {port}, serving {repo})
    env: tuple[tuple[str, str], ...] = ()
    setup: str = ""                 # "empty_s": an empty ./s; "junk_out": a non-empty ./out


MISTAKES = [
    # 1. a missing or relative data path never becomes a generated dataset
    Mistake("missing data path", "train hgr_synthvtr --set data.path=/nonexistent/strata-data",
            ("dataset folder not found: /nonexistent/strata-data",), ("--set data.path=DIR", "strata synth --out")),
    Mistake("relative data path is the current folder", "train hgr_synthvtr --set data.path=nosuch",
            ("dataset folder not found: {cwd}/nosuch",), ("strata synth --out {cwd}/nosuch",)),
    Mistake("an existing folder that holds no dataset", "train hgr_synthvtr --set data.path=s",
            ("{cwd}/s holds no dataset",), ("strata synth", "HGR's release layout"), setup="empty_s"),
    Mistake("a split the data lacks", "train hgr_synthvtr --set data.path={dataset} --set data.test_splits=[nosuch]",
            ("has no split 'nosuch'",), ("it has trn, tst, tst_unseen, val",)),
    # 2. nonsense values, refused where they are read, with the valid range
    Mistake("negative epochs", "train hgr_synthvtr --set optim.epochs=-1", ("optim.epochs must be >= 1, got -1",)),
    Mistake("zero learning rate", "train hgr_synthvtr --set optim.lr=0", ("optim.lr must be > 0, got 0.0",)),
    Mistake("zero batch", "train hgr_synthvtr --set optim.batch_size=0", ("optim.batch_size must be >= 1, got 0",)),
    Mistake("words for a number", "train hgr_synthvtr --set optim.epochs=ten", ("optim.epochs", "expected an integer")),
    Mistake("misspelt key", "train hgr_synthvtr --set optim.lrr=0.1", ("unknown key(s) lrr",), ("known keys:",)),
    Mistake("--set without =", "train hgr_synthvtr --set epochs", ("argument --set", "expected KEY=VALUE"),
            ("optim.epochs=5",)),
    Mistake("negative workers", "train hgr_synthvtr --workers -1", ("argument --workers", "must be an integer >= 0")),
    Mistake("unknown config", "train no_such_config", ("train config not found",), ("hgr_synthvtr",)),
    Mistake("unknown model", "train hgr_synthvtr --set data.path={dataset} --set model=nosuch", ("nosuch",)),
    Mistake("too few videos", "synth --out out --videos 3", ("videos must be at least 4", "got 3"),
            ("trn, val, tst, tst_unseen",)),
    Mistake("zero videos", "synth --out out --videos 0", ("argument --videos", "must be an integer >= 1, got 0")),
    Mistake("four events", "synth --out out --events 2 4", ("events_per_video must satisfy 1 <= min <= max <= 3",)),
    Mistake("split fractions leaving no training videos", "synth --out out --split-fractions 0.5 0.5 0",
            ("split fractions must be >= 0 and leave videos for training, got (0.5, 0.5, 0.0)",)),
    Mistake("rerank bench trained on a missing folder", "bench rerank --data . --trained-on /nonexistent/strata-trn",
            ("--trained-on /nonexistent/strata-trn: no such folder",)),
    Mistake("non-empty synth folder", "synth --out out --videos 8", ("out is not empty", "no SynthVTR dataset"),
            ("choose an empty or new folder",), setup="junk_out"),
    Mistake("parse batch of zero", "parse --file x.txt --batch-size 0", ("argument --batch-size", ">= 1, got 0")),
    Mistake("parse with nothing", "parse", ("give exactly one of CAPTION, --file or --eval-labelled",)),
    Mistake("evaluate a split the data lacks", "evaluate {checkpoint} --split nosuch", ("has no split 'nosuch'",),
            ("it has trn, tst, tst_unseen, val",)),
    Mistake("evaluate a folder that is no checkpoint", "evaluate nowhere", ("nowhere is not a Strata checkpoint",),
            ("runs/<run>/best",)),
    Mistake("evaluate version 0", "evaluate {checkpoint} --version 0", ("argument --version", ">= 1, got 0")),
    Mistake("evaluate an export that is not there", "evaluate {checkpoint} --backend onnx --repo emptyrepo",
            ("was not exported from",), ("strata export",)),
    Mistake("export nothing", "export", ("give either a CHECKPOINT or --random-init",)),
    Mistake("export no checkpoint", "export nowhere", ("nowhere is not a Strata checkpoint",), ("runs/<run>/best",)),
    Mistake("export batch of zero", "export --random-init --model hgr --preset fast --max-batch-size 0",
            ("argument --max-batch-size", ">= 1, got 0")),
    Mistake("export's old flag", "export --random-init --override x=1", ("unrecognized arguments: --override",)),
    Mistake("results without runs", "results --runs nowhere", ("nowhere is not a folder",), ("strata train",)),
    # 3. commands find what other commands started
    Mistake("no Triton server at --url", "evaluate {checkpoint} --backend triton --url 127.0.0.1:{port}",
            ("no Triton server answers at 127.0.0.1:{port}",), ("--url", "strata triton start")),
    Mistake("evaluate goes to the recorded server", "evaluate {checkpoint} --backend triton",
            ("no Triton server answers at 127.0.0.1:{port}",), ("--url",), server=True),
    Mistake("swap a version never exported", "swap hgr_fast --version 2",
            ("version 2 of hgr_fast is not in the repository", "holds version(s) 1"), ("strata export",),
            server=True),
    Mistake("swap with no service running", "swap hgr_fast --version 1 --repo {repo}", ("Milvus",),
            ("is the service running? start it with strata up",)),
    Mistake("swap with nothing to do", "swap hgr_fast", ("give --version N to activate, --retire M to drop",),
            server=True),
    Mistake("port out of range", "triton start --grpc-port 70000", ("argument --grpc-port", "0..65535, got 70000")),
    Mistake("start on an empty repository", "triton start --repo emptyrepo", ("holds no models",), ("strata export",)),
    Mistake("a bad port in the settings", "triton start", ("triton_grpc_port must be a port in 0..65535",
                                                           "STRATA_TRITON_GRPC_PORT"),
            env=(("STRATA_TRITON_GRPC_PORT", "70000"),)),
    Mistake("status takes no --repo", "triton status --repo x", ("unrecognized arguments: --repo",)),
    # 5. one set of conventions
    Mistake("bench without a name", "bench", ("no benchmark name",), ("parse, zoo, towers", "strata bench parse")),
    Mistake("bench unknown", "bench nosuch", ("unknown benchmark 'nosuch'",), ("parse, zoo, towers",)),
    Mistake("bench nonsense value", "bench parse --repeats 0", ("argument --repeats", ">= 1, got 0")),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny SynthVTR folder, a checkpoint's metadata trained on it, and a repository with hgr_fast version 1."""
    from common.config import to_dict
    from training.engine.config import load_train_config

    root = tmp_path_factory.mktemp("world")
    dataset = root / "synth"
    assert main(["synth", "--out", str(dataset), "--videos", "8", "--captions-per-video", "2", "--no-progress"]) == 0
    checkpoint = root / "run" / "best"
    checkpoint.mkdir(parents=True)
    config = to_dict(load_train_config("hgr_synthvtr", [f"data.path={dataset}"]))
    (checkpoint / "config.json").write_text(json.dumps({"name": "hgr", "train_config": config}))
    (checkpoint / "model.pt").write_bytes(b"not weights: every row fails before they are read")
    repo = root / "repository"
    for part in ("text", "video", "scorer"):
        (repo / f"hgr_fast_{part}" / "1").mkdir(parents=True)
    return {"dataset": dataset, "checkpoint": checkpoint, "repo": repo}


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A scratch current folder and a private, empty STRATA_HOME."""
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.setenv("STRATA_HOME", str(home))
    for name in list(os.environ):
        if name.startswith("STRATA_") and name != "STRATA_HOME":
            monkeypatch.delenv(name)
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("COLUMNS", "400")  # help lines unwrapped: long scratch paths stay whole
    return home, cwd


@pytest.fixture(scope="module")
def stand_in_server():
    """A sleeping process whose command line names tritonserver: a recorded server that is 'alive' (it serves
    nothing, so every call to it is refused, as a dead port would be). No row stops it; the fixture does."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(900)", "tritonserver"])
    yield process.pid
    process.kill()
    process.wait()


def record_server(home: Path, repo: Path, port: int, pid: int) -> None:
    """What `strata triton start` records."""
    folder = home / "triton"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "server.json").write_text(json.dumps({
        "pid": pid, "repo": str(repo), "http_port": free_port(), "grpc_port": port,
        "metrics_port": free_port(), "address": "127.0.0.1", "models": [], "log": str(folder / "server.log")}))


def run_in_process(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exit_info:  # argparse
        code = exit_info.code
    out, err = capsys.readouterr()
    return code, out, err


def tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.name for m in MISTAKES])
def test_a_mistake_is_refused_with_the_problem_and_the_fix(mistake, world, scratch, capsys, monkeypatch,
                                                           stand_in_server):
    home, cwd = scratch
    port = free_port()
    names = {**world, "port": port, "cwd": cwd}
    for key, value in mistake.env:
        monkeypatch.setenv(key, value)
    if mistake.setup == "empty_s":
        (cwd / "s").mkdir()
    if mistake.setup == "junk_out":
        (cwd / "out").mkdir()
        (cwd / "out" / "notes.txt").write_text("mine")
    (cwd / "emptyrepo").mkdir()
    if mistake.server:
        record_server(home, world["repo"], port, stand_in_server)
    before_home, before_cwd = tree(home), tree(cwd)

    code, out, err = run_in_process(mistake.argv.format(**names).split(" "), capsys)

    assert code == 2, (out, err)
    assert "Traceback" not in err
    for text in mistake.problem + mistake.fix:
        assert text.format(**names) in err, err
    # Refused before any work: nothing new in the current folder, and no data, cache or run in the home.
    assert tree(cwd) == before_cwd
    created = {p for p in tree(home) - before_home if p.split("/")[0] in ("data", "cache", "runs")}
    assert not created, created


def test_an_interrupted_synth_folder_is_finished_by_the_rerun(scratch, capsys):
    _, cwd = scratch
    (cwd / "out").mkdir()
    (cwd / "out" / "frame_features.hdf5").write_bytes(b"half written")
    from training.synth.generator import FRAME_FEATURES

    (cwd / "out" / "frame_features.hdf5").rename(cwd / "out" / FRAME_FEATURES)
    code, out, err = run_in_process(["synth", "--out", "out", "--videos", "8", "--no-progress"], capsys)
    assert code == 0, err
    assert "SynthVTR" in out and (cwd / "out" / "synth_config.json").is_file()


# -- the same through the installed `strata` script ------------------------------------------------------------
SUBPROCESS_ROWS = [
    (["--version"], 0, "strata 0.1.0"),
    (["synth", "--out", "out", "--videos", "3"], 2, "videos must be at least 4"),
    (["bench"], 2, "no benchmark name; choose one of parse, zoo, towers"),
    (["train", "hgr_synthvtr", "--set", "data.path=/nonexistent/strata-data"], 2,
     "dataset folder not found: /nonexistent/strata-data"),
]


@pytest.mark.parametrize("argv, code, text", SUBPROCESS_ROWS, ids=[" ".join(r[0]) for r in SUBPROCESS_ROWS])
def test_the_installed_command(argv, code, text, scratch):
    home, cwd = scratch
    result = subprocess.run([str(STRATA), *argv], capture_output=True, text=True, cwd=cwd, timeout=300,
                            env={**os.environ, "STRATA_HOME": str(home)})
    assert result.returncode == code, result.stderr
    assert text in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert not (home / "data").exists() and not (cwd / "out").exists()


# -- help: defaults, examples, no markup ---------------------------------------------------------------------------
def _registered(parser=None, prefix=()) -> list[list[str]]:
    """Every command and sub-command the ``strata`` parser registers (so a new one cannot skip these checks)."""
    import argparse

    from clients.cli import build_parser

    parser = parser or build_parser()
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append([*prefix, name])
                found.extend(_registered(sub, (*prefix, name)))
    return found


COMMANDS = _registered() + [["bench", "parse"], ["bench", "zoo"], ["bench", "towers"]]   # bench NAME parses its own
NO_DEFAULTS = (["triton"], ["triton", "stop"], ["triton", "status"], ["swap"], ["synth-check"],
               ["results"], ["bench"], ["down"], ["info"], ["backup"], ["restore"])


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_shows_its_defaults_and_an_example(command, scratch, capsys):
    code, out, _ = run_in_process([*command, "--help"], capsys)
    assert code == 0
    assert "examples:\n  strata " + command[0] in out
    assert "``" not in out and ":func:" not in out
    if command not in NO_DEFAULTS:
        assert "(default:" in out


@pytest.mark.parametrize("command, shown", [
    (["synth"], ["--videos VIDEOS", "(default: 2000)", "(default: 0)", "(default: 5)"]),
    (["train"], ["the config's workers, 0"]),
    (["triton", "start"], ["(default: 8000; setting triton_http_port)", "(default: 8001; setting triton_grpc_port)",
                           "(default: 8002; setting triton_metrics_port)", "home/model_repository"]),
    (["demo"], ["(default: 50051; setting gateway_port)"]),
    (["evaluate"], ["(default: 127.0.0.1:8001; setting triton_grpc_port)"]),
    (["export"], ["home/model_repository; setting model_repository"]),
    (["parse"], ["captions per spaCy batch"]),
])
def test_help_shows_the_effective_defaults(command, shown, scratch, capsys):
    code, out, _ = run_in_process([*command, "--help"], capsys)
    assert code == 0
    flat = " ".join(out.split())
    for text in shown:
        assert text in flat, text


def test_help_shows_the_settings_in_force(scratch, capsys, monkeypatch):
    home, _ = scratch
    (home).mkdir(exist_ok=True)
    (home / "settings.yaml").write_text("triton_grpc_port: 18001\nmodel_repository: repos/main\n")
    code, out, _ = run_in_process(["triton", "start", "--help"], capsys)
    flat = " ".join(out.split())
    assert code == 0 and "(default: 18001;" in flat and str(home / "repos" / "main") in flat
