"""The first stage (serving.gateway.first_stage): refusals, and for HGR the per-level hybrid search agreeing with
exhaustive scoring better than the index view alone at equal depth, on a Milvus Lite server and a generated corpus
of 3,000 videos (random inputs through an exported HGR with random weights: a check of the mechanism, which the
trained models' figures in the README measure at 10,000 videos)."""
from __future__ import annotations

import numpy as np
import pytest

from serving.gateway.errors import FailedPrecondition
from serving.gateway.first_stage import Choice, FirstStage, pooled, refusal

CORPUS, QUERIES, DEPTH = 3000, 60, 30


def test_hanet_without_global_alignment_is_refused():
    from training.models.hanet.config import HANetConfig

    layout = HANetConfig(global_alignment=False).layout()
    manifest = {"config": {"global_alignment": False}}
    assert "never trained" in refusal("hanet", manifest, layout, "index")
    with pytest.raises(FailedPrecondition, match="global_alignment=false"):
        FirstStage(None, manifest, layout, {"videos": "v", "captions": "c"})


def test_levels_are_refused_where_the_model_has_none():
    from training.models.vsepp.config import VSEPPConfig

    assert "use 'index'" in refusal("vsepp", {"config": {}}, VSEPPConfig().layout(), "levels")


def test_pooled_is_a_unit_mean_of_the_valid_rows():
    record = {"a": np.array([[3.0, 0.0], [1.0, 0.0]], np.float32), "b": np.zeros((0, 2), np.float32)}
    assert np.allclose(pooled(record, ["a"]), [1.0, 0.0])
    assert np.allclose(pooled(record, ["b"]), [0.0, 0.0])


@pytest.fixture(scope="module")
def hgr_corpus(tmp_path_factory):
    """(runner, video records, query text records) of a random-weight HGR over random inputs."""
    from clients.cli import main
    from export.batches import random_inputs
    from serving.gateway.items import axis_lengths, split_items
    from serving.onnx_runner import OnnxRunner

    repo = tmp_path_factory.mktemp("repo")
    assert main(["export", "--model", "hgr", "--preset", "fast", "--random-init", "--seed", "5",
                 "--repo", str(repo)]) == 0
    runner = OnnxRunner(repo, "hgr_fast", threads=1)
    videos = []
    for seed in range(CORPUS // 500):
        inputs = random_inputs(runner.layout.video, {"batch": 500, "frames": 12}, seed=seed)
        videos += split_items(runner.layout.video.outputs, runner.encode_video(inputs), axis_lengths(inputs))
    inputs = random_inputs(runner.layout.text, {"batch": QUERIES, "words": 12, "verbs": 3, "nouns": 4}, seed=99)
    texts = split_items(runner.layout.text.outputs, runner.encode_text(inputs), axis_lengths(inputs))
    return runner, videos, texts


def test_levels_beat_the_index_view_for_hgr_at_equal_depth(hgr_corpus, tmp_path):
    from serving.gateway.rerank_bench import Scorer, _top, agreement, exhaustive, two_stage
    from serving.index.milvus_index import MilvusIndex
    from serving.index.milvus_server import MilvusLiteServer, uri
    from serving.store import open_store

    runner, videos, texts = hgr_corpus
    ids = [f"v{i:05d}" for i in range(len(videos))]
    scorer = Scorer(runner)
    full = exhaustive(scorer, texts, videos, "t2v")
    truth = [_top(ids, row) for row in full]
    server = MilvusLiteServer(tmp_path / "runs")
    state = server.start(tmp_path / "runs" / "fs.db", port=0)
    try:
        index = MilvusIndex(uri(state.address, state.port()), timeout_s=60)
        collections = {"videos": "hgr_videos", "captions": "hgr_captions"}
        index.ensure_collection("hgr_videos", len(videos[0]["video_index"]), "videos")
        pairs = list(zip(ids, videos))
        index.upsert("hgr_videos", [{"id": i, "vector": r["video_index"]} for i, r in pairs])
        found = {}
        with open_store(str(tmp_path / "store")) as store:
            store.put(pairs)
            for strategy in ("index", "levels"):
                stage = FirstStage(index, runner.manifest, runner.layout, collections,
                                   {"videos": Choice(strategy, DEPTH), "captions": Choice("index", DEPTH)})
                stage.ensure()
                stage.write("videos", pairs)
                found[strategy] = np.mean([agreement(two_stage(stage, "videos", q, DEPTH, store, scorer), t)
                                           for q, t in zip(texts, truth)])
        index.close()
    finally:
        server.stop()
    assert found["levels"] > found["index"] + 0.05, found
