"""Every model of the zoo: exported with parity (fast preset), served by Triton, equal to ONNX Runtime."""
from __future__ import annotations

import numpy as np
import pytest

from export.batches import random_inputs
from export.exporter import ParityData, export_version, load_source
from export.runner import OnnxRunner
from serving.triton.client import TritonTowers
from serving.triton.server import TritonServer
from training.models.factory import list_models

pytestmark = pytest.mark.slow

MODELS = list_models()
# The fast presets size concept heads from the training captions ("auto"); a model built without data is given sizes.
CONCEPT_SIZES = {"hanet": ("concepts.num_verbs=12", "concepts.num_nouns=16"),
                 "mcsan": ("concepts.num_verbs=12", "concepts.num_nouns=16", "concepts.num_triplets=8")}
PARITY = ParityData(random_queries=32, random_lengths=(
    {"batch": 1, "words": 4, "verbs": 1, "nouns": 1, "frames": 3, "regions": 3},
    {"batch": 6, "words": 12, "verbs": 3, "nouns": 4, "frames": 9, "regions": 4},
))


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("zoo")
    manifests = {}
    for name in MODELS:
        model, source = load_source(None, name, "fast", seed=0, overrides=CONCEPT_SIZES.get(name, ()))
        manifests[name] = export_version(model, source, repo, 1, parity=PARITY, log=lambda *_: None)
    server = TritonServer(tmp_path_factory.mktemp("run"))
    state = server.start(repo, ports=None)
    yield repo, manifests, state
    server.stop()


@pytest.mark.parametrize("name", MODELS)
def test_model_exports_with_parity_and_triton_equals_onnx_runtime(zoo, name):
    repo, manifests, state = zoo
    parity = manifests[name]["parity"]
    assert all(f["max_abs"] <= 1e-4 for f in parity["outputs"].values()), parity["outputs"]
    assert {d: r["top_k_mismatches"] for d, r in parity["ranking"].items()} == {"text_to_video": 0, "video_to_text": 0}
    base = f"{name}_fast"
    ort = OnnxRunner(repo, base)
    sizes = {"batch": 3, "words": 10, "verbs": 2, "nouns": 3, "frames": 8, "regions": 4}
    text = random_inputs(ort.layout.text, sizes, seed=7, vocab_size=ort.manifest["config"]["text"]["vocab_size"])
    video = random_inputs(ort.layout.video, {**sizes, "batch": 5}, seed=8)
    with TritonTowers(state.grpc_url, base, ort.layout, version=1) as triton:
        got_t, got_v = triton.encode_text(text), triton.encode_video(video)
        want_t, want_v = ort.encode_text(text), ort.encode_video(video)
        for got, want in ((got_t, want_t), (got_v, want_v), (triton.score(got_t, got_v), ort.score(want_t, want_v))):
            for key in want:
                np.testing.assert_allclose(got[key], want[key], atol=1e-5, rtol=0, err_msg=f"{base} {key}")
    assert triton.levels == tuple(manifests[name]["levels"])
