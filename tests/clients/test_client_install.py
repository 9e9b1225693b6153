"""The client install (``pip install strata``, through deploy/install.sh) in a fresh virtual environment: it queries
the running gateway from a folder outside the checkout, loads Strata from its own environment, and has no PyTorch,
Ray or spaCy to import; a command it cannot run names the install that can."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "ray", "spacy", "onnxruntime", "tritonclient", "pymilvus")


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory):
    venv = tmp_path_factory.mktemp("client") / "venv"
    subprocess.run([str(ROOT / "deploy" / "install.sh"), "client", str(venv)], check=True, capture_output=True,
                   text=True, timeout=600)
    return venv


def run_in(venv: Path, cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run([str(venv / "bin" / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 or not check, f"{' '.join(args)} failed:\n{done.stderr}"
    return done


def test_the_client_install_has_none_of_the_heavy_packages(client_venv, tmp_path):
    probe = ("import importlib.util, json, clients.client, common\n"
             f"print(json.dumps({{'missing': [m for m in {HEAVY!r} if importlib.util.find_spec(m) is None],"
             " 'client': clients.client.__file__}))")
    found = json.loads(run_in(client_venv, tmp_path, "python", "-c", probe).stdout)
    assert found["missing"] == list(HEAVY)
    assert Path(found["client"]).is_relative_to(client_venv)   # from the environment, not the checkout


def test_the_client_install_queries_the_running_gateway_as_the_checkout_does(client_venv, stack, client, tmp_path):
    from common.connect import gateway_url

    query = "a man is slicing bread in a kitchen"
    result = run_in(client_venv, tmp_path, "strata", "search", query, "--top-k", "5", "--url", gateway_url(stack[0]),
                    "--json")   # the record: a restart may move the port
    hits = json.loads(result.stdout)["hits"]
    expected = client.search_videos(query, top_k=5).hits
    assert [h["id"] for h in hits] == [h.id for h in expected]
    assert [h["score"] for h in hits] == pytest.approx([h.score for h in expected], abs=1e-6)


def test_a_command_this_install_cannot_run_names_the_install_that_can(client_venv, tmp_path):
    result = run_in(client_venv, tmp_path, "strata", "export", "--model", "hgr", "--preset", "fast", "--random-init",
                    check=False)
    assert result.returncode == 2
    assert "'torch'" in result.stderr and "pip install 'strata[training]'" in result.stderr
    result = run_in(client_venv, tmp_path, "strata", "parse", "a dog runs", check=False)
    assert result.returncode == 2 and "pip install 'strata[serving]'" in result.stderr
