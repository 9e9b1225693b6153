"""Versions as one unit: text->video and video->text queries run through a swap and a retire with no failure and
no mixed answer (every answer's scores equal offline scoring by the version it names), on two gateway processes
serving one index, which answer alike and which the one swap moves both; the new version survives a gateway
restart and a Triton restart; a swap whose new version will not load leaves the old one serving.

This module runs its own stack in its own STRATA_HOME, so the swap does not touch the other gateway tests."""
from __future__ import annotations

import threading
import time

import pytest

from clients.client import StrataClient
from common.settings import Settings
from tests.serving.gateway.stack import export_hgr, gateway_process_beside, running_stack
from tests.serving.gateway.corpus import BASE, FREE_PORTS, VIDEOS, corpus_videos, sample_captions
from tests.serving.gateway.offline import Offline, rounded

pytestmark = pytest.mark.slow

ATOL = 1e-3   # float16 tensor store against offline scoring with the stored tensors rounded (see test_gateway)
TEXTS = ["a man is slicing bread in a kitchen", "a dog chases a ball on the grass", "people are dancing"]
VIDEO_IDS = ["vid0005", "vid0077"]


@pytest.fixture(scope="module")
def swap_stack(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:   # restored however the set-up ends
        patch.setenv("STRATA_HOME", str(tmp_path_factory.mktemp("swap_home")))
        settings = Settings(**FREE_PORTS)
        with running_stack(settings) as state:
            yield settings, state


def gateway(settings, url: str = "") -> StrataClient:
    """A client of the stack's gateway, or of the one at ``url``."""
    from common.connect import gateway_url

    return StrataClient(url or gateway_url(settings), timeout_s=60)


def reference(settings, version: int) -> dict:
    """Offline scores of ``version``: texts x all videos, and all captions x the query videos."""
    offline = Offline(settings.repository, BASE, version)
    ids, frames = zip(*corpus_videos())
    videos = rounded(offline.videos(list(frames)))
    t2v, _ = offline.score(offline.texts(TEXTS), videos)
    rows = [ids.index(v) for v in VIDEO_IDS]
    v2t, _ = offline.score(rounded(offline.texts(sample_captions(VIDEOS))), {k: a[rows] for k, a in videos.items()})
    return {"t2v": t2v, "v2t": v2t, "ids": list(ids)}


def check_answer(kind: str, q: int, answer, references: dict) -> None:
    ref = references[answer.model.version]
    for hit in answer.hits:
        if kind == "t2v":
            want = ref["t2v"][q, ref["ids"].index(hit.id)]
        else:
            want = ref["v2t"][int(hit.id[3:]), q]
        assert hit.score == pytest.approx(float(want), abs=ATOL), (kind, q, answer.model.version, hit.id)


def test_two_gateways_answer_alike_and_queries_through_a_swap_and_a_retire_never_fail_nor_mix(swap_stack, tmp_path):
    """The stack's gateway and a second gateway process on the same Milvus and Triton, asked at once."""
    settings, state = swap_stack
    with gateway_process_beside(settings, state, tmp_path) as second:
        swap_with_two_gateways(settings, second)


def swap_with_two_gateways(settings, second: str) -> None:
    from common.connect import service_settings
    from serving.index.milvus_index import MilvusIndex
    from serving.swap import swap

    with gateway(settings) as first, gateway(settings, second) as other:   # one index: the same answers
        for text in TEXTS:
            mine, theirs = first.search_videos(text, top_k=5), other.search_videos(text, top_k=5)
            assert [(h.id, h.score) for h in mine.hits] == [(h.id, h.score) for h in theirs.hits]
            assert mine.model.version == theirs.model.version == 1
    export_hgr(settings, seed=4)                         # version 2
    references = {1: reference(settings, 1), 2: reference(settings, 2)}
    answers, failures, stop = [], [], threading.Event()

    def ask(kind: str, url: str = "") -> None:
        with gateway(settings, url) as client:
            q = 0
            while not stop.is_set():
                try:
                    if kind == "t2v":
                        answers.append((kind, q % len(TEXTS), client.search_videos(TEXTS[q % len(TEXTS)], top_k=5)))
                    else:
                        answers.append((kind, q % len(VIDEO_IDS),
                                        client.search_captions(video_id=VIDEO_IDS[q % len(VIDEO_IDS)], top_k=5)))
                except Exception as err:  # noqa: BLE001 - every failure is a finding
                    failures.append(err)
                q += 1

    health: list[str] = []

    def watch() -> None:   # health, asked while the queries run: it must say what they find (serving)
        with gateway(settings) as client:
            while not stop.is_set():
                health.append(client.health())
                stop.wait(0.1)

    threads = [threading.Thread(target=ask, args=(kind, url)) for kind in ("t2v", "v2t") for url in ("", second)]
    threads.append(threading.Thread(target=watch))
    for thread in threads:
        thread.start()
    try:
        report = swap(service_settings(settings), BASE, 2, retire=1, log=lambda *_: None)
        with gateway(settings, second) as other:   # the swap returned: both replicas have switched
            assert other.describe().model.version == 2
        deadline = time.monotonic() + 60
        while sum(a.model.version == 2 for _, _, a in answers) < 10 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert len(health) > 10 and set(health) == {"SERVING"}, {h: health.count(h) for h in set(health)}
    by_version = {v: sum(a.model.version == v for _, _, a in answers) for v in (1, 2)}
    assert by_version[1] > 0 and by_version[2] >= 10, by_version      # queries ran on both sides of the swap
    for kind, q, answer in answers:
        check_answer(kind, q, answer, references)
    assert (report.version, report.videos, report.captions, report.reembedded) == (2, VIDEOS, VIDEOS, 2 * VIDEOS)
    current = service_settings(settings)
    index = MilvusIndex(current.milvus)
    assert not [name for name in index.collections() if name.startswith(f"{BASE}_v1_")], index.collections()
    assert index.has(f"{BASE}_v2_videos_fused") and index.has(f"{BASE}_v2_captions_fused")   # HGR's first stage
    import tritonclient.grpc as grpcclient

    triton = grpcclient.InferenceServerClient(current.triton_url)
    assert not triton.is_model_ready(f"{BASE}_video", "1") and triton.is_model_ready(f"{BASE}_video", "2")


def test_a_gateway_restart_and_a_triton_restart_keep_the_new_version(swap_stack):
    from deploy.stack import gateway_process, up
    from serving.triton.server import TritonServer

    settings, _ = swap_stack
    gateway_process().stop()
    TritonServer().stop()
    up(settings, log=lambda *_: None)
    with gateway(settings) as client:
        info = client.describe()
        answer = client.search_videos(TEXTS[0], top_k=5)
    assert (info.model.version, info.videos, info.captions) == (2, VIDEOS, VIDEOS)
    check_answer("t2v", 0, answer, {2: reference(settings, 2)})


def test_a_swap_whose_version_will_not_load_leaves_the_old_one_serving(swap_stack):
    from common.connect import service_settings
    from common.errors import StrataError
    from serving.swap import swap

    settings, _ = swap_stack
    export_hgr(settings, seed=5)                         # version 3, then broken (and mended after)
    graph = settings.repository / f"{BASE}_video" / "3" / "model.onnx"
    good = graph.read_bytes()
    graph.write_bytes(b"not an onnx graph")
    try:
        with pytest.raises(StrataError, match="version 3"):
            swap(service_settings(settings), BASE, 3, log=lambda *_: None)
    finally:
        graph.write_bytes(good)
    with gateway(settings) as client:
        assert client.describe().model.version == 2
        assert client.search_videos(TEXTS[1], top_k=3).model.version == 2
        assert client.health() == "SERVING"


def test_a_triton_restarted_without_the_active_version_gets_it_back_by_itself(swap_stack):
    """`strata triton start` loads each model's latest version (3 here); the gateway loads the active one (2) back
    into it, with no operator, and answers with it again."""
    from clients.cli import main
    from common.records import GATEWAY
    from common.repository import versions
    from serving.triton.server import TritonServer

    settings, _ = swap_stack
    assert versions(settings.repository, f"{BASE}_text")[-1] == 3   # the latest on disk is not the active version
    triton = TritonServer()
    before = triton.state()
    log = GATEWAY.run_dir() / f"{GATEWAY.name}.log"
    logged = log.stat().st_size
    assert main(["triton", "stop"]) == 0
    assert main(["triton", "start", "--http-port", str(before.http_port), "--grpc-port", str(before.grpc_port),
                 "--metrics-port", str(before.metrics_port)]) == 0
    with gateway(settings) as client:
        deadline = time.monotonic() + 60
        while client.health() != "SERVING" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.health() == "SERVING"
        answer = client.search_videos(TEXTS[0], top_k=5)
    assert answer.model.version == 2
    check_answer("t2v", 0, answer, {2: reference(settings, 2)})
    assert f"reloaded {BASE} version 2 into Triton" in log.read_bytes()[logged:].decode()   # healed by the gateway
