"""Temporal evidence end to end, through the client library: asked for, a hit carries per level and per text node
the attention the version's exported scorer gave each of the video's frames (equal to offline ONNX Runtime scoring
of the same version), labelled with the node's words; a level of one vector per item says it has none; not asked
for, nothing is sent. The session's corpus was indexed from features, so its frames have no times.

Tolerance: the tensor store keeps float16, so weights are compared with offline scoring of the rounded tensors
within ``ROUNDED_ATOL`` (as the scores are in test_gateway.py)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from common.layout import ATTENTION_PREFIX, LEVEL_SCORES, SCORE
from tests.serving.gateway.corpus import VIDEOS, sample_captions
from tests.serving.gateway.offline import rounded
from tests.serving.gateway.test_gateway import ROUNDED_ATOL, offline  # noqa: F401 - the module's fixture

pytestmark = pytest.mark.slow

QUERY = "a man is slicing bread in a kitchen"
ATTENDING = {"action": "verb_mask", "entity": "noun_mask"}   # HGR's attending levels and the nodes they read


OUTPUTS = (SCORE, LEVEL_SCORES, *(ATTENTION_PREFIX + level for level in ATTENDING))


def check_hit(evidence, attention: dict[str, np.ndarray], text_inputs: dict, text: int, video: int, frames: int,
              text_said: str) -> None:
    """One hit's evidence against the offline attention of pair (text, video)."""
    assert [level.level for level in evidence] == ["event", "action", "entity"]
    event, *attending = evidence
    assert not event.temporal and not event.nodes          # one vector per item: no temporal evidence
    for level in attending:
        assert level.temporal
        nodes = int(text_inputs[ATTENDING[level.level]][text].sum())
        assert len(level.nodes) == nodes > 0
        expected = attention[ATTENTION_PREFIX + level.level][text, video]
        for i, node in enumerate(level.nodes):
            assert node.words and all(word in text_said for word in node.words.split())
            assert [f.frame for f in node.frames] == list(range(frames))
            assert all(f.time_s == -1.0 for f in node.frames)   # indexed from features: no timing
            weights = np.array([f.weight for f in node.frames])
            assert weights.sum() == pytest.approx(1.0, abs=1e-3)
            np.testing.assert_allclose(weights, expected[i, :frames], atol=ROUNDED_ATOL)


def test_text_to_video_hits_carry_the_scorers_attention_when_asked(client, offline):  # noqa: F811
    reference, ids, videos = offline
    text_inputs = reference.text_inputs([QUERY])
    texts = reference.runner.encode_text(text_inputs)
    out = reference.runner.score(texts, rounded(videos), OUTPUTS)
    answer = client.search_videos(QUERY, top_k=5, candidate_depth=VIDEOS, evidence=True)
    assert "evidence" in {t.stage for t in answer.timings}
    for hit in answer.hits:
        j = ids.index(hit.id)
        check_hit(hit.evidence, out, text_inputs, 0, j, int(videos["video_frame_mask"][j].sum()),
                  QUERY)
    plain = client.search_videos(QUERY, top_k=5, candidate_depth=VIDEOS)
    assert [h.id for h in plain.hits] == [h.id for h in answer.hits]
    assert all(len(h.evidence) == 0 for h in plain.hits) and "evidence" not in {t.stage for t in plain.timings}


def test_video_to_text_and_scored_videos_carry_it_from_the_captions_side(client, offline):  # noqa: F811
    reference, ids, videos = offline
    captions = sample_captions(VIDEOS)
    j = ids.index("vid0003")
    one = {k: v[j:j + 1] for k, v in rounded(videos).items()}
    answer = client.search_captions(video_id="vid0003", top_k=4, candidate_depth=VIDEOS, evidence=True)
    for hit in answer.hits:
        text_inputs = reference.text_inputs([hit.text])
        out = reference.runner.score(rounded(reference.runner.encode_text(text_inputs)), one,
                                     OUTPUTS)
        check_hit(hit.evidence, out, text_inputs, 0, 0, int(videos["video_frame_mask"][j].sum()),
                  hit.text)
    assert {hit.text for hit in answer.hits} <= set(captions)
    scored = client.score_videos(QUERY, ["vid0007", "vid0001"], evidence=True)
    assert all(len(h.evidence) == 3 for h in scored.hits)


def test_caption_hits_read_their_node_words_from_their_records(stack, client):
    """Kept at ingest (tensor record format 3), they are the words a new parse gives; a caption whose record has
    none (stored before, or absent) is parsed again."""
    from common.serving_tables import CAPTIONS
    from evaluation.bench.floor import in_process_version
    from serving.gateway.evidence import NODE_WORDS, caption_nodes

    settings, state = stack
    hits = [(hit.id, hit.text) for hit in client.search_captions(video_id="vid0003", top_k=4).hits]
    with in_process_version(settings, state.model, state.version) as (version, _):
        records = version.stores[CAPTIONS].get([item for item, _ in hits], {NODE_WORDS})
        assert all(NODE_WORDS in record for record in records)
        parsed = version.model.text_nodes([text for _, text in hits])
        assert all(nodes["verbs"] or nodes["nouns"] for nodes in parsed)
        assert caption_nodes(version, hits) == parsed
        never_stored = ("not-a-stored-caption", "a dog chases a man")
        assert caption_nodes(version, [*hits, never_stored])[-1] == version.model.text_nodes([never_stored[1]])[0]


def test_a_version_exported_before_scorers_gave_attention_is_refused_with_the_fix():
    from serving.gateway.evidence import refusal
    from training.models.factory import resolve_config

    config = resolve_config("hgr", "fast")
    layout = config.layout()
    assert refusal(layout, dataclasses.asdict(config)) == ""
    older = dataclasses.replace(layout, scorer=dataclasses.replace(layout.scorer, outputs=tuple(
        s for s in layout.scorer.outputs if not s.name.startswith(ATTENTION_PREFIX))))
    assert "export its checkpoint again" in refusal(older, dataclasses.asdict(config))
    vsepp = resolve_config("vsepp", "fast")   # no level attends over frames: nothing to refuse
    assert refusal(vsepp.layout(), dataclasses.asdict(vsepp)) == ""
