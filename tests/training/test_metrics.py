import numpy as np
import pytest

from common.errors import DataError
from training import metrics
from training.metrics import METRIC_KEYS, dedupe_captions, query_ranks, retrieval_metrics


def test_two_videos_worked_by_hand():
    # video 0 owns captions 0 and 1, video 1 owns caption 2
    scores = np.array([[0.9, 0.1, 0.5],
                       [0.2, 0.8, 0.7]])
    m = retrieval_metrics(scores, [[0, 1], [2]])
    assert tuple(m) == METRIC_KEYS
    # t2v ranks: caption 0 -> 0, caption 1 -> 1 (video 1 scores 0.8 > 0.1), caption 2 -> 0
    assert m["t2v_r1"] == pytest.approx(200 / 3)
    assert m["t2v_r5"] == m["t2v_r10"] == 100.0
    assert m["t2v_medr"] == 1.0
    assert m["t2v_mnr"] == pytest.approx(1 + 1 / 3)
    # v2t ranks: video 0 -> 0 (best correct 0.9), video 1 -> 1 (caption 1's 0.8 beats its 0.7)
    assert m["v2t_r1"] == 50.0
    assert m["v2t_medr"] == 1.5  # median(0, 1) + 1: not floored
    assert m["v2t_mnr"] == 1.5
    assert m["rsum"] == pytest.approx(200 / 3 + 100 + 100 + 50 + 100 + 100)


def test_recall_boundaries_and_median():
    # upper triangle of ones, 0.5 on the diagonal: video i ranks its caption at 10 - i, caption j its video at j
    n = 11
    scores = np.triu(np.ones((n, n)), 1) + 0.5 * np.eye(n)
    np.testing.assert_array_equal(query_ranks(scores, [[i] for i in range(n)]), np.arange(n)[::-1])
    np.testing.assert_array_equal(query_ranks(scores.T, [[i] for i in range(n)]), np.arange(n))
    m = retrieval_metrics(scores, [[i] for i in range(n)])
    for d in ("t2v", "v2t"):
        assert m[f"{d}_r1"] == pytest.approx(100 / 11)
        assert m[f"{d}_r5"] == pytest.approx(500 / 11)    # ranks 0..4; rank 5 is not < 5
        assert m[f"{d}_r10"] == pytest.approx(1000 / 11)  # ranks 0..9
        assert m[f"{d}_medr"] == 6.0
        assert m[f"{d}_mnr"] == 6.0
    assert m["rsum"] == pytest.approx(3200 / 11)


def test_shared_caption_is_correct_for_both_videos():
    unique, video_captions = dedupe_captions([["a dog runs", "a cat sits"], ["a dog runs", "a bird sings"]])
    assert unique == ["a dog runs", "a cat sits", "a bird sings"]
    assert video_captions == [[0, 1], [0, 2]]
    scores = np.array([[0.2, 0.9, 0.1],
                       [0.3, 0.6, 0.5]])
    m = retrieval_metrics(scores, video_captions)
    # caption 0 scores best with video 1, which is also correct: rank 0
    assert m["t2v_r1"] == 100.0
    # video 1: best correct is caption 2 (0.5), beaten by caption 1 (0.6): rank 1
    assert m["v2t_r1"] == 50.0 and m["v2t_medr"] == 1.5


def test_dedupe_keeps_one_entry_for_a_repeated_sentence_within_a_video():
    unique, video_captions = dedupe_captions([["x", "x", "y"]])
    assert unique == ["x", "y"] and video_captions == [[0, 1]]
    with pytest.raises(DataError, match="video 1"):
        dedupe_captions([["x"], []])


def test_ties_count_against_the_query():
    # every score equal: each correct item ranks after the tied wrong ones
    m = retrieval_metrics(np.zeros((2, 2)), [[0], [1]])
    assert m["t2v_r1"] == m["v2t_r1"] == 0.0
    assert m["t2v_medr"] == m["v2t_medr"] == 2.0
    # two correct captions tied with one wrong: only the wrong one counts
    np.testing.assert_array_equal(query_ranks(np.array([[0.5, 0.5, 0.5]]), [[0, 1]]), [1])
    np.testing.assert_array_equal(query_ranks(np.array([[0.5, 0.5, 0.4]]), [[0, 1]]), [0])


def test_blocked_ranking_matches_one_block_and_argsort(monkeypatch):
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((7, 20)).astype(np.float32)
    video_captions = [list(range(3 * v, 3 * v + 3)) for v in range(6)] + [[18, 19, 0]]
    whole = retrieval_metrics(scores, video_captions)
    monkeypatch.setattr(metrics, "_BLOCK_ELEMENTS", 5)
    assert retrieval_metrics(scores, video_captions) == whole
    # without ties the rank is the position of the best correct item in a descending sort (HGR's definition)
    for v, caps in enumerate(video_captions):
        order = list(np.argsort(-scores[v]))
        assert query_ranks(scores[v:v + 1], [caps])[0] == min(order.index(c) for c in caps)


@pytest.mark.parametrize(
    "scores, video_captions, message",
    [
        (np.zeros(3), [[0]], "videos x captions"),
        (np.zeros((0, 3)), [], "videos x captions"),
        (np.array([["a", "b"]]), [[0]], "numeric"),
        (np.array([[0.1, np.nan]]), [[0, 1]], "NaN"),
        (np.zeros((2, 2)), [[0, 1]], "2 video rows"),
        (np.zeros((2, 2)), [[0], [2]], "outside 0..1"),
        (np.zeros((2, 2)), [[0, 1], []], "video 1 has no caption"),
        (np.zeros((2, 3)), [[0], [1]], "belong to no video"),
        (np.zeros((1, 2)), [[0.5, 1]], "integers"),
    ],
)
def test_bad_input_is_a_clear_error(scores, video_captions, message):
    with pytest.raises(DataError, match=message):
        retrieval_metrics(scores, video_captions)
