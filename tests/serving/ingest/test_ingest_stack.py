"""Raw video and bulk ingest against the real local stack (Milvus Lite's server, Triton, the gateway).

The model is VSE++ (fast preset, random weights -- no model trained here reads the backbone's features) with
``video.frame_dim`` set to the tiny user backbone's 32; the backbone is a tiny user ONNX (32 x 32 images), since
ResNet-152 costs about 11.5 GFLOPs a frame (its export is tested on one frame in tests/export).

Tolerances: the gateway keeps float16 tensors; its scores for a video ingested from its file equal the offline
pipeline (decode -> backbone in ONNX Runtime -> video tower in ONNX Runtime -> scorer) within ``ATOL`` = 2e-3.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.serving.ingest.stack import ATOL, offline_videos, private_stack
from tests.serving.ingest.tiny_backbone import FRAME_DIM, write_tiny_backbone
from tests.serving.ingest.videos import GOOD, write_bad, write_good

pytestmark = pytest.mark.slow

BASE = "vsepp_fast"
REPO = Path(__file__).resolve().parents[3]
SYNTH = {"videos": 80, "captions_per_video": 2, "seed": 4, "frame_dim": FRAME_DIM, "region_dim": 24,
         "regions_per_frame": 6, "frames": (6, 12)}   # two entities, two distractors, the whole frame


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from training.synth.config import SynthConfig
    from training.synth.generator import generate

    home = tmp_path_factory.mktemp("ingest_home")
    videos = home / "videos"
    write_good(videos / "good")
    bad = write_bad(videos / "bad")
    generate(SynthConfig(**SYNTH), home / "synth", progress=False)
    exports = [["--model", "vsepp", "--preset", "fast", "--random-init", "--seed", "2", "--set",
                f"video.frame_dim={FRAME_DIM}"],
               ["--frame-backbone", str(write_tiny_backbone(home / "tiny.onnx"))]]
    with private_stack(home, exports) as (settings, state):
        yield settings, state, home, videos, bad


def test_video_files_are_indexed_through_the_gateway_and_score_as_offline(stack, capsys):
    from clients.cli import main
    from clients.client import StrataCallError, StrataClient
    from tests.serving.gateway.offline import rounded

    settings, state, _, videos, bad = stack
    rc = main(["index", "--videos", str(videos / "good"), *(str(videos / "bad" / n) for n in bad), "--url", state.gateway])
    out = capsys.readouterr()
    assert rc == 1   # some files were not indexed
    assert f"indexed {len(GOOD)} of {len(GOOD) + len(bad)} video files" in out.out and "linspace" in out.out
    for name, phrase in bad.items():
        line = next(l for l in out.err.splitlines() if name in l)
        assert phrase in line
    ids = [Path(n).stem for n, *_ in GOOD]
    reference, embedded, _ = offline_videos(settings, BASE, state.version, [videos / "good" / n for n, *_ in GOOD])
    queries = ["a man is slicing bread", "a dog runs on the grass"]
    fused, _ = reference.score(reference.texts(queries), rounded(embedded))
    with StrataClient(state.gateway, timeout_s=60) as client:
        for q, text in enumerate(queries):
            answer = client.score_videos(text, ids)
            for hit in answer.hits:
                assert hit.score == pytest.approx(float(fused[q, ids.index(hit.id)]), abs=ATOL)
            found = client.search_videos(text, top_k=len(ids), candidate_depth=len(ids))
            assert {h.id for h in found.hits} == set(ids)
            assert {h.source for h in found.hits} == {n for n, *_ in GOOD}
        for name in bad:   # nothing partial: no Milvus row, no tensors
            with pytest.raises(StrataCallError, match="NOT_FOUND"):
                client.score_videos("a dog", [Path(name).stem])
    # each file's sampled frames keep their times (tensor record format 2), for the temporal evidence of its hits
    from serving.index.naming import collection_name
    from serving.ingest.decode import decode_video
    from serving.store import open_store

    store = open_store(f"{settings.tensor_store_root}/{collection_name(BASE, state.version, 'videos')}")
    try:
        stored = store.get(ids, {"frame_times"})
    finally:
        store.close()
    for (name, _, _, count, _, _), record in zip(GOOD, stored):
        times = decode_video(videos / "good" / name, reference.max_frames).times
        assert times is not None and len(times) == min(count, reference.max_frames)
        np.testing.assert_array_equal(record["frame_times"], times)


def test_search_captions_by_an_uploaded_clip_equals_search_by_its_id(stack):
    from clients.client import StrataClient

    settings, state, _, videos, _ = stack
    with StrataClient(state.gateway, timeout_s=60) as client:
        client.index_captions([(f"c{i}", t) for i, t in enumerate(
            ["a man is slicing bread", "a dog runs on the grass", "two people dance", "a car drives at night"])])
        path = videos / "good" / GOOD[0][0]
        by_clip = client.search_captions_by_clip(str(path), top_k=4, candidate_depth=4)
        by_id = client.search_captions(video_id=Path(path).stem, top_k=4, candidate_depth=4)
    assert [h.id for h in by_clip.hits] == [h.id for h in by_id.hits]
    assert [h.score for h in by_clip.hits] == pytest.approx([h.score for h in by_id.hits], abs=ATOL)


def _index(home: Path, *extra: str, crash: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "STRATA_HOME": str(home), "STRATA_INDEX_BATCH": "2", "HF_HUB_OFFLINE": "1"}
    env.pop("STRATA_CRASH_AT", None)
    if crash:
        env["STRATA_CRASH_AT"] = crash
    return subprocess.run([sys.executable, "-m", "clients.cli", "index", str(home / "synth"), "--batch", "4",
                           *extra], env=env, cwd=REPO, capture_output=True, text=True, timeout=600)


def _snapshot(settings, version):
    """Every row of the videos and captions collections with its vector, and every tensor record, by id."""
    from serving.index.milvus_index import MilvusIndex
    from serving.index.milvus_server import MilvusLiteServer
    from serving.index.naming import collection_name
    from serving.store import open_store
    from training.synth.generator import open_dataset

    split = open_dataset(settings.repository.parent / "synth").split("tst", 1)
    wanted = {"videos": list(split.names),
              "captions": [f"{v}#{k}" for v, t in zip(split.names, split.captions) for k in range(len(t))]}
    index = MilvusIndex(MilvusLiteServer().uri())
    snap = {}
    for kind, ids in wanted.items():
        name = collection_name(BASE, version, kind)
        rows = index.get(name, ids, ["id", "vector"])
        store = open_store(f"{settings.tensor_store_root}/{name}")
        records = dict(zip(ids, store.get(ids)))
        store.close()
        snap[kind] = (index.count(name), rows, records)
    index.close()
    return wanted, snap


def test_bulk_ingest_killed_at_three_points_and_rerun_leaves_every_item_once_bit_equal(stack):
    from clients.client import StrataClient

    settings, state, home, _, _ = stack
    for point in ("decode:3", "after_store:2", "mid_batch:3"):
        killed = _index(home, "--workers", "0", crash=point)
        assert killed.returncode == 75, (point, killed.stderr[-2000:])
    rerun = _index(home, "--workers", "0")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "already committed, skipped" in rerun.stderr and "videos/s" in rerun.stderr
    wanted, first = _snapshot(settings, state.version)
    with StrataClient(state.gateway, timeout_s=60) as client:
        client.delete("videos", wanted["videos"])
        client.delete("captions", wanted["captions"])
    clean = _index(home, "--workers", "0")
    assert clean.returncode == 0, clean.stderr[-3000:]
    _, second = _snapshot(settings, state.version)
    for kind, ids in wanted.items():
        (count1, rows1, rec1), (count2, rows2, rec2) = first[kind], second[kind]
        assert set(rows1) == set(ids) == set(rows2) and count1 == count2
        for i in ids:
            assert np.array_equal(rows1[i]["vector"], rows2[i]["vector"]), (kind, i)
            assert rec1[i].keys() == rec2[i].keys()
            assert all(np.array_equal(rec1[i][k], rec2[i][k]) for k in rec1[i]), (kind, i)


def test_the_ingest_rayjob_s_entrypoint_indexes_a_synthvtr_corpus_with_two_workers_on_a_local_head(stack):
    import shutil
    from functools import partial

    from clients.client import StrataClient
    from tests.deploy.ray_jobs import run_manifest_job
    from tests.ports import start_on_free_ports
    from tests.training.engine.test_train import BIN, _start_ray

    settings, state, home, _, _ = stack
    if shutil.which("ray", path=str(BIN)) is None:
        pytest.fail("ray is not installed in this environment")
    wanted, before = _snapshot(settings, state.version)
    with StrataClient(state.gateway, timeout_s=60) as client:
        client.delete("videos", wanted["videos"])
        client.delete("captions", wanted["captions"])
    env = {**os.environ, "STRATA_HOME": str(home), "PATH": f"{BIN}:{os.environ['PATH']}", "RAY_ADDRESS": "",
           "HF_HUB_OFFLINE": "1"}
    ray = str(BIN / "ray")
    _, dashboard = start_on_free_ports(partial(_start_ray, env), 2)
    try:   # the entrypoint of deploy/k8s/ray-job-ingest.yaml, as KubeRay submits it
        status, logs = run_manifest_job(f"http://127.0.0.1:{dashboard}", "ray-job-ingest.yaml",
                                        {"INGEST_DATASET": str(home / "synth"), "INGEST_WORKERS": "2",
                                         "INGEST_BATCH": "8"})
        assert status == "SUCCEEDED" and "videos/s" in logs, logs[-3000:]
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)
    _, after = _snapshot(settings, state.version)
    for kind, ids in wanted.items():
        assert after[kind][0] == before[kind][0] and set(after[kind][1]) == set(ids)
        for i in ids:   # other batches may share a Triton batch: equal to float32 rounding, not bit for bit
            np.testing.assert_allclose(after[kind][1][i]["vector"], before[kind][1][i]["vector"], atol=1e-5)
