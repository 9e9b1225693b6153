"""The gateway end to end: every call in both directions through the client library, scores equal to offline
ONNX Runtime scoring of the same version, bad requests refused with a status a user can act on, health and
reflection, and restarts of the gateway and of Milvus that keep counts and answers.

Tolerances: the tensor store keeps float16; against offline scoring with the stored tensors rounded to float16
the scores agree within ``ROUNDED_ATOL`` (Triton vs ONNX Runtime, and a float16 rounding that a 1e-6 difference
can tip by one step); against full float32 scoring within ``FLOAT32_ATOL``.
"""
from __future__ import annotations

import numpy as np
import pytest

from clients.client import StrataCallError, StrataClient
from tests.serving.gateway.corpus import BASE, VIDEOS, corpus_videos, sample_captions
from tests.serving.gateway.offline import Offline, rounded

pytestmark = pytest.mark.slow

ROUNDED_ATOL = 1e-3
FLOAT32_ATOL = 5e-3
QUERIES = ["a man is slicing bread in a kitchen", "people", "running fast", "a dog chases a ball on the grass"]


@pytest.fixture(scope="module")
def offline(stack):
    settings, state = stack
    reference = Offline(settings.repository, BASE, state.version)
    ids, frames = zip(*corpus_videos())
    return reference, list(ids), reference.videos(list(frames))


def levels_of(hit) -> dict[str, float]:
    return {level.level: level.score for level in hit.levels}


def test_text_to_video_equals_offline_scoring(client, offline):
    reference, ids, videos = offline
    texts = reference.texts(QUERIES)
    fused16, levels16 = reference.score(texts, rounded(videos))
    fused32, _ = reference.score(texts, videos)
    level_names = reference.runner.levels
    for q, query in enumerate(QUERIES):
        answer = client.search_videos(query, top_k=10, candidate_depth=VIDEOS)  # depth = corpus: exhaustive
        assert (answer.model.name, answer.candidates, len(answer.hits)) == (BASE, VIDEOS, 10)
        scores = [h.score for h in answer.hits]
        assert scores == sorted(scores, reverse=True)
        for hit in answer.hits:
            j = ids.index(hit.id)
            assert hit.score == pytest.approx(float(fused16[q, j]), abs=ROUNDED_ATOL)
            assert hit.score == pytest.approx(float(fused32[q, j]), abs=FLOAT32_ATOL)
            assert levels_of(hit) == pytest.approx({n: float(levels16[k, q, j]) for k, n in enumerate(level_names)},
                                                   abs=ROUNDED_ATOL)
            assert hit.source == "synthetic" and hit.duration > 0
        # the gateway's top 10 is the exhaustive top 10 up to float16 ties
        tenth = np.sort(fused16[q])[::-1][9]
        assert all(fused16[q, ids.index(h.id)] >= tenth - 2 * ROUNDED_ATOL for h in answer.hits)


def test_a_caption_without_verb_or_noun_marks_its_empty_levels(client):
    nouns_only = client.search_videos("people", top_k=3)
    assert {l.level: l.empty for l in nouns_only.hits[0].levels} == {"event": False, "action": True, "entity": False}
    answer = client.search_videos("a man is slicing bread", top_k=3)
    assert not any(l.empty for l in answer.hits[0].levels)


def test_depth_limits_candidates_and_the_default_is_the_models_first_stage_depth(client):
    answer = client.search_videos(QUERIES[0], top_k=5, candidate_depth=20)
    assert (answer.candidates, len(answer.hits)) == (20, 5)
    default = client.search_videos(QUERIES[0])
    assert (default.candidates, len(default.hits)) == (min(client.describe().default_candidate_depth, VIDEOS), 10)
    assert {t.stage for t in default.timings} == {"parse", "backbone", "tower", "search", "fetch", "rerank"}


def test_video_to_text_by_id_and_by_features(client, offline):
    reference, ids, videos = offline
    captions = sample_captions(VIDEOS)
    texts = rounded(reference.texts(captions))
    frames = dict(corpus_videos())
    for video_id in ("vid0003", "vid0042"):
        j = ids.index(video_id)
        one = {k: v[j:j + 1] for k, v in videos.items()}
        fused, levels = reference.score(texts, rounded(one))
        by_id = client.search_captions(video_id=video_id, top_k=5, candidate_depth=VIDEOS)
        by_features = client.search_captions(frames=frames[video_id], top_k=5, candidate_depth=VIDEOS)
        for answer in (by_id, by_features):
            assert len(answer.hits) == 5 and answer.model.name == BASE
            for hit in answer.hits:
                i = int(hit.id[3:])
                assert hit.text == captions[i] and hit.video_id == f"vid{i % VIDEOS:04d}"
                assert hit.score == pytest.approx(float(fused[i, 0]), abs=ROUNDED_ATOL)
        assert [h.id for h in by_id.hits][:3] == [h.id for h in by_features.hits][:3]


def test_score_given_videos(client, offline):
    reference, ids, videos = offline
    fused, _ = reference.score(reference.texts([QUERIES[3]]), rounded(videos))
    chosen = ["vid0007", "vid0001", "vid0100"]
    answer = client.score_videos(QUERIES[3], chosen)
    assert sorted(h.id for h in answer.hits) == sorted(chosen)
    for hit in answer.hits:
        assert hit.score == pytest.approx(float(fused[0, ids.index(hit.id)]), abs=ROUNDED_ATOL)


def test_upsert_is_idempotent_and_delete_counts(client):
    from clients.client import Video

    rng = np.random.default_rng(9)
    extra = [Video(f"extra{i}", rng.standard_normal((4, 256)).astype(np.float32)) for i in range(3)]
    first = client.index_videos(extra)
    again = client.index_videos(extra)
    assert (first.indexed, first.total, again.total) == (3, VIDEOS + 3, VIDEOS + 3)
    assert client.describe().videos == VIDEOS + 3
    deleted = client.delete("videos", ["extra0", "extra1", "extra2", "never-indexed"])
    assert (deleted.deleted, deleted.total) == (3, VIDEOS)
    with pytest.raises(StrataCallError, match="NOT_FOUND"):
        client.search_captions(video_id="extra0")


def test_describe(client):
    info = client.describe()
    assert (info.model.name, list(info.levels), info.videos, info.captions) == (BASE, ["event", "action", "entity"],
                                                                                VIDEOS, VIDEOS)
    assert (info.frame_dim, info.region_dim, info.max_frames, info.store_dtype) == (256, 0, 20, "float16")


BAD = [
    ("empty text", lambda c: c.search_videos("   "), "INVALID_ARGUMENT", "empty"),
    ("top-k below 1", lambda c: c.search_videos("a dog", top_k=-1), "INVALID_ARGUMENT", "top_k must be"),
    ("depth below top-k", lambda c: c.search_videos("a dog", top_k=10, candidate_depth=5), "INVALID_ARGUMENT",
     "candidate_depth must be"),
    ("wrong feature size", lambda c: c.search_captions(frames=np.zeros((5, 100), np.float32)), "INVALID_ARGUMENT",
     "frames must be"),
    ("NaN features", lambda c: c.search_captions(frames=np.full((5, 256), np.nan, np.float32)), "INVALID_ARGUMENT",
     "NaN"),
    ("zero frames", lambda c: c.search_captions(frames=np.zeros((0, 256), np.float32)), "INVALID_ARGUMENT",
     "frames must be"),
    ("unknown video id", lambda c: c.search_captions(video_id="nosuch"), "NOT_FOUND", "nosuch"),
    ("unknown id to score", lambda c: c.score_videos("a dog", ["vid0001", "nosuch"]), "NOT_FOUND", "nosuch"),
    ("no ids to score", lambda c: c.score_videos("a dog", []), "INVALID_ARGUMENT", "at least one"),
    ("index with a bad dimension",
     lambda c: c.index_videos([__import__("clients.client").client.Video("bad", np.zeros((3, 7), np.float32))]),
     "INVALID_ARGUMENT", "'bad'"),
]


@pytest.mark.parametrize(("call", "code", "words"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_requests_get_a_clear_status_and_the_gateway_keeps_serving(client, call, code, words):
    with pytest.raises(StrataCallError) as err:
        call(client)
    assert err.value.code.name == code and words in err.value.details
    assert client.health() == "SERVING"
    assert client.describe().videos == VIDEOS   # nothing lost


def test_reflection_lists_the_services(stack):
    import grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(stack[1].gateway) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        names = {s.name for r in stub.ServerReflectionInfo(iter([request]), timeout=10)
                 for s in r.list_services_response.service}
    assert {"strata.v1.Strata", "grpc.health.v1.Health"} <= names


def test_strata_health_exits_0_when_serving_and_1_when_no_gateway_answers(stack, capsys):
    import socket

    from clients.cli import main

    assert main(["health", "--url", stack[1].gateway]) == 0
    assert capsys.readouterr().out.strip().endswith(": SERVING")
    with socket.socket() as bound:   # bound and never listening: a connection to it is refused
        bound.bind(("127.0.0.1", 0))
        assert main(["health", "--url", f"127.0.0.1:{bound.getsockname()[1]}"]) == 1
    assert capsys.readouterr().out.strip().endswith(": UNREACHABLE")


def _wait_health(client: StrataClient, want: str, seconds: float = 30.0) -> str:
    import time

    deadline, status = time.monotonic() + seconds, ""
    while time.monotonic() < deadline:
        status = client.health()
        if status == want:
            return status
        time.sleep(0.2)
    return status


def test_milvus_restart_keeps_counts_and_answers(stack, client):
    from serving.index.milvus_server import MilvusLiteServer

    before = client.search_videos(QUERIES[0], top_k=5)
    server = MilvusLiteServer()
    state = server.state()
    server.stop()
    assert _wait_health(client, "NOT_SERVING") == "NOT_SERVING"
    with pytest.raises(StrataCallError) as err:
        client.search_videos(QUERIES[0])
    assert err.value.code.name == "UNAVAILABLE"
    server.start(db_path=state.serves["db"], port=state.port("milvus_port"), address=state.address)
    assert _wait_health(client, "SERVING") == "SERVING"
    after = client.search_videos(QUERIES[0], top_k=5)
    assert [(h.id, h.score) for h in after.hits] == [(h.id, h.score) for h in before.hits]
    assert (client.describe().videos, client.describe().captions) == (VIDEOS, VIDEOS)


def test_gateway_restart_keeps_counts_and_answers(stack):
    from deploy.stack import gateway_process, up

    settings, state = stack
    with StrataClient(state.gateway) as client:
        before = client.search_videos(QUERIES[1], top_k=5)
    gateway_process().stop()
    restarted = up(settings, log=lambda *_: None)
    with StrataClient(restarted.gateway) as client:
        after = client.search_videos(QUERIES[1], top_k=5)
        info = client.describe()
    assert [(h.id, h.score) for h in after.hits] == [(h.id, h.score) for h in before.hits]
    assert (info.videos, info.captions, info.model.version) == (VIDEOS, VIDEOS, state.version)


def test_the_text_backbone_carries_its_tokenizer_which_the_serving_install_reads(stack):
    """The gateway tokenises with the file beside the backbone's graph (the serving install has no MiniLM
    package): exported whole, recorded in the manifest, byte-equal to the package's."""
    import hashlib
    import json

    from common.repository import MANIFEST_FILE, TEXT_BACKBONE, TOKENIZER_FILE
    from training.text.tokenize import tokenizer_file

    folder = stack[0].repository / TEXT_BACKBONE / "1"
    entry = json.loads((folder / MANIFEST_FILE).read_text())["files"][TEXT_BACKBONE][TOKENIZER_FILE]
    carried = (folder / TOKENIZER_FILE).read_bytes()
    assert entry["bytes"] == len(carried)
    assert entry["sha256"] == hashlib.sha256(carried).hexdigest() == hashlib.sha256(tokenizer_file().read_bytes()).hexdigest()
