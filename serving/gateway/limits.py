"""The size caps of a request, checked before any work (torch-free): each is a setting
(``common.settings.LIMITS``), refused by :class:`~serving.gateway.errors.LimitExceeded` naming it. Bytes a request
sends (files, messages) are checked where they arrive (the servicer, the decoder, gRPC itself).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from common.settings import Settings
from serving.gateway.errors import InvalidArgument, check_limit
from serving.index.milvus_index import ID_MAX, SOURCE_MAX


def check_text(settings: Settings, text: str, field: str) -> None:
    """A query's or caption's text: at most ``max_text_bytes`` UTF-8 bytes (the parser runs on it whole)."""
    check_limit(len(text.encode()), settings.max_text_bytes, "max_text_bytes", field, "UTF-8 bytes of text",
                "send one sentence")


def check_ids(settings: Settings, ids: Sequence[str], what: str, field: str) -> None:
    """Ids of one call: at least one, at most ``max_ids_per_call``, each 1..512 bytes, none repeated."""
    if not ids:
        raise InvalidArgument(f"give at least one {what}", field=field)
    check_limit(len(ids), settings.max_ids_per_call, "max_ids_per_call", field, f"{what} ids in one call",
                "split the request into several calls")
    for k, item_id in enumerate(ids):
        if not item_id or len(item_id.encode()) > ID_MAX:
            raise InvalidArgument(f"a {what} id must be 1..{ID_MAX} UTF-8 bytes, got {item_id[:40]!r}"
                                  + (f"... ({len(item_id.encode())} bytes)" if len(item_id) > 40 else ""),
                                  field=f"{field}[{k}]")
    repeated = [item_id for item_id, n in Counter(ids).items() if n > 1]
    if repeated:
        raise InvalidArgument(f"{what} ids repeat within one call: {', '.join(map(repr, sorted(repeated)[:5]))}"
                              + (f" and {len(repeated) - 5} more" if len(repeated) > 5 else "")
                              + "; send each id once", field=field)


def check_source(source: str, field: str) -> None:
    """A video's stored source: at most the Milvus field's bytes."""
    if len(source.encode()) > SOURCE_MAX:
        raise InvalidArgument(f"{field}: at most {SOURCE_MAX} UTF-8 bytes (the index's field), got "
                              f"{len(source.encode())}", field=field)


def check_features(settings: Settings, frames: np.ndarray, regions: np.ndarray | None, field: str) -> None:
    """Uploaded features: at most ``max_video_frames`` frames and ``max_regions`` regions per frame."""
    check_limit(frames.shape[0] if frames.ndim else 0, settings.max_video_frames, "max_video_frames",
                f"{field}.frames", "frames", "sample the video's frames evenly down to the limit")
    if regions is not None and regions.ndim >= 2:
        check_limit(regions.shape[1], settings.max_regions, "max_regions", f"{field}.regions", "regions per frame",
                    "keep the most salient regions")
