"""Triton (tritonclient gRPC, with and without system shared memory) gives ONNX Runtime's outputs."""
from __future__ import annotations

import numpy as np
import pytest

from common.errors import DataError
from export.batches import random_inputs
from export.runner import OnnxRunner
from serving.triton.client import TritonRequestError, TritonTowers
from tests.serving.triton.conftest import BASE

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("shared_memory", [False, True], ids=["grpc", "shm"])
def test_towers_and_scorer_equal_onnx_runtime(repo_v1, start_server, shared_memory):
    _, state = start_server(repo_v1)
    ort = OnnxRunner(repo_v1, BASE)
    with TritonTowers.from_repository(state.grpc_url, repo_v1, BASE, shared_memory=shared_memory) as triton:
        assert triton.levels == ort.levels == ("global",)
        for batch, words, frames in ((1, 3, 2), (5, 11, 7), (32, 30, 20), (70, 5, 3)):  # 70 > max_batch_size 64
            text = random_inputs(ort.layout.text, {"batch": batch, "words": words}, seed=batch)
            video = random_inputs(ort.layout.video, {"batch": batch + 1, "frames": frames}, seed=batch + 1)
            got_t, want_t = triton.encode_text(text), ort.encode_text(text)
            got_v, want_v = triton.encode_video(video, version=1), ort.encode_video(video)
            for got, want in ((got_t, want_t), (got_v, want_v), (triton.score(got_t, got_v), ort.score(want_t, want_v))):
                assert sorted(got) == sorted(want)
                for name in want:
                    assert got[name].shape == want[name].shape
                    np.testing.assert_allclose(got[name], want[name], atol=1e-5, rtol=0, err_msg=name)
        only = triton.encode_text(text, outputs=["text_index"])  # the last, split batch
        assert list(only) == ["text_index"]
        np.testing.assert_allclose(only["text_index"], want_t["text_index"], atol=1e-5, rtol=0)


def test_errors_name_the_model_and_input(repo_v1, start_server):
    _, state = start_server(repo_v1, ["vsepp_fast_text"])
    ort = OnnxRunner(repo_v1, BASE, parts=("text",))
    with TritonTowers(state.grpc_url, BASE, ort.layout) as triton:
        text = random_inputs(ort.layout.text, {"batch": 2, "words": 4})
        with pytest.raises(DataError, match="vsepp_fast_text: input 'word_mask' must be float32"):
            triton.encode_text({**text, "word_mask": text["word_mask"].astype(np.float64)})
        with pytest.raises(TritonRequestError, match="vsepp_fast_text version 7"):
            triton.encode_text(text, version=7)
