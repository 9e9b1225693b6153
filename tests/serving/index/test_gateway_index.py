"""The gateway's collections follow the index settings (serving.gateway.version), on the session's Milvus Lite
server: IVF_FLAT made with index_nlist and searched with index_nprobe; a version whose collections exist with another
index keeps it and reports the one in force."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from common.layout import VIDEO_INDEX
from common.serving_tables import CAPTIONS, VIDEOS
from common.settings import Settings
from serving.index.milvus_index import MilvusIndex
from serving.index.spec import IndexSpec


@dataclass
class TinyModel:
    """What Version reads of a served model, for a first stage that searches the index view alone."""
    layout: object
    base: str = "hgrtiny"
    version: int = 1
    manifest: dict = field(default_factory=lambda: {"config": {}, "first_stage": {
        VIDEOS: {"strategy": "index", "depth": 20}, CAPTIONS: {"strategy": "index", "depth": 20}}})

    @property
    def index_dim(self) -> int:
        return int(self.layout.video.spec(VIDEO_INDEX).shape[-1])

    def close(self) -> None:
        pass


def version_with(settings: Settings, uri: str, base: str):
    from serving.gateway.version import Version
    from training.models.hgr.config import HGRConfig

    index = MilvusIndex.from_settings(replace(settings, milvus_uri=uri))
    return Version(TinyModel(HGRConfig().layout(), base=base), index, settings), index


def test_gateway_collections_follow_the_index_settings(milvus, tmp_path, monkeypatch, caplog):
    ivf = Settings(index_type="IVF_FLAT", index_nlist=16, index_nprobe=4, tensor_store=str(tmp_path / "tensors"))
    version, index = version_with(ivf, milvus[1], "hgrtiny")
    try:
        for kind in (VIDEOS, CAPTIONS):
            assert index.index_of(version.collections[kind]) == IndexSpec("IVF_FLAT", nlist=16)
        assert version.index_in_force() == "approximate (IVF_FLAT, nlist 16, nprobe 4)"
        rng = np.random.default_rng(0)
        name = version.collections[VIDEOS]
        index.upsert(name, [{"id": f"v{i}", "vector": rng.standard_normal(version.model.index_dim)} for i in range(40)])
        client, seen = index._client(), []
        real = client.search
        monkeypatch.setattr(client, "search", lambda *a, **kw: seen.append(kw["search_params"]) or real(*a, **kw))
        query = {"text_index": rng.standard_normal(version.model.index_dim).astype(np.float32)}
        assert len(version.first_stage.candidates(VIDEOS, query, 10)) == 10
        assert seen == [{"metric_type": "IP", "params": {"nprobe": 4}}]
        version.close()
        index.close()
        version = index = None
        # The gateway restarted with FLAT settings: the collections keep their index, Describe says which.
        flat = Settings(tensor_store=str(tmp_path / "tensors2"))
        with caplog.at_level("WARNING", logger="strata.index"):
            version, index = version_with(flat, milvus[1], "hgrtiny")
        assert "keeps its index IVF_FLAT(nlist=16); FLAT was asked for" in caplog.text
        # searched with index_nprobe (32 by default), at most the collection's nlist
        assert version.index_in_force() == "approximate (IVF_FLAT, nlist 16, nprobe 16)"
    finally:
        if version is not None:
            version.close()
        if index is not None:
            index.close()
        cleanup = MilvusIndex(milvus[1])
        for name in cleanup.collections():
            if name.startswith("hgrtiny"):
                cleanup.drop(name)
        cleanup.close()
