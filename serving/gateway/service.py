"""The retrieval core behind the gRPC servicer (no gRPC here): every call runs wholly on the model version that was
active when it started.

The pieces, each in its own module: the data types (:mod:`~serving.gateway.types`), one version's resources and
ingest (:mod:`~serving.gateway.version`), which version is active (:mod:`~serving.gateway.active`), the versions
this gateway holds while old ones drain (:mod:`~serving.gateway.lifecycle`), and the queries
(:mod:`~serving.gateway.queries`). This class puts them together and answers health and describe.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from common.errors import StrataError
from common.layout import TEXT_INDEX, VIDEO_INDEX
from common.repository import TEXT_BACKBONE
from common.serving_tables import CAPTIONS, VIDEOS
from common.settings import Settings
from serving.gateway import queries
from serving.gateway.active import active_pin
from serving.gateway.errors import FailedPrecondition
from serving.gateway.lifecycle import ActiveVersions
from serving.gateway.types import Answer, CaptionInput, VideoInput, Written
from serving.gateway.version import Version
from serving.index.milvus_index import MilvusIndex
from serving.triton.swap import ensure_loaded

log = logging.getLogger("strata.gateway")


class RetrievalService:
    def __init__(self, settings: Settings, index=None, replica_name: str = ""):
        self.settings = settings
        self.index = index if index is not None else MilvusIndex.from_settings(settings, where="Milvus")
        self.versions = ActiveVersions(settings, self.index, replica_name)

    def refresh(self) -> None:
        """Follow the active-version record (see :meth:`ActiveVersions.refresh`)."""
        self.versions.refresh()

    def active(self) -> Version:
        """The active version now (not counted as in use: for what describes it, not for work on it)."""
        version = self.versions.current()
        if version is None:
            raise FailedPrecondition(f"no model version is active: {self.versions.problem}")
        return version

    def health(self) -> tuple[bool, str]:
        """(serving, why not): Milvus and Triton reachable and a version active."""
        if not self.index.ping():
            return False, "Milvus is unreachable"
        version = self.versions.current()
        if version is None:
            return False, f"no model version is active: {self.versions.problem}"
        ready = self._triton_ready(version)
        if ready is None:
            return False, "Triton is unreachable"
        return (True, "") if ready else (False, f"Triton does not have {version.key[0]} version {version.key[1]} ready")

    def restore(self) -> None:
        """Load the active version into a Triton that answers without it: one restarted by anything other than
        ``strata up`` (after a crash, or by ``strata triton start``) loads each model's latest version, not the
        active one. Its files are checked against the active record's pin first, as ``strata up`` checks them."""
        version = self.versions.current()
        if version is None or self._triton_ready(version) is not False:
            return
        try:
            ensure_loaded(self.settings.triton_url, self.settings.repository, *version.key,
                          version.model.backbone_version, active_pin(self.index))
            log.info("reloaded %s version %d into Triton", *version.key)
        except StrataError as err:
            log.warning("cannot reload %s version %d into Triton: %s", *version.key, err)

    @staticmethod
    def _triton_ready(version: Version) -> bool | None:
        """Whether Triton answers with every model of ``version``; None when Triton does not answer at all.

        Triton reports a model that it reloads (a swap adding or retiring a version beside it), and itself, as not
        ready while the loaded instances keep answering; so where the readiness API says no, one real call through
        the backbone and both towers decides."""
        model = version.model
        client = model.towers.client
        try:
            parts = [m.name for m in model.towers.models.values()] + [TEXT_BACKBONE]
            if client.is_server_ready(client_timeout=2) and all(
                    client.is_model_ready(name, str(v), client_timeout=2) for name, v in
                    zip(parts, [model.version] * 3 + [model.backbone_version])):
                return True
        except Exception:  # noqa: BLE001 - any failure to reach Triton means not serving
            return None
        frames = np.zeros((1, model.frame_dim), np.float32)
        regions = np.zeros((1, 1, model.region_dim), np.float32) if model.reads_regions else None
        try:
            model.embed_texts(["a person is walking"])
            model.embed_videos([frames], [regions])
            return True
        except Exception:  # noqa: BLE001 - whatever fails, this version does not answer now
            return False

    # -- queries -----------------------------------------------------------------------------------------------
    def search_videos(self, text: str, top_k: int = 0, depth: int = 0, evidence: bool = False) -> Answer:
        with self.versions.using() as version:
            return queries.search_videos(version, self.settings, text, top_k, depth, evidence)

    def search_captions(self, video_id: str = "", frames: np.ndarray | None = None,
                        regions: np.ndarray | None = None, top_k: int = 0, depth: int = 0,
                        evidence: bool = False, frame_times: np.ndarray | None = None) -> Answer:
        with self.versions.using() as version:
            return queries.search_captions(version, self.settings, video_id, frames, regions, top_k, depth,
                                           evidence, frame_times)

    def score_videos(self, text: str, video_ids: Sequence[str], evidence: bool = False) -> Answer:
        with self.versions.using() as version:
            return queries.score_videos(version, self.settings, text, video_ids, evidence)

    # -- ingest ------------------------------------------------------------------------------------------------
    def index_videos(self, videos: Sequence[VideoInput]) -> Written:
        with self.versions.using() as version:
            return Written(version.index_videos(videos), version.count(VIDEOS), *version.key)

    def index_captions(self, captions: Sequence[CaptionInput]) -> Written:
        with self.versions.using() as version:
            return Written(version.index_captions(captions), version.count(CAPTIONS), *version.key)

    def delete(self, kind: str, ids: Sequence[str]) -> Written:
        with self.versions.using() as version:
            return Written(version.delete(kind, ids), version.count(kind), *version.key)

    def describe(self) -> dict:
        with self.versions.using() as version:
            return {
                **version.model.describe(),
                "videos": version.count(VIDEOS),
                "captions": version.count(CAPTIONS),
                "index_view": f"{VIDEO_INDEX} / {TEXT_INDEX}, inner product, {version.index_in_force()}; first "
                              f"stage: {version.first_stage.describe()}",
                "store_dtype": self.settings.store_dtype,
                "default_top_k": self.settings.top_k,
                "default_candidate_depth": queries.default_depth(self.settings, version, VIDEOS),
            }

    def close(self) -> None:
        self.versions.close()
