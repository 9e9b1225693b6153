"""The benchmark corpus: a position is the SynthVTR video ``generate`` writes for its index, past every video of the
demo's set, in the sizes the served model reads; its caption is that video's first."""
from __future__ import annotations

import json

import h5py
import numpy as np

from evaluation.bench.corpus import (CorpusGenerator, caption_id, corpus_captions, corpus_videos, demo_synth_config,
                                     video_id)
from serving.proto.strata.v1 import strata_pb2 as pb
from training.engine.config import load_train_config
from training.synth.config import SynthConfig
from training.synth.generator import CAPTIONS, FRAME_FEATURES, REGION_FEATURES, assign_splits, generate, video_name

TINY = SynthConfig(videos=40, captions_per_video=3, seed=5, frames=(6, 10), frame_dim=12, region_dim=6,
                   regions_per_frame=5)


def test_a_position_is_the_video_generate_writes_for_its_index(tmp_path):
    generate(TINY, tmp_path / "set", progress=False)
    captions = json.loads((tmp_path / "set" / CAPTIONS).read_text())
    split_of = assign_splits(TINY)
    generator = CorpusGenerator(TINY, first=30)
    compared = 0
    folder = tmp_path / "set"
    with h5py.File(folder / FRAME_FEATURES) as frames, h5py.File(folder / REGION_FEATURES) as regions:
        for position in range(10):
            name = video_name(30 + position)
            if split_of[30 + position] == "tst_unseen":   # drawn from held-out triples; the corpus is "tst"
                continue
            item = generator.item(position)
            assert item.name == name
            assert np.array_equal(item.video.frames, frames[name][()])
            assert np.array_equal(item.video.regions, regions[name][()])
            assert [c.sentence for c in item.captions] == captions[name]
            assert generator.caption(position) == captions[name][0]
            compared += 1
    assert compared >= 5


def test_the_corpus_starts_past_every_video_the_demo_trained_on():
    demo_videos = load_train_config("demo").data.synth["videos"]
    generator = CorpusGenerator.demo()
    assert generator.first == demo_videos == demo_synth_config().videos
    assert generator.item(0).name == video_name(demo_videos)   # the demo's set is video0 .. video{demo_videos - 1}


def test_videos_take_the_served_models_sizes_and_captions_name_their_video():
    with_regions = list(corpus_videos(pb.DescribeResponse(frame_dim=24, region_dim=12), 2, start=7))
    assert [v.id for v in with_regions] == [video_id(7), video_id(8)] == ["synth-000007", "synth-000008"]
    for video in with_regions:
        assert video.frames.dtype == video.regions.dtype == np.float32 and video.source == "synthvtr"
        assert video.frames.shape[1] == 24 and video.regions.shape[::2] == (len(video.frames), 12)
    (frames_only,) = corpus_videos(pb.DescribeResponse(frame_dim=256, region_dim=0), 1, start=7)
    assert frames_only.regions is None   # a model that reads no regions gets the demo generator's own frames
    assert np.array_equal(frames_only.frames, CorpusGenerator.demo().item(7).video.frames)
    assert list(corpus_captions(2, start=7)) == [(caption_id(p), CorpusGenerator.demo().caption(p), video_id(p))
                                                 for p in (7, 8)]
