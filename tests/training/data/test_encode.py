import numpy as np
import pytest

from common.config import from_dict
from common.errors import ConfigError, DataError
from common.layout import TEXT_INPUTS, VIDEO_INPUTS
from training.data.encode import TextLimits, encode_graph, encode_text_batch, encode_video_batch
from training.text.rolegraph import RoleGraph
from training.text.roles import ROLE_INDEX

# HGR's own example: "a egg has been broken and dropped into the cup and a water is boiling in the sauce pan"
EGG_SENTENCE = "a egg has been broken and dropped into the cup and a water is boiling in the sauce pan"
EGG_WORDS = 19
EGG_NODES = {
    "ROOT": {"role": "ROOT", "spans": list(range(19)), "words": EGG_SENTENCE.split()},
    "1": {"role": "V", "spans": [4], "words": ["broken"]},
    "2": {"role": "ARG1", "spans": [0, 1], "words": ["a", "egg"]},
    "3": {"role": "V", "spans": [6], "words": ["dropped"]},
    "4": {"role": "ARG4", "spans": [7, 8, 9], "words": ["into", "the", "cup"]},
    "5": {"role": "V", "spans": [14], "words": ["boiling"]},
    "6": {"role": "ARG1", "spans": [11, 12], "words": ["a", "water"]},
    "7": {"role": "ARGM-LOC", "spans": [15, 16, 17, 18], "words": ["in", "the", "sauce", "pan"]},
}
EGG_EDGES = [["1", "2", "ARG1"], ["3", "2", "ARG1"], ["3", "4", "ARG4"], ["5", "6", "ARG1"], ["5", "7", "ARGM-LOC"]]


def test_graph_within_limits_is_kept_whole():
    g = encode_graph(EGG_NODES, EGG_EDGES, EGG_WORDS)
    assert g.num_words == g.total_words == 19
    assert g.verb_spans == ((4,), (6,), (14,))
    assert g.noun_spans == ((0, 1), (7, 8, 9), (11, 12), (15, 16, 17, 18))
    assert g.noun_roles == (ROLE_INDEX["ARG1"], ROLE_INDEX["ARG4"], ROLE_INDEX["ARG1"], ROLE_INDEX["ARGM-LOC"])
    assert g.noun_roles == (1, 5, 1, 6)
    assert g.edges == ((0, 0), (1, 0), (1, 1), (2, 2), (2, 3))


def test_parsed_role_graph_objects_encode_like_their_json():
    graph = RoleGraph.from_hgr([EGG_NODES, EGG_EDGES])
    limits = TextLimits(max_words=12)
    assert encode_graph(graph.nodes, graph.edges, EGG_WORDS, limits) == encode_graph(
        EGG_NODES, EGG_EDGES, EGG_WORDS, limits)


def test_truncation_drops_nodes_past_the_words_and_over_the_limits():
    g = encode_graph(EGG_NODES, EGG_EDGES, EGG_WORDS, TextLimits(max_words=9, max_verbs=1, max_nouns=2))
    assert g.num_words == 9 and g.total_words == 19
    assert g.verb_spans == ((4,),)                  # "dropped" over max_verbs, "boiling" past word 9
    assert g.noun_spans == ((0, 1), (7, 8))         # "into the cup" cut to the words that exist
    assert g.edges == ((0, 0),)                     # edges of dropped verbs go too
    g = encode_graph(EGG_NODES, EGG_EDGES, EGG_WORDS, TextLimits(max_words=12, max_verbs=4, max_nouns=6))
    assert g.verb_spans == ((4,), (6,))
    assert g.noun_spans == ((0, 1), (7, 8, 9), (11,))
    assert g.edges == ((0, 0), (1, 0), (1, 1))


def test_roles_are_normalised():
    nodes = {"1": {"role": "V", "spans": [1]}, "2": {"role": "R-ARG0", "spans": [0]},
             "3": {"role": "ARGM-NEG", "spans": [2]}, "4": {"role": "NOUN", "spans": [3]}}
    g = encode_graph(nodes, [], 4)
    assert g.noun_roles == (ROLE_INDEX["ARG0"], ROLE_INDEX["NOUN"], ROLE_INDEX["NOUN"])
    assert g.edges == ()


def test_text_batch_is_padded_to_the_batch_and_matches_literal_arrays():
    # "a dog chases a cat" and "a man" (no verb)
    dog = encode_graph({"ROOT": {"role": "ROOT", "spans": [0, 1, 2, 3, 4]}, "1": {"role": "V", "spans": [2]},
                        "2": {"role": "ARG0", "spans": [0, 1]}, "3": {"role": "ARG1", "spans": [3, 4]}},
                       [["1", "2", "ARG0"], ["1", "3", "ARG1"]], 5)
    man = encode_graph({"ROOT": {"role": "ROOT", "spans": [0, 1]}, "1": {"role": "NOUN", "spans": [0, 1]}}, [], 2)
    feats = [np.arange(10, dtype=np.float64).reshape(5, 2), np.full((2, 2), 7.0)]
    ids = [np.array([1, 2, 3, 1, 4]), np.array([1, 5])]
    out = encode_text_batch([dog, man], word_feats=feats, word_ids=ids, sent_feats=np.ones((2, 3)))
    np.testing.assert_array_equal(out["word_mask"], [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    np.testing.assert_array_equal(out["verb_spans"], [[[0, 0, 1, 0, 0]], [[0, 0, 0, 0, 0]]])
    np.testing.assert_array_equal(out["verb_mask"], [[1], [0]])
    np.testing.assert_array_equal(out["noun_spans"], [[[1, 1, 0, 0, 0], [0, 0, 0, 1, 1]],
                                                      [[1, 1, 0, 0, 0], [0, 0, 0, 0, 0]]])
    np.testing.assert_array_equal(out["noun_mask"], [[1, 1], [1, 0]])
    np.testing.assert_array_equal(out["noun_roles"], [[2, 1], [15, 0]])
    np.testing.assert_array_equal(out["noun_verb_edges"], [[[1, 1]], [[0, 0]]])
    np.testing.assert_array_equal(out["word_feats"][1], [[7, 7], [7, 7], [0, 0], [0, 0], [0, 0]])
    np.testing.assert_array_equal(out["word_ids"], [[1, 2, 3, 1, 4], [1, 5, 0, 0, 0]])
    for name, arr in out.items():
        spec = TEXT_INPUTS[name]
        assert arr.dtype == np.dtype(spec.dtype) and arr.ndim == len(spec.shape), name


def test_truncated_words_cut_the_word_features():
    g = encode_graph(EGG_NODES, EGG_EDGES, EGG_WORDS, TextLimits(max_words=9))
    out = encode_text_batch([g], word_feats=[np.ones((19, 3))])
    assert out["word_feats"].shape == (1, 9, 3) and out["verb_spans"].shape == (1, 2, 9)


def test_batch_without_any_verb_keeps_one_empty_slot():
    g = encode_graph({"1": {"role": "NOUN", "spans": [0]}}, [], 1)
    out = encode_text_batch([g])
    assert out["verb_spans"].shape == (1, 1, 1) and out["verb_mask"].tolist() == [[0]]
    assert out["noun_verb_edges"].shape == (1, 1, 1)


@pytest.mark.parametrize("nodes, edges, words, message", [
    ({"1": {"role": "V", "spans": [5]}}, [], 3, "spans \\[5\\], outside the 3 words"),
    ({"1": {"role": "V", "spans": []}}, [], 3, "non-empty list of word indices"),
    ({"1": {"spans": [0]}}, [], 3, "needs 'role' and 'spans'"),
    ({"1": {"role": "V", "spans": [0]}}, [["1", "9", "ARG0"]], 3, "unknown node '9'"),
    ({"1": {"role": "V", "spans": [0]}}, [["1"]], 3, "not \\[verb_id, arg_id, role\\]"),
    ({}, [], 0, "at least one word"),
])
def test_bad_graphs_name_the_caption(nodes, edges, words, message):
    with pytest.raises(DataError, match=f"'a dog runs': .*{message}"):
        encode_graph(nodes, edges, words, where="'a dog runs'")


def test_bad_text_batches():
    g = encode_graph({"1": {"role": "V", "spans": [0]}}, [], 2)
    with pytest.raises(DataError, match="word_feats has 3 words, its role graph 2"):
        encode_text_batch([g], word_feats=[np.ones((3, 4))])
    with pytest.raises(DataError, match="1 graphs but 2 word_ids"):
        encode_text_batch([g], word_ids=[np.ones(2), np.ones(2)])
    with pytest.raises(DataError, match=r"sent_feats must be \[1, dim\]"):
        encode_text_batch([g], sent_feats=np.ones(4))
    with pytest.raises(DataError, match="word_feats: item 1 has trailing shape"):
        encode_text_batch([g, g], word_feats=[np.ones((2, 4)), np.ones((2, 5))])
    with pytest.raises(DataError, match="empty batch"):
        encode_text_batch([])
    with pytest.raises(ConfigError, match="max_verbs must be >= 1"):
        from_dict(TextLimits, {"max_verbs": 0})


def test_video_batch_samples_pads_and_masks():
    frames = [np.arange(25, dtype=np.float64)[:, None] * np.ones((1, 2)), np.ones((3, 2))]
    regions = [f[:, None, :] * np.ones((1, 4, 1)) for f in frames]
    out = encode_video_batch(frames, regions)
    assert out["frame_feats"].shape == (2, 20, 2) and out["region_feats"].shape == (2, 20, 4, 2)
    assert out["frame_mask"].tolist() == [[1] * 20, [1, 1, 1] + [0] * 17]
    sampled = [0, 1, 3, 4, 5, 6, 8, 9, 10, 11, 13, 14, 15, 16, 18, 19, 20, 21, 23, 24]
    assert out["frame_feats"][0, :, 0].tolist() == sampled
    assert out["region_feats"][0, :, 3, 1].tolist() == sampled
    assert out["frame_feats"][1, 3:].sum() == 0 and out["region_feats"][1, 3:].sum() == 0
    for name, arr in out.items():
        assert arr.dtype == np.dtype(VIDEO_INPUTS[name].dtype), name


def test_video_batch_pads_only_to_its_longest_video():
    out = encode_video_batch([np.ones((4, 3)), np.ones((2, 3))])
    assert out["frame_feats"].shape == (2, 4, 3) and "region_feats" not in out
    np.testing.assert_array_equal(out["frame_mask"], [[1, 1, 1, 1], [1, 1, 0, 0]])


def test_bad_video_batches():
    with pytest.raises(DataError, match="video 1: frames must be"):
        encode_video_batch([np.ones((2, 3)), np.ones(3)])
    with pytest.raises(DataError, match="item 1 has trailing shape"):
        encode_video_batch([np.ones((2, 3)), np.ones((2, 4))])
    with pytest.raises(DataError, match=r"video 0: regions must be \[2 frames"):
        encode_video_batch([np.ones((2, 3))], [np.ones((3, 4, 3))])
    with pytest.raises(DataError, match="1 frame arrays but 2 region arrays"):
        encode_video_batch([np.ones((2, 3))], [np.ones((2, 4, 3))] * 2)
