"""A write refused half-way (serving.gateway.writer) on the stack's real Milvus and a real tensor store: the failed
batch leaves no first-stage row and no tensors behind, an id it replaced gets its old row, first-stage row and
tensors back, and the error says how many items were committed and which id failed first."""
from __future__ import annotations

import numpy as np
import pytest

from common.layout import TEXT_INDEX, VIDEO_INDEX
from common.serving_tables import CAPTIONS, VIDEOS
from serving.gateway.errors import WriteFailed
from serving.gateway.first_stage import FirstStage
from serving.gateway.writer import Item, Writer

pytestmark = pytest.mark.slow

ROWS = 3   # rows of each matrix output (verbs, nouns, frames) in the made-up records


def record(tower, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A stored record of ``tower``'s outputs (batch axis dropped, other named axes :data:`ROWS` long)."""
    out = {}
    for spec in tower.outputs:
        shape = [ROWS if isinstance(dim, str) else int(dim) for dim in spec.shape[1:]]
        out[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
    return out


@pytest.fixture()
def parts(stack, tmp_path):
    """(writer of captions in batches of 2, index, store, first stage, layout) on collections of this test."""
    from common.connect import service_settings
    from serving.index.milvus_index import MilvusIndex
    from serving.store import open_store
    from training.models.hgr.config import HGRConfig

    layout = HGRConfig().layout()
    index = MilvusIndex(service_settings(stack[0]).milvus_uri, timeout_s=20)
    collections = {VIDEOS: "undo_videos", CAPTIONS: "undo_captions"}
    for kind, name in collections.items():
        index.ensure_collection(name, int(layout.video.spec(VIDEO_INDEX).shape[-1]), kind)
    stage = FirstStage(index, {"config": {}}, layout, collections)   # HGR's: a fused collection per kind
    stage.ensure()
    assert stage.extra, "the test needs a first stage with rows of its own"
    store = open_store(str(tmp_path / "captions"))
    try:
        yield Writer(index, store, collections[CAPTIONS], CAPTIONS, batch=2, first_stage=stage), index, store, stage, layout
    finally:
        store.close()
        for name in index.collections():
            if name.startswith("undo_"):
                index.drop(name)
        index.close()


def caption(item_id: str, text: str, layout, rng) -> Item:
    out = record(layout.text, rng)
    return Item(item_id, out, out[TEXT_INDEX], {"text": text, "video_id": "v0"})


def test_a_batch_refused_half_way_is_undone_and_the_error_counts_what_was_committed(parts):
    writer, index, store, stage, layout = parts
    rng = np.random.default_rng(0)
    old = [caption("a0", "a dog runs", layout, rng), caption("a1", "a cat sleeps", layout, rng)]
    assert writer.commit(old) == 2

    # The second batch replaces a1 and adds b3, whose text Milvus's field cannot hold: its main rows are refused
    # after its tensors and first-stage rows were written.
    new = [caption("b0", "a man cooks", layout, rng), caption("b1", "a girl sings", layout, rng),
           caption("a1", "a cat wakes up", layout, rng), caption("b3", "x" * 5000, layout, rng)]
    with pytest.raises(WriteFailed) as failed:
        writer.commit(new)
    assert (failed.value.committed, failed.value.failed_id) == (2, "a1")

    rows = index.get(writer.collection, ["a0", "a1", "b0", "b1", "b3"], ["text"])
    assert {i: r["text"] for i, r in rows.items()} == {
        "a0": "a dog runs", "a1": "a cat sleeps", "b0": "a man cooks", "b1": "a girl sings"}
    # no first-stage row of the failed batch is searchable; a1's is back
    everything = stage.candidates(CAPTIONS, record(layout.video, rng), depth=100)
    assert sorted(everything) == ["a0", "a1", "b0", "b1"]
    # no orphan tensors; a1's are its old ones
    stored = dict(zip(["a1", "b3"], store.get(["a1", "b3"])))
    assert stored["b3"] is None
    assert set(stored["a1"]) == set(old[1].record)
    for name, value in old[1].record.items():
        np.testing.assert_array_equal(stored["a1"][name], value)
    # and the failed items written again, within the field's limit, commit (the writes are upserts)
    retry = [new[2], caption("b3", "a bird flies", layout, rng)]
    assert writer.commit(retry) == 2
    assert index.count(writer.collection) == 5
    assert sorted(stage.candidates(CAPTIONS, record(layout.video, rng), depth=100)) == ["a0", "a1", "b0", "b1", "b3"]
