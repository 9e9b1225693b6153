"""One model version as the gateway holds it: the model, and per kind its Milvus collection, tensor store, first
stage and writer; ingest embeds items with the version's towers and commits them through its writers (torch-free).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from common.layout import TEXT_INDEX, VIDEO_INDEX
from common.serving_tables import CAPTIONS, VIDEOS
from common.settings import Settings
from serving.gateway.errors import InvalidArgument
from serving.gateway.evidence import FRAME_TIMES, NODE_WORDS, encode_node_words
from serving.gateway.first_stage import FirstStage
from serving.gateway.limits import check_features, check_ids, check_source, check_text
from serving.gateway.model import ServedModel
from serving.gateway.types import CaptionInput, VideoInput
from serving.gateway.writer import Item, Writer
from serving.index.milvus_index import ID_MAX
from serving.index.spec import IndexSpec
from serving.index.naming import collection_name

EMPTY_LEVELS = "empty_levels"   # stored with each caption: 1 for a level with no text node


class Version:
    """One model version: its model, and per kind its collection, tensor store and writer.

    ``users`` counts the calls running on it; a version that stopped being active is closed once the last one
    ends, so queries in flight finish on the version they started on."""

    def __init__(self, model: ServedModel, index, settings: Settings):
        from serving.store import open_store

        self.model, self.index, self.settings = model, index, settings
        self.store_dtype = np.dtype(settings.store_dtype)
        self.batch = settings.index_batch
        self.collections = {kind: collection_name(model.base, model.version, kind) for kind in (VIDEOS, CAPTIONS)}
        self.stores = {kind: open_store(f"{settings.tensor_store_root}/{name}") for kind, name in self.collections.items()}
        for kind, name in self.collections.items():
            index.ensure_collection(name, model.index_dim, kind, IndexSpec.from_settings(settings))
        # First stage: the model's strategy (recorded in its manifest) and the extra collections it needs.
        self.first_stage = FirstStage(index, model.manifest, model.layout, self.collections)
        self.first_stage.ensure()
        self.writers = {kind: Writer(index, self.stores[kind], self.collections[kind], kind, settings.index_batch,
                                     self.first_stage) for kind in self.collections}
        # what a query reads of a stored item: its tower outputs, not the source features kept beside them
        self.fetched = {VIDEOS: frozenset(model.layout.video.output_names),
                        CAPTIONS: frozenset({*model.layout.text.output_names, EMPTY_LEVELS})}
        self.users = 0
        self.retired = False

    @property
    def key(self) -> tuple[str, int]:
        return self.model.base, self.model.version

    def index_in_force(self) -> str:
        """The main collections' vector index, as Describe reports it: ``exact (FLAT)``, or the approximate index with
        its build parameters and the search's own (per kind when the two collections differ)."""
        def label(kind: str) -> str:
            spec = self.index.index_of(self.collections[kind])
            if spec.type == "FLAT":
                return "exact (FLAT)"
            searched = self.index.search_params(self.collections[kind])["params"]
            params = [f"{name} {value}" for name, value in {**spec.build_params(), **searched}.items()]
            return f"approximate ({spec.type}, {', '.join(params)})"
        labels = {kind: label(kind) for kind in self.collections}
        if len(set(labels.values())) == 1:
            return labels[VIDEOS]
        return ", ".join(f"{kind} {text}" for kind, text in labels.items())

    def count(self, kind: str) -> int:
        return self.index.count(self.collections[kind])

    def _stored(self, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Tower outputs as stored: floats in the store's precision."""
        return {k: v.astype(self.store_dtype) if v.dtype.kind == "f" else v for k, v in outputs.items()}

    def check_video(self, where: str, frames: np.ndarray, regions: np.ndarray | None, field: str) -> None:
        """Refuse features over the size caps, or that this model cannot take."""
        check_features(self.settings, frames, regions, field)
        self.model.check_video(where, frames, regions)

    def index_videos(self, videos: Sequence[VideoInput]) -> int:
        """Check, embed and commit videos (upsert by id); returns how many were written."""
        check_ids(self.settings, [v.id for v in videos], "video", "videos")
        for k, v in enumerate(videos):
            check_source(v.source, f"videos[{k}].source")
            self.check_video(f"video {v.id!r}", v.frames, v.regions, f"videos[{k}].features")
        items = []
        for start in range(0, len(videos), self.batch):
            chunk = videos[start:start + self.batch]
            outputs = self.model.embed_videos([v.frames for v in chunk], [v.regions for v in chunk])
            for v, out in zip(chunk, outputs):
                record = {**self._stored(out), "frame_feats": np.asarray(v.frames, np.float32)}
                if v.regions is not None and self.model.reads_regions:
                    record["region_feats"] = np.asarray(v.regions, np.float32)
                if v.frame_times is not None:   # the temporal evidence's seconds (tensor record format 2)
                    record[FRAME_TIMES] = np.asarray(v.frame_times, np.float64)
                items.append(Item(v.id, record, out[VIDEO_INDEX], {"source": v.source, "duration": float(v.duration)}))
        return self.writers[VIDEOS].commit(items)

    def index_captions(self, captions: Sequence[CaptionInput]) -> int:
        check_ids(self.settings, [c.id for c in captions], "caption", "captions")
        for k, c in enumerate(captions):   # all checked before anything is embedded or written
            check_text(self.settings, c.text, f"captions[{k}].text")
            if len(c.video_id.encode()) > ID_MAX:
                raise InvalidArgument(f"captions[{k}].video_id: at most {ID_MAX} UTF-8 bytes, got "
                                      f"{len(c.video_id.encode())}", field=f"captions[{k}].video_id")
        items = []
        for start in range(0, len(captions), self.batch):
            chunk = captions[start:start + self.batch]
            embedded = self.model.embed_texts([c.text for c in chunk])
            for c, out, empty, nodes in zip(chunk, embedded.items, embedded.empty, embedded.nodes):
                record = {**self._stored(out), EMPTY_LEVELS: np.asarray(empty, np.int64)}
                if self.model.layout.attentions:   # the words of its evidence (tensor record format 3)
                    record[NODE_WORDS] = encode_node_words(nodes)
                items.append(Item(c.id, record, out[TEXT_INDEX], {"text": c.text, "video_id": c.video_id}))
        return self.writers[CAPTIONS].commit(items)

    def delete(self, kind: str, ids: Sequence[str]) -> int:
        if kind not in (VIDEOS, CAPTIONS):
            raise InvalidArgument(f"kind must be videos or captions, got {kind!r}")
        check_ids(self.settings, ids, kind[:-1], "ids")
        return self.writers[kind].delete(list(ids))

    def close(self) -> None:
        for store in self.stores.values():
            store.close()
        self.model.close()

