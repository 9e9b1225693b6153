"""The vector index Milvus builds on a collection: its type, how it is built and how a search walks it (torch-free).

========  =============================================  =============================================
type      built with                                     searched with
========  =============================================  =============================================
FLAT      nothing: every search is exact                 nothing
IVF_FLAT  ``nlist`` k-means clusters                     ``nprobe`` clusters visited (at most nlist)
HNSW      ``M`` links per node, ``efConstruction``       ``ef`` candidates kept while walking the graph
          candidates while inserting                     (at least the hits asked for: Milvus's rule)
========  =============================================  =============================================

Milvus Lite builds FLAT and IVF_FLAT only; HNSW, the usual choice on a Milvus server or cluster, is refused there
by Milvus itself, and :class:`serving.index.milvus_index.MilvusIndex` says so with the fix.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from common.errors import ConfigError
from common.settings import HNSW_EF_CONSTRUCTION_MAX, HNSW_M_RANGE, INDEX_TYPES, MAX_NLIST, Settings

# each type's build parameters: our field -> (Milvus's name, lowest, highest)
_BUILD: dict[str, dict[str, tuple[str, int, int]]] = {
    "FLAT": {},
    "IVF_FLAT": {"nlist": ("nlist", 1, MAX_NLIST)},
    "HNSW": {"m": ("M", *HNSW_M_RANGE), "ef_construction": ("efConstruction", 1, HNSW_EF_CONSTRUCTION_MAX)},
}


@dataclass(frozen=True)
class IndexSpec:
    """One index: its type and that type's build parameters (the others stay 0)."""
    type: str = "FLAT"
    nlist: int = 0
    m: int = 0
    ef_construction: int = 0

    def __post_init__(self) -> None:
        if self.type not in INDEX_TYPES:
            raise ConfigError(f"index type must be one of {', '.join(INDEX_TYPES)}, got {self.type!r}")
        own = _BUILD[self.type]
        for field in ("nlist", "m", "ef_construction"):
            value = getattr(self, field)
            if field not in own:
                if value:
                    raise ConfigError(f"{field} is not a parameter of a {self.type} index (got {value})")
                continue
            name, low, high = own[field]
            if not low <= value <= high:
                raise ConfigError(f"{self.type}'s {name} must be in {low}..{high}, got {value}")

    @classmethod
    def from_settings(cls, settings: Settings) -> "IndexSpec":
        """The index the settings ask for (``index_type`` with its own parameters)."""
        values = {"nlist": settings.index_nlist, "m": settings.index_hnsw_m,
                  "ef_construction": settings.index_hnsw_ef_construction}
        return cls(settings.index_type, **{field: values[field] for field in _BUILD[settings.index_type]})

    @classmethod
    def from_description(cls, info: Mapping[str, Any]) -> "IndexSpec":
        """The index Milvus describes (``describe_index``: its parameters flat beside the type, or under
        ``params``). A type Strata does not make is refused."""
        index_type = str(info.get("index_type") or "FLAT")
        if index_type not in INDEX_TYPES:
            raise ConfigError(f"the collection's index is {index_type}, which Strata does not search "
                              f"({', '.join(INDEX_TYPES)}): drop the collection and index again")
        nested = info.get("params") if isinstance(info.get("params"), Mapping) else {}
        found = {}
        for field, (name, _, _) in _BUILD[index_type].items():
            value = str(info.get(name, nested.get(name, "0")))
            found[field] = int(value) if value.isdigit() else 0
        return cls(index_type, **found)

    def build_params(self) -> dict[str, int]:
        """Milvus's index parameters for building it."""
        return {name: getattr(self, field) for field, (name, _, _) in _BUILD[self.type].items()}

    def search_params(self, nprobe: int, ef: int, limit: int) -> dict[str, int]:
        """Milvus's search parameters for a search of ``limit`` hits: IVF_FLAT's ``nprobe`` (at most nlist),
        HNSW's ``ef`` (at least ``limit``), nothing for FLAT."""
        if self.type == "IVF_FLAT":
            if nprobe < 1:
                raise ConfigError(f"nprobe must be >= 1, got {nprobe}")
            return {"nprobe": min(nprobe, self.nlist)}
        if self.type == "HNSW":
            if ef < 1:
                raise ConfigError(f"ef must be >= 1, got {ef}")
            return {"ef": max(ef, limit)}
        return {}

    @property
    def label(self) -> str:
        """``FLAT``, ``IVF_FLAT(nlist=1024)``, ``HNSW(M=16, efConstruction=200)``."""
        params = ", ".join(f"{name}={value}" for name, value in self.build_params().items())
        return f"{self.type}({params})" if params else self.type


FLAT = IndexSpec()
