"""Versions side by side: swap in version 2 and retire version 1 under a concurrent load of pinned requests."""
from __future__ import annotations

import shutil
import threading
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from common.errors import ConfigError
from export.batches import random_inputs
from export.runner import OnnxRunner
from serving.triton.client import TritonTowers
from serving.triton.swap import served_versions, swap
from tests.serving.triton.conftest import BASE, export_vsepp

pytestmark = pytest.mark.slow

CLIENTS = 2
MIN_REQUESTS = 20        # per phase, so each phase really overlaps the load
MAX_PHASE_S = 60.0


class PinnedLoad:
    """Client threads sending requests pinned to one of ``self.pins``; every response is kept for checking."""

    def __init__(self, url: str, layout, inputs: dict[str, dict]):
        self.url, self.layout, self.inputs = url, layout, inputs
        self.pins: tuple[int, ...] = (1,)
        self.responses: list[tuple[int, str, dict]] = []
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(CLIENTS)]

    def _run(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        with TritonTowers(self.url, BASE, self.layout, timeout_s=30) as towers:
            while not self.stop.is_set():
                version = int(rng.choice(self.pins))
                part = "text" if rng.random() < 0.5 else "video"
                try:
                    out = towers.infer(part, self.inputs[part], version=version)
                except Exception as err:  # noqa: BLE001 - every failure is counted and reported
                    with self.lock:
                        self.failures.append(f"{part} v{version}: {err}")
                    continue
                with self.lock:
                    self.responses.append((version, part, out))

    def phase(self, pins: tuple[int, ...], action) -> int:
        """Pin requests to ``pins``, run ``action`` while they flow, keep going until MIN_REQUESTS more came."""
        self.pins = pins
        start = len(self.responses)
        result = action()
        deadline = time.monotonic() + MAX_PHASE_S
        while len(self.responses) - start < MIN_REQUESTS and time.monotonic() < deadline:
            time.sleep(0.05)
        return result


def test_swap_and_retire_under_pinned_load(repo_v1, start_server, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(repo_v1, repo)
    _, state = start_server(repo)
    client = grpcclient.InferenceServerClient(state.grpc_url)
    assert served_versions(client)["vsepp_fast_text"] == [1]
    export_vsepp(repo, 2, seed=1)  # a new version with other weights, written while the server runs

    reference = {v: OnnxRunner(repo, BASE, v) for v in (1, 2)}
    layout = reference[1].layout
    inputs = {"text": random_inputs(layout.text, {"batch": 4, "words": 9}, seed=3),
              "video": random_inputs(layout.video, {"batch": 4, "frames": 12}, seed=4)}
    expected = {(v, part): getattr(reference[v], f"encode_{part}")(inputs[part]) for v in (1, 2) for part in inputs}
    assert not np.allclose(expected[(1, "text")]["text_index"], expected[(2, "text")]["text_index"], atol=1e-3)

    load = PinnedLoad(state.grpc_url, layout, inputs)
    for thread in load.threads:
        thread.start()
    try:
        load.phase((1,), lambda: None)                                            # before: version 1 only
        added = load.phase((1,), lambda: swap(state.grpc_url, repo, BASE, 2))           # swap in 2 while 1 is used
        load.phase((1, 2), lambda: None)                                          # both served, both used
        retired = load.phase((2,), lambda: swap(state.grpc_url, repo, BASE, retire=1))  # callers moved to 2; drop 1
    finally:
        load.stop.set()
        for thread in load.threads:
            thread.join(timeout=60)

    assert added == {f"{BASE}_{p}": [1, 2] for p in ("text", "video", "scorer")}
    assert retired == {f"{BASE}_{p}": [2] for p in ("text", "video", "scorer")}
    assert load.failures == []
    counts = {v: sum(1 for r in load.responses if r[0] == v) for v in (1, 2)}
    assert counts[1] >= 2 * MIN_REQUESTS and counts[2] >= 2 * MIN_REQUESTS, counts
    for version, part, out in load.responses:
        for name, want in expected[(version, part)].items():
            np.testing.assert_allclose(out[name], want, atol=1e-5, rtol=0, err_msg=f"{part} v{version} {name}")
    assert served_versions(client)["vsepp_fast_video"] == [2]
    with pytest.raises(ConfigError, match="version 1 is not served"):
        swap(state.grpc_url, repo, BASE, retire=1)


def _append(path, text: str) -> None:
    path.write_text(path.read_text() + text)


EDITS = [   # (name, file of the video model's version 2, edit); each is undone after
    ("weights", "model.onnx", lambda p: p.write_bytes(p.read_bytes() + b"\0")),
    ("python adapter", "model.py", lambda p: _append(p, "\nimport os; os.system('id')\n")),
    ("added module", "numpy.py", lambda p: p.write_text("raise SystemExit\n")),
    ("removed file", "model.onnx", lambda p: p.unlink()),
    ("manifest", "manifest.json", lambda p: _append(p, " ")),
]


def test_every_edited_file_of_a_version_is_refused_at_load_naming_it(repo_v1, start_server, tmp_path):
    """Version 2 is a copy of version 1; each kind of edit to one of its files is refused before Triton loads
    anything, with the file named; the manifest is caught by the hash the active-version record pins."""
    from common.repository import TamperedVersion, manifest_sha256, version_dir

    repo = tmp_path / "repo"
    shutil.copytree(repo_v1, repo)
    _, state = start_server(repo)
    for part in ("text", "video", "scorer"):
        shutil.copytree(version_dir(repo, BASE, part, 1), version_dir(repo, BASE, part, 2))
    assert (version_dir(repo, BASE, "video", 2) / "model.py").is_file()   # the python backend runs this code
    client = grpcclient.InferenceServerClient(state.grpc_url)
    pin = manifest_sha256(repo, BASE, 2)
    for name, file, edit in EDITS:
        path = version_dir(repo, BASE, "video", 2) / file
        kept = path.read_bytes() if path.exists() else None
        edit(path)
        with pytest.raises(TamperedVersion) as refused:
            swap(state.grpc_url, repo, BASE, 2, pinned_manifest=pin)
        assert str(path) in str(refused.value), name
        path.unlink(missing_ok=True)
        if kept is not None:
            path.write_bytes(kept)
        assert served_versions(client)["vsepp_fast_text"] == [1], name   # nothing was loaded
    assert swap(state.grpc_url, repo, BASE, 2, pinned_manifest=pin)[f"{BASE}_video"] == [1, 2]
