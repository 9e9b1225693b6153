"""How Strata names its Milvus collections (and the tensor stores beside them), in one place (torch-free).

Each model version owns a collection per kind, ``<base>_v<N>_<kind>`` (``hgr_fast_v2_videos``), with a tensor store
of the same name, and a first stage other than the plain index view keeps its rows in
``<collection>_<strategy>``.
"""
from __future__ import annotations

from collections.abc import Iterable


def collection_name(base: str, version: int, kind: str) -> str:
    return f"{base}_v{version}_{kind}"


def first_stage_collection(collection: str, strategy: str) -> str:
    """The collection of a first stage's own rows for the items of ``collection``."""
    return f"{collection}_{strategy}"


def owned_collections(base: str, version: int, kinds: Iterable[str], strategies: Iterable[str]) -> list[str]:
    """Every collection a version may own: its main collections and any first stage's."""
    names = []
    for kind in kinds:
        main = collection_name(base, version, kind)
        names += [first_stage_collection(main, strategy) for strategy in strategies] + [main]
    return names
