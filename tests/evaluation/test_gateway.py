"""The gateway evaluation's requests: unset, every search carries depth 0 (the gateway resolves each direction's own
depth) and asks for every candidate it re-ranks; with a depth, both directions get it. A stand-in gateway answers,
with a different depth per direction, so a depth carried from one direction to the other shows."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from clients.cli import main
from evaluation.gateway import evaluate_split_through_gateway

MODEL = SimpleNamespace(name="hgr_fast", version=1)
DEPTHS = {"videos": 7, "captions": 3}   # the stand-in gateway's own depth of each direction


class StandInGateway:
    """Indexes what it is sent; a search proposes the first ``depth`` items and scores them in order."""

    def __init__(self):
        self.items = {"videos": [], "captions": []}
        self.requests = []   # (kind, top_k, candidate_depth)

    def describe(self):
        return SimpleNamespace(model=MODEL, levels=["event"], max_frames=20, region_dim=0)

    def index_videos(self, videos, batch):
        self.items["videos"] += [video.id for video in videos]
        return SimpleNamespace(indexed=len(self.items["videos"]), total=len(self.items["videos"]), model=MODEL)

    def index_captions(self, pairs):
        self.items["captions"] += [text for _, text, _ in pairs]
        return SimpleNamespace(indexed=len(pairs))

    def _search(self, kind, top_k, candidate_depth):
        self.requests.append((kind, top_k, candidate_depth))
        candidates = self.items[kind][:candidate_depth or DEPTHS[kind]]
        hits = [SimpleNamespace(id=item, text=item, score=-rank, levels=[SimpleNamespace(score=-rank)])
                for rank, item in enumerate(candidates[:top_k or 1])]
        return SimpleNamespace(hits=hits, candidates=len(candidates))

    def search_videos(self, text, top_k=0, candidate_depth=0):
        return self._search("videos", top_k, candidate_depth)

    def search_captions(self, video_id="", top_k=0, candidate_depth=0):
        return self._search("captions", top_k, candidate_depth)

    def score_videos(self, text, video_ids):
        """A shorter text scores higher, whatever the video."""
        self.requests.append(("score", len(video_ids), 0))
        return SimpleNamespace(hits=[SimpleNamespace(id=v, score=-len(text)) for v in video_ids])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synth") / "data"
    assert main(["synth", "--out", str(folder), "--videos", "40", "--captions-per-video", "2",
                 "--split-fractions", "0.1", "0.5", "0.1", "--no-progress"]) == 0
    return folder


def test_unset_depth_sends_0_both_ways_and_asks_for_every_candidate(dataset):
    gateway = StandInGateway()
    result = evaluate_split_through_gateway(gateway, dataset, "tst", 0, (MODEL.name, MODEL.version), log=lambda _: None)
    assert {depth for _, _, depth in gateway.requests} == {0}
    asked = {(kind, top_k) for kind, top_k, _ in gateway.requests if top_k and kind != "score"}
    assert asked == {("videos", DEPTHS["videos"]), ("captions", DEPTHS["captions"])}
    assert result["candidates"] == {"t2v": DEPTHS["videos"], "v2t": DEPTHS["captions"]}


def test_a_depth_goes_to_both_directions(dataset):
    gateway = StandInGateway()
    result = evaluate_split_through_gateway(gateway, dataset, "tst", 5, (MODEL.name, MODEL.version), log=lambda _: None)
    assert {(kind, top_k, depth) for kind, top_k, depth in gateway.requests if kind != "score"} == {
        ("videos", 5, 5), ("captions", 5, 5)}
    assert result["candidates"] == {"t2v": 5, "v2t": 5}


def test_binary_selections_are_scored_by_the_gateway_one_video_at_a_time(dataset):
    from training.synth.selections import MANY, folder_selection_sets

    gateway = StandInGateway()
    result = evaluate_split_through_gateway(gateway, dataset, "tst", 5, (MODEL.name, MODEL.version), log=lambda _: None)
    sets = folder_selection_sets(dataset, "tst")
    assert MANY in sets and "switch_roles" in sets and "replace_action" in sets   # the switch-roles sets and HGR's
    expected = {kind: 100.0 * sum(len(pos) < len(neg) for _, pos, neg in triples) / len(triples)
                for kind, triples in sets.items()}
    assert result["binary_selection"] == pytest.approx(expected)
    assert result["binary_selection_sizes"][MANY]["pairs"] == len(sets[MANY])
    scored = [n for kind, n, _ in gateway.requests if kind == "score"]
    assert scored == [1] * (2 * sum(map(len, sets.values())))     # each caption against its own video, alone
