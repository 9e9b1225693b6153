"""Raw video into the region models against the real local stack: ViSERN (region graph) and VSR-Net
(spatio-temporal Transformer over regions), both exported into one repository beside a tiny user backbone whose
second output gives 4 regions of 24-d per frame; the stack serves one at a time, and ``strata swap`` moves it.

Both are the fast presets with random weights (no model trained here reads these features), shrunk with ``--set``
to the backbone's sizes and to small widths so that their export stays cheap. Scores of a video indexed from its
file equal the offline pipeline (decode -> backbone in ONNX Runtime -> video tower in ONNX Runtime -> scorer)
within the frame-model test's ``ATOL``; the largest difference is printed (run with ``-s`` to see it).
"""
from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.serving.ingest.stack import ATOL, offline_videos, private_stack
from tests.serving.ingest.tiny_backbone import FRAME_DIM, REGION_DIM, REGIONS, write_tiny_backbone
from tests.serving.ingest.videos import GOOD, write_good

pytestmark = pytest.mark.slow

SIZES = ["--set", f"video.frame_dim={FRAME_DIM}", "--set", f"video.region_dim={REGION_DIM}"]
MODELS = {
    "visern_fast": ["--model", "visern", "--preset", "fast", "--random-init", "--seed", "3", *SIZES,
                    "--set", "graph_dim=32", "--set", "rnn_hidden=32", "--set", "conv_channels=16",
                    "--set", "embed_dim=32"],
    "vsrnet_fast": ["--model", "vsrnet", "--preset", "fast", "--random-init", "--seed", "4", *SIZES,
                    "--set", "embed_dim=32", "--set", "mlp_dim=64", "--set", "aggregation_hidden=32"],
}
VERSION = 1   # every model here is exported once
QUERIES = ["a man is slicing bread", "a dog runs on the grass"]
CAPTIONS = ["a man is slicing bread", "a dog runs on the grass", "two people dance", "a car drives at night"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    home = tmp_path_factory.mktemp("region_home")
    write_good(home / "videos")
    exports = [*MODELS.values(), ["--frame-backbone", str(write_tiny_backbone(home / "tiny.onnx", regions=True))]]
    with private_stack(home, exports, model="visern_fast") as (settings, state):
        yield settings, state, home


def serve(stack, base: str) -> None:
    """Make ``base`` version ``VERSION`` the active version (``strata swap``, which loads it in Triton first)."""
    from clients.client import StrataClient
    from common.connect import service_settings
    from serving.swap import swap

    settings, state, _ = stack
    with StrataClient(state.gateway, timeout_s=60) as client:
        if client.describe().model.name != base:
            swap(service_settings(settings), base, VERSION, log=lambda *_: None)
        assert (client.describe().model.name, client.describe().model.version) == (base, VERSION)


@pytest.mark.parametrize("base", list(MODELS))
def test_video_files_go_through_a_region_model_and_score_as_offline(stack, base, capsys):
    from clients.cli import main
    from clients.client import StrataClient
    from tests.serving.gateway.offline import rounded

    settings, state, home = stack
    serve(stack, base)
    assert main(["index", "--videos", str(home / "videos"), "--url", state.gateway]) == 0
    ids = [Path(n).stem for n, *_ in GOOD]
    reference, embedded, features = offline_videos(settings, base, VERSION, [home / "videos" / n for n, *_ in GOOD])
    assert all(r.shape == (len(f), REGIONS, REGION_DIM) for f, r in features)
    fused, _ = reference.score(reference.texts(QUERIES), rounded(embedded))
    worst = 0.0
    with StrataClient(state.gateway, timeout_s=60) as client:
        for q, text in enumerate(QUERIES):
            answer = client.score_videos(text, ids)
            assert answer.model.name == base and len(answer.hits) == len(ids)
            served = np.array([h.score for h in answer.hits])
            offline = np.array([fused[q, ids.index(h.id)] for h in answer.hits])
            worst = max(worst, float(np.abs(served - offline).max()))
            found = client.search_videos(text, top_k=len(ids), candidate_depth=len(ids))
            assert {h.id for h in found.hits} == set(ids)
        client.index_captions([(f"c{i}", t) for i, t in enumerate(CAPTIONS)])
        for name, *_ in GOOD[:2]:
            by_clip = client.search_captions_by_clip(str(home / "videos" / name), top_k=4, candidate_depth=4)
            by_id = client.search_captions(video_id=Path(name).stem, top_k=4, candidate_depth=4)
            assert [h.id for h in by_clip.hits] == [h.id for h in by_id.hits]
            assert [h.score for h in by_clip.hits] == pytest.approx([h.score for h in by_id.hits], abs=ATOL)
    with capsys.disabled():
        print(f"\n{base}: gateway vs offline, max |score diff| {worst:.2e} over {len(QUERIES)} x {len(ids)} pairs")
    assert worst <= ATOL


def test_videos_of_another_region_count_score_as_each_would_alone(stack, tmp_path):
    """The region models take any count of regions per frame (a set: no region mask, no padding), and one training
    set has one count; a call mixing counts is embedded one count at a time, each video as it would be alone."""
    from clients.client import StrataClient, Video
    from export.backbone import export_frame_backbone
    from tests.serving.gateway.offline import rounded

    settings, state, home = stack
    base = "vsrnet_fast"
    serve(stack, base)
    grid4 = tmp_path / "grid4"   # the same tiny backbone (same seed, same weights) with a 4 x 4 grid: 16 regions
    export_frame_backbone(grid4, str(write_tiny_backbone(tmp_path / "tiny16.onnx", regions=True, grid=4)), 1,
                          log=lambda *_: None)
    paths = [home / "videos" / GOOD[0][0], home / "videos" / GOOD[1][0]]
    reference, alone4, four = offline_videos(settings, base, VERSION, paths[:1])
    _, alone16, sixteen = offline_videos(settings, base, VERSION, paths[1:], grid_repo=grid4)
    assert four[0][1].shape[1] == REGIONS and sixteen[0][1].shape[1] == 16
    (f4, r4), (f16, r16) = four[0], sixteen[0]
    with StrataClient(state.gateway, timeout_s=60) as client:
        client.index_videos([Video("regions4", f4, r4), Video("regions16", f16, r16)])
        texts = reference.texts(QUERIES)
        offline = {vid: reference.score(texts, rounded(alone))[0][:, 0]
                   for vid, alone in (("regions4", alone4), ("regions16", alone16))}
        for q, text in enumerate(QUERIES):
            for hit in client.score_videos(text, ["regions4", "regions16"]).hits:
                assert hit.score == pytest.approx(float(offline[hit.id][q]), abs=ATOL), (hit.id, text)


def test_a_backbone_the_served_models_cannot_read_is_refused_at_export(stack, tmp_path):
    from common.errors import ConfigError
    from common.frame_backbone import FRAME_BACKBONE
    from export.backbone import export_frame_backbone

    settings, _, _ = stack
    cases = [(dict(regions=False), f"reads {REGION_DIM}-d region features; {FRAME_BACKBONE} version 2 .* gives none"),
             (dict(regions=True, region_dim=16), f"gives 16-d regions; visern_fast version 1 reads {REGION_DIM}-d"),
             (dict(frame_dim=48, regions=True),
              f"gives 48-d frame features; visern_fast version 1 reads {FRAME_DIM}-d")]
    for i, (kwargs, message) in enumerate(cases):
        onnx = write_tiny_backbone(tmp_path / f"other{i}.onnx", **kwargs)
        with pytest.raises(ConfigError, match=message) as refused:
            export_frame_backbone(settings.repository, str(onnx), 2, log=lambda *_: None)
        assert "strata export --frame-backbone resnet152" in str(refused.value)
        assert not (settings.repository / FRAME_BACKBONE / "2").exists()


def test_strata_up_refuses_a_backbone_the_active_version_cannot_read(stack, tmp_path):
    """A repository put together by hand (the refusals at export never saw both sides) is refused by strata up, by
    name, before Triton is asked for anything."""
    from common.errors import ConfigError
    from common.frame_backbone import FRAME_BACKBONE
    from common.repository import TEXT_BACKBONE
    from deploy.stack import up
    from export.backbone import export_frame_backbone

    settings, state, _ = stack
    repo = tmp_path / "by_hand"
    for folder in settings.repository.iterdir():
        if folder.name != FRAME_BACKBONE and (folder.name == TEXT_BACKBONE or folder.name.split("_")[0] in
                                              ("visern", "vsrnet")):
            shutil.copytree(folder, repo / folder.name)
    export_frame_backbone(tmp_path / "frames_only", str(write_tiny_backbone(tmp_path / "frames.onnx")), 1,
                          log=lambda *_: None)
    shutil.copytree(tmp_path / "frames_only" / FRAME_BACKBONE, repo / FRAME_BACKBONE)
    with pytest.raises(ConfigError, match=rf"_fast version 1 reads {REGION_DIM}-d region features; "
                                          rf"{FRAME_BACKBONE} version 1 \(user ONNX frames.onnx\) gives none"):
        up(replace(settings, model_repository=str(repo), milvus_uri=state.milvus), log=lambda *_: None)
