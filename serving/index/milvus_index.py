"""The gateway's vector index on Milvus (torch-free): collections of videos or captions, searched by inner product.

``MilvusIndex(uri)`` talks to any Milvus reachable by URI: the local Milvus Lite server
(:mod:`serving.index.milvus_server`) or a Milvus standalone or cluster.

Collections. ``ensure_collection(name, dim, kind)`` makes (or checks) a collection of one ``kind``:

=========  ===============================================================================================
videos     ``id`` VARCHAR(512) primary key, ``vector`` FLOAT_VECTOR(dim), ``source`` VARCHAR,
           ``duration`` FLOAT (-1 when unknown)
captions   ``id`` VARCHAR(512) primary key, ``vector`` FLOAT_VECTOR(dim), ``text`` VARCHAR(4096),
           ``video_id`` VARCHAR (may be empty)
=========  ===============================================================================================

The metric is IP (inner product: some models' index vectors are not unit-norm), the index FLAT (exact) unless
asked for another (:class:`serving.index.spec.IndexSpec`: IVF_FLAT or, on a Milvus server, HNSW; the settings
``index_type`` and its parameters when the gateway makes the index). An existing collection keeps the index it was
made with: ``ensure_collection`` logs a warning when that is not the one asked for, and searches use the index in
force (IVF_FLAT's ``nprobe`` at most its own ``nlist``, HNSW's ``ef`` at least the hits asked for); ``index_of``
says which it is. An index Milvus will not build (HNSW on Milvus Lite) is refused with ``ConfigError`` naming the
fix, and the collection it would have indexed is not left behind. The kind and the schema's version are recorded in the collection's description
(``strata:<kind>;schema=<SCHEMA_VERSION>``); an existing collection of another kind or dim is refused, and so is
one of another schema version, naming the fix. A description without ``;schema=`` was written before collections
named their version, with the fields of version 1, and is read as version 1. Collections are created with Strong
consistency, so a read sees every acknowledged write (``count`` is exact right after an upsert or delete); the
first-stage search asks for the level the setting ``search_consistency`` names (Strong unless set: on a Milvus
cluster, Bounded or Session spares a query the wait for the latest writes).

Writes are upserts: writing an id again replaces its row, so a rerun of an interrupted ingest leaves every item
exactly once. They are sent in batches of at most ``MAX_BATCH_ROWS`` rows and ``MAX_BATCH_BYTES`` bytes (one
call of 10,000 rows of 256-d vectors has been seen to hang).

Search order. Hits come best first; equal scores are ordered by id ascending. Milvus's own order for equal scores
is not defined, and a group of equal scores may straddle the ``limit`` cut-off, so each search asks Milvus for
``limit + tie_margin`` hits, sorts them by (score descending, id ascending), and keeps ``limit``. The result is
deterministic unless more than ``tie_margin`` hits beyond the cut-off tie with the last one kept.

State. A small key-value record lives in Milvus itself (collection ``strata_state``: ``key`` VARCHAR primary key,
``value`` VARCHAR holding JSON, and a 2-d dummy vector because Milvus requires a vector field), so every gateway
replica reads the same active model version. ``collections()`` does not list it.

Aliases are not offered: Milvus Lite's server answers ``create_alias`` / ``alter_alias`` with UNIMPLEMENTED, so
the active collection is named in the state record instead.

Errors: an unreachable Milvus raises :class:`IndexUnavailable` naming the URI without its credentials (or only
"Milvus", for a server whose messages reach its callers: ``MilvusIndex(uri, where="Milvus")``); bad input (wrong dim, missing id,
unknown field) raises ``DataError``; an error Milvus answers, :class:`IndexRefused` (a ``DataError``) with its code; a bad request (unknown kind, collection of another kind) ``ConfigError``.
pymilvus retries a failing call up to 75 times (minutes) unless given a timeout, so every call passes one: the
index's own, cut to the time the gateway's caller has left (:mod:`common.deadline`; a caller gone raises
``DeadlineExpired`` and nothing is sent).
"""
from __future__ import annotations

import json
import logging
import math
import socket
from typing import Any, Iterable, Iterator, Mapping, Sequence
from urllib.parse import urlparse

import numpy as np

from common.connect import milvus_client, public_uri
from common.deadline import DeadlineExpired, call_timeout, caller_gone
from common.errors import ConfigError, DataError, StrataError
from common.serving_tables import CAPTIONS, VIDEOS
from common.settings import CONSISTENCY_LEVELS, LITE_INDEX_TYPES, MAX_NLIST, TEXT_FIELD_BYTES, Settings
from serving.index.spec import FLAT, IndexSpec

log = logging.getLogger("strata.index")

KINDS = (VIDEOS, CAPTIONS)
METRIC = "IP"
ID_MAX = 512
TEXT_MAX = TEXT_FIELD_BYTES
SOURCE_MAX = 4096
STATE_COLLECTION = "strata_state"
STATE_VALUE_MAX = 65535
MAX_BATCH_ROWS = 1000
MAX_BATCH_BYTES = 4 << 20           # per upsert call, counting vectors and strings
MAX_TOPK = 16384                    # Milvus's limit on one search's hits
ID_CHUNK = 1000                     # ids per get / exists / delete call
COLLECTION_NOT_FOUND = 100          # Milvus's error code (pymilvus ErrorCode.COLLECTION_NOT_FOUND)
SCHEMA_VERSION = 1                  # of every collection's fields; raise it when they change


class IndexUnavailable(StrataError):
    """Milvus could not be reached (or did not answer in time)."""


class IndexRefused(DataError):
    """Milvus answered a call with an error; ``milvus_code`` is its error code (pymilvus's ``ErrorCode``: 8 rate
    limit, 9 writes denied by a quota, 100 no such collection, ...), or None for pymilvus's own refusal."""

    def __init__(self, message: str, milvus_code: int | None = None):
        super().__init__(message)
        self.milvus_code = milvus_code


# Metadata fields of each kind: name -> (Milvus type name, max length or None, default)
_METADATA: dict[str, dict[str, tuple[str, int | None, Any]]] = {
    "videos": {"source": ("VARCHAR", SOURCE_MAX, ""), "duration": ("FLOAT", None, -1.0)},
    "captions": {"text": ("VARCHAR", TEXT_MAX, ""), "video_id": ("VARCHAR", ID_MAX, "")},
}


def metadata_fields(kind: str) -> tuple[str, ...]:
    return tuple(_METADATA[kind])


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def described(body: str) -> str:
    """A collection's description: what it holds and the schema version it was made with."""
    return f"strata:{body};schema={SCHEMA_VERSION}"


def described_body(name: str, description: str, where: str) -> str:
    """What a Strata collection's description says it holds (``videos``, ``levels:...``); ``ConfigError`` for a
    collection Strata did not make, or one of another schema version (with the fix)."""
    if not description.startswith("strata:"):
        raise ConfigError(f"collection {name} on {where} was not made by Strata (description {description!r})")
    body, marked, version = description.removeprefix("strata:").partition(";schema=")
    found = int(version) if version.isdigit() else version if marked else 1   # unmarked: made before the mark, v1
    if found == SCHEMA_VERSION:
        return body
    if isinstance(found, int) and found > SCHEMA_VERSION:
        raise ConfigError(f"collection {name} on {where} has schema version {found}, made by a newer Strata (this "
                          f"one reads version {SCHEMA_VERSION}): upgrade Strata")
    raise ConfigError(f"collection {name} on {where} has schema version {found!r}, not {SCHEMA_VERSION}: re-embed "
                      f"the corpus into collections of this schema (strata swap to a new version), or drop it and "
                      f"index again")


def _unavailable_error(err: BaseException) -> bool:
    """Whether a pymilvus / gRPC error means "cannot reach the server" (rather than a bad request)."""
    import grpc

    if isinstance(err, grpc.RpcError) and hasattr(err, "code"):
        return err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    text = str(err).lower()
    return any(word in text for word in ("unavailable", "failed to connect", "connection refused", "deadline",
                                         "retry timeout", "retry run out", "timeout", "fail connecting"))


class MilvusIndex:
    """Collections of id -> (vector, metadata) on one Milvus, searched by inner product."""

    def __init__(self, uri: str, timeout_s: float = 10.0, tie_margin: int = 16, where: str = "",
                 settings: Settings | None = None, nprobe: int = 16, ef: int = 256, consistency: str = "Strong"):
        if timeout_s <= 0:
            raise ConfigError(f"MilvusIndex timeout_s must be > 0, got {timeout_s}")
        if not 1 <= nprobe <= MAX_NLIST:
            raise ConfigError(f"MilvusIndex nprobe must be in 1..{MAX_NLIST}, got {nprobe}")
        if ef < 1:
            raise ConfigError(f"MilvusIndex ef must be >= 1, got {ef}")
        self.nprobe = int(nprobe)   # IVF_FLAT clusters a search visits, unless the call says
        self.ef = int(ef)           # HNSW candidates a search keeps (at least the hits asked for)
        if consistency not in CONSISTENCY_LEVELS:
            raise ConfigError(f"MilvusIndex consistency must be one of {', '.join(CONSISTENCY_LEVELS)}, "
                              f"got {consistency!r}")
        self.consistency = consistency   # search()'s level; counts, gets and the state record read Strong
        self.uri, self.settings = uri, settings
        self.where = where or f"Milvus at {public_uri(uri)}"   # what messages call it: never its credentials
        self.timeout_s = float(timeout_s)
        self.tie_margin = int(tie_margin)
        self._client_obj = None
        self._schemas: dict[str, tuple[str, int]] = {}   # name -> (kind, dim)
        self._indexes: dict[str, IndexSpec] = {}   # name -> the index in force

    @classmethod
    def from_settings(cls, settings: Settings, where: str = "") -> "MilvusIndex":
        """The index on the Milvus the settings name (``milvus_uri``, else the local one), with their deadline and
        credentials; ``where``: what its messages call it."""
        return cls(settings.milvus, timeout_s=settings.request_timeout_s, where=where, settings=settings,
                   nprobe=settings.index_nprobe, ef=settings.index_hnsw_ef, consistency=settings.search_consistency)

    # -- connection -----------------------------------------------------------------------------------------
    def _client(self):
        if self._client_obj is None:
            if not self._reachable(min(self.timeout_s, 2.0)):
                raise IndexUnavailable(f"{self.where} is unreachable (nothing accepts connections there)")
            try:
                self._client_obj = milvus_client(self.uri, self.timeout_s, self.settings)
            except Exception as err:  # noqa: BLE001 - pymilvus raises MilvusException for everything
                raise IndexUnavailable(f"{self.where} is unreachable: {err}") from None
        return self._client_obj

    def _reachable(self, timeout: float) -> bool:
        """A plain TCP connect to an http(s)/tcp URI (True for a local-file URI)."""
        parsed = urlparse(self.uri)
        if parsed.scheme not in ("http", "https", "tcp", "grpc") or not parsed.hostname:
            return True
        port = parsed.port or (443 if parsed.scheme == "https" else 19530)
        try:
            with socket.create_connection((parsed.hostname, port), timeout=timeout):
                return True
        except OSError:
            return False

    def close(self) -> None:
        """Close this index's connection (other MilvusIndex objects keep theirs)."""
        if self._client_obj is not None:
            try:
                self._client_obj.close()
            except Exception:  # noqa: BLE001
                pass
            self._client_obj = None

    def _call(self, what: str, fn, *args, **kwargs):
        """Run a client call with this index's timeout, cut to the time the caller of the call being served has
        left (:mod:`common.deadline`); connection failures become IndexUnavailable."""
        timeout = call_timeout("milvus", self.timeout_s, f"Milvus ({what})")
        client = self._client()
        try:
            return fn(client, *args, timeout=timeout, **kwargs)
        except StrataError:
            raise
        except Exception as err:  # noqa: BLE001
            if caller_gone():   # the caller's time ran out, not Milvus's: keep the connection
                raise DeadlineExpired(f"the caller's deadline ran out during {what}") from None
            if _unavailable_error(err) or not self._reachable(1.0):
                # A fresh channel next time: gRPC backs off reconnecting a failed one for up to two minutes.
                self.close()
                raise IndexUnavailable(f"{self.where} did not answer {what}: {err}") from None
            raise IndexRefused(f"{self.where} refused {what}: {err}", getattr(err, "code", None)) from None

    def ping(self, timeout_s: float = 1.0) -> bool:
        """True if Milvus answers a cheap call within about ``timeout_s`` seconds; never raises."""
        if not self._reachable(timeout_s):
            self.close()
            return False
        try:
            self._client().list_collections(timeout=timeout_s)
            return True
        except Exception:  # noqa: BLE001
            self.close()
            return False

    # -- collections ----------------------------------------------------------------------------------------
    def collections(self) -> list[str]:
        """Names of the collections (the state collection excluded), sorted."""
        names = self._call("list_collections", lambda c, **kw: c.list_collections(**kw))
        return sorted(n for n in names if n != STATE_COLLECTION)

    def has(self, name: str) -> bool:
        return bool(self._call(f"has_collection {name}", lambda c, **kw: c.has_collection(name, **kw)))

    def ensure_collection(self, name: str, dim: int, kind: str, spec: IndexSpec = FLAT) -> IndexSpec:
        """Create collection ``name`` (or check the existing one), index it as ``spec`` says and load it for search;
        returns the index in force. An existing collection keeps its own index (logged when it is not the one asked
        for: the setting applies to collections made from now on)."""
        if kind not in KINDS:
            raise ConfigError(f"collection kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ConfigError(f"collection {name}: dim must be a positive integer, got {dim!r}")
        if name == STATE_COLLECTION:
            raise ConfigError(f"{STATE_COLLECTION} is Strata's state record, not an index collection")
        if self.has(name):
            have_kind, have_dim = self._schema(name)
            if (have_kind, have_dim) != (kind, int(dim)):
                raise ConfigError(f"collection {name} on {self.where} holds {have_kind} of dim {have_dim}, not "
                                  f"{kind} of dim {dim}: use another name, or drop it first")
            have = self.index_of(name)
            if have != spec:
                log.warning("collection %s on %s keeps its index %s; %s was asked for (it applies to collections "
                            "made from now on: swap to a new version, or drop the collection and index again, to "
                            "change it)", name, self.where, have.label, spec.label)
        else:
            self._create(name, self._build_schema(int(dim), kind), self._index_params(spec), spec)
            self._schemas[name] = (kind, int(dim))
            self._indexes[name] = spec
        self._call(f"load_collection {name}", lambda c, **kw: c.load_collection(name, **kw))
        return self.index_of(name)

    def index_of(self, name: str, field: str = "vector") -> IndexSpec:
        """The index in force on ``name``'s vector field."""
        if name not in self._indexes:
            info = self._call(f"describe_index {name}", lambda c, **kw: c.describe_index(name, field, **kw)) or {}
            self._indexes[name] = IndexSpec.from_description(info)
        return self._indexes[name]

    def search_params(self, name: str, nprobe: int | None = None, limit: int = 1, ef: int | None = None
                      ) -> dict[str, Any]:
        """Milvus's search parameters for ``name`` and a search of ``limit`` hits: the metric, and the index's own
        (IVF_FLAT's ``nprobe``, HNSW's ``ef``: this index's unless given)."""
        params = self.index_of(name).search_params(self.nprobe if nprobe is None else int(nprobe),
                                                   self.ef if ef is None else int(ef), limit)
        return {"metric_type": METRIC, **({"params": params} if params else {})}

    def _build_schema(self, dim: int, kind: str):
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False, description=described(kind))
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=ID_MAX)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        for field, (type_name, max_length, _) in _METADATA[kind].items():
            extra = {"max_length": max_length} if max_length else {}
            schema.add_field(field, getattr(DataType, type_name), **extra)
        return schema

    def _index_params(self, spec: IndexSpec, field: str = "vector"):
        from pymilvus import MilvusClient

        params = MilvusClient.prepare_index_params()
        build = spec.build_params()
        params.add_index(field, index_type=spec.type, metric_type=METRIC, **({"params": build} if build else {}))
        return params

    def _create(self, name: str, schema, index_params, spec: IndexSpec = FLAT) -> None:
        """Create ``name`` and build ``index_params`` (``spec``'s, for messages); an index Milvus refuses leaves no
        collection behind (pymilvus creates the collection before it asks for the index)."""
        try:
            self._call(f"create_collection {name}", lambda c, **kw: c.create_collection(
                name, schema=schema, index_params=index_params, consistency_level="Strong", **kw))
        except IndexRefused as err:
            if self.has(name):
                self.drop(name)
            hint = ("; Milvus Lite builds FLAT and IVF_FLAT only: set index_type to one of those, or milvus_uri to "
                    "a Milvus server" if spec.type not in LITE_INDEX_TYPES else "")
            raise ConfigError(f"{self.where} would not make collection {name} with a {spec.label} index ({err})"
                              f"{hint}") from None

    def _schema(self, name: str) -> tuple[str, int]:
        """(kind, dim) of an existing collection."""
        if name not in self._schemas:
            if not self.has(name):
                raise IndexRefused(f"no collection {name} on {self.where} (ensure_collection first)",
                                   COLLECTION_NOT_FOUND)
            info = self._call(f"describe_collection {name}", lambda c, **kw: c.describe_collection(name, **kw))
            description = info.get("description", "")
            kind = described_body(name, description, self.where)
            if kind not in KINDS:
                raise ConfigError(f"collection {name} on {self.where} was not made by Strata (description {description!r})")
            dims = [f["params"]["dim"] for f in info["fields"] if f["name"] == "vector"]
            self._schemas[name] = (kind, int(dims[0]))
        return self._schemas[name]

    def drop(self, name: str) -> None:
        self._schemas.pop(name, None)
        self._indexes.pop(name, None)
        self._call(f"drop_collection {name}", lambda c, **kw: c.drop_collection(name, **kw))

    # -- writes ---------------------------------------------------------------------------------------------
    def upsert(self, name: str, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert or replace ``rows`` ({id, vector, ...metadata}); returns how many distinct ids were written.

        An id given twice in one call keeps its last row.
        """
        kind, dim = self._schema(name)
        clean: dict[str, dict[str, Any]] = {}
        for row in rows:
            item = self._row(name, kind, dim, row)
            clean.pop(item["id"], None)
            clean[item["id"]] = item
        batch: list[dict[str, Any]] = []
        size = 0
        for item in clean.values():
            nbytes = 4 * dim + sum(len(v) for v in item.values() if isinstance(v, str)) + 16
            if batch and (len(batch) >= MAX_BATCH_ROWS or size + nbytes > MAX_BATCH_BYTES):
                self._call(f"upsert into {name}", lambda c, b=batch, **kw: c.upsert(name, b, **kw))
                batch, size = [], 0
            batch.append(item)
            size += nbytes
        if batch:
            self._call(f"upsert into {name}", lambda c, b=batch, **kw: c.upsert(name, b, **kw))
        return len(clean)

    @staticmethod
    def _row(name: str, kind: str, dim: int, row: Mapping[str, Any]) -> dict[str, Any]:
        fields = _METADATA[kind]
        unknown = set(row) - {"id", "vector", *fields}
        if unknown:
            raise DataError(f"{name}: unknown field(s) {', '.join(sorted(unknown))} for a {kind} row "
                            f"(fields: id, vector, {', '.join(fields)})")
        key = row.get("id")
        if not isinstance(key, str) or not key or len(key.encode()) > ID_MAX:
            raise DataError(f"{name}: every row needs an id, a non-empty string of at most {ID_MAX} bytes, got {key!r}")
        vector = np.asarray(row.get("vector"), dtype=np.float32)
        if vector.shape != (dim,):
            raise DataError(f"{name}: row {key!r} has a vector of shape {vector.shape}; the collection's dim is {dim}")
        if not np.isfinite(vector).all():
            raise DataError(f"{name}: row {key!r} has a non-finite vector")
        item: dict[str, Any] = {"id": key, "vector": vector.tolist()}
        for field, (type_name, max_length, default) in fields.items():
            value = row.get(field, default)
            if value is None:
                value = default
            if type_name == "VARCHAR":
                if not isinstance(value, str) or len(value.encode()) > max_length:
                    raise DataError(f"{name}: row {key!r} field {field} must be a string of at most {max_length} bytes")
            else:
                value = float(value)
                if not math.isfinite(value):
                    raise DataError(f"{name}: row {key!r} field {field} must be finite, got {value}")
            item[field] = value
        return item

    def delete(self, name: str, ids: Iterable[str]) -> int:
        """Delete ``ids``; returns how many of them existed."""
        present = self.exists(name, ids)
        for chunk in _chunks(sorted(present), ID_CHUNK):
            self._call(f"delete from {name}", lambda c, b=list(chunk), **kw: c.delete(name, ids=b, **kw))
        return len(present)

    # -- reads ----------------------------------------------------------------------------------------------
    def get(self, name: str, ids: Iterable[str], fields: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
        """Rows of the ``ids`` that exist: id -> {field: value}; ``fields`` default: the metadata fields.

        Ask for ``"vector"`` to get the vector as a float32 array.
        """
        kind, _ = self._schema(name)
        fields = list(fields) if fields is not None else list(_METADATA[kind])
        unknown = set(fields) - {"id", "vector", *_METADATA[kind]}
        if unknown:
            raise DataError(f"{name}: unknown field(s) {', '.join(sorted(unknown))} (fields: id, vector, "
                            f"{', '.join(_METADATA[kind])})")
        wanted = list(dict.fromkeys(str(i) for i in ids))
        out: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(wanted, ID_CHUNK):
            rows = self._call(f"get from {name}", lambda c, b=list(chunk), **kw: c.get(
                name, ids=b, output_fields=["id", *fields], **kw))
            for row in rows:
                item = {f: row[f] for f in fields}
                if "vector" in item:
                    item["vector"] = np.asarray(item["vector"], dtype=np.float32)
                out[row["id"]] = item
        return out

    def exists(self, name: str, ids: Iterable[str]) -> set[str]:
        """Which of ``ids`` are in the collection."""
        return set(self.get(name, ids, fields=["id"]))

    def count(self, name: str) -> int:
        """Exact number of rows (``count(*)`` under Strong consistency: exact after upserts and deletes)."""
        self._schema(name)
        result = self._call(f"count {name}", lambda c, **kw: c.query(
            name, filter="", output_fields=["count(*)"], consistency_level="Strong", **kw))
        return int(result[0]["count(*)"])

    def search(self, name: str, vectors: np.ndarray, limit: int, filter: str = "", nprobe: int | None = None,
               ef: int | None = None) -> list[list[tuple[str, float]]]:
        """For each query row of ``vectors`` [q, dim] (float32): up to ``limit`` (id, inner product), best first.

        Equal scores are ordered by id ascending (see the module docstring). ``filter`` is a Milvus boolean
        expression over the metadata fields, e.g. ``'video_id == "v7"'`` or ``'duration > 10'``. ``nprobe``: the
        IVF_FLAT clusters to visit, ``ef`` the HNSW candidates to keep (default: this index's; each ignored by the
        other types).
        """
        _, dim = self._schema(name)
        queries = np.asarray(vectors, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None]
        if queries.ndim != 2 or queries.shape[1] != dim:
            raise DataError(f"{name}: queries must be [q, {dim}], got shape {tuple(np.shape(vectors))}")
        if not np.isfinite(queries).all():
            raise DataError(f"{name}: queries hold non-finite values")
        if not 1 <= limit <= MAX_TOPK:
            raise ConfigError(f"search limit must be in 1..{MAX_TOPK}, got {limit}")
        if len(queries) == 0:
            return []
        fetch = min(limit + self.tie_margin, MAX_TOPK)
        params = self.search_params(name, nprobe, fetch, ef)
        results = self._call(f"search {name}", lambda c, **kw: c.search(
            name, data=queries.tolist(), limit=fetch, filter=filter, output_fields=[], anns_field="vector",
            search_params=params, consistency_level=self.consistency, **kw))
        out = []
        for hits in results:
            pairs = sorted(((hit["id"], float(hit["distance"])) for hit in hits), key=lambda p: (-p[1], p[0]))
            out.append(pairs[:limit])
        return out

    # -- state record -----------------------------------------------------------------------------------------
    def _ensure_state(self) -> None:
        if STATE_COLLECTION in self._schemas:
            return
        if self.has(STATE_COLLECTION):
            info = self._call("describe state", lambda c, **kw: c.describe_collection(STATE_COLLECTION, **kw))
            described_body(STATE_COLLECTION, info.get("description", ""), self.where)
        else:
            from pymilvus import DataType, MilvusClient

            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False, description=described("state"))
            schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=ID_MAX)
            schema.add_field("value", DataType.VARCHAR, max_length=STATE_VALUE_MAX)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=2)   # Milvus requires a vector field
            self._create(STATE_COLLECTION, schema, self._index_params(FLAT))
        self._call("load state", lambda c, **kw: c.load_collection(STATE_COLLECTION, **kw))
        self._schemas[STATE_COLLECTION] = ("state", 2)

    def set_state(self, key: str, value: Mapping[str, Any]) -> None:
        """Store ``value`` (a JSON-able dict) under ``key``, replacing what was there."""
        if not isinstance(key, str) or not key or len(key.encode()) > ID_MAX:
            raise DataError(f"state key must be a non-empty string of at most {ID_MAX} bytes, got {key!r}")
        if not isinstance(value, Mapping):
            raise DataError(f"state {key!r}: the value must be a dict, got {type(value).__name__}")
        text = json.dumps(dict(value), sort_keys=True)
        if len(text.encode()) > STATE_VALUE_MAX:
            raise DataError(f"state {key!r}: {len(text.encode())} bytes of JSON, more than {STATE_VALUE_MAX}")
        self._ensure_state()
        self._call(f"set state {key}", lambda c, **kw: c.upsert(
            STATE_COLLECTION, [{"key": key, "value": text, "vector": [0.0, 0.0]}], **kw))

    def get_state(self, key: str) -> dict[str, Any] | None:
        """The dict stored under ``key``, or None."""
        self._ensure_state()
        rows = self._call(f"get state {key}", lambda c, **kw: c.get(
            STATE_COLLECTION, ids=[key], output_fields=["value"], **kw))
        return json.loads(rows[0]["value"]) if rows else None

    def states(self, prefix: str) -> dict[str, dict[str, Any]]:
        """Every state record whose key starts with ``prefix``: {key: value}."""
        if not prefix or any(c in prefix for c in '%_"\\'):
            raise DataError(f"state prefix must be non-empty, without % _ \" or \\, got {prefix!r}")
        self._ensure_state()
        rows = self._call(f"list states {prefix}*", lambda c, **kw: c.query(
            STATE_COLLECTION, filter=f'key like "{prefix}%"', output_fields=["key", "value"], **kw))
        return {row["key"]: json.loads(row["value"]) for row in rows}

    def delete_state(self, key: str) -> None:
        self._ensure_state()
        self._call(f"delete state {key}", lambda c, **kw: c.delete(STATE_COLLECTION, ids=[key], **kw))



class LevelIndex:
    """Collections of id -> several named vectors (one per score level), searched together with Milvus's
    multi-vector ``hybrid_search`` and a ``WeightedRanker``, on the connection of a :class:`MilvusIndex`. The ranker is
    asked not to normalise, but Milvus Lite 2.5.1 still maps each inner product x to 0.5 + arctan(x)/pi (seen here);
    for unit vectors (x in [-1, 1]) that is nearly linear, so the weighted sum still follows the fusion's. The description records the fields: ``strata:levels:NAME=DIM,...;schema=N``.
    A Milvus collection holds at most four vector fields by default, so a model offers at most four levels."""

    MAX_FIELDS = 4

    def __init__(self, index: MilvusIndex):
        self.index = index
        self._fields: dict[str, dict[str, int]] = {}

    def ensure(self, name: str, fields: Mapping[str, int]) -> None:
        if not 1 <= len(fields) <= self.MAX_FIELDS:
            raise ConfigError(f"collection {name}: 1..{self.MAX_FIELDS} level vectors, got {len(fields)}")
        wanted = {str(k): int(v) for k, v in fields.items()}
        body = "levels:" + ",".join(f"{k}={v}" for k, v in wanted.items())
        description = described(body)
        if self.index.has(name):
            info = self.index._call(f"describe_collection {name}", lambda c, **kw: c.describe_collection(name, **kw))
            if described_body(name, info.get("description", ""), self.index.where) != body:
                raise ConfigError(f"collection {name} on {self.index.where} is {info.get('description')!r}, not "
                                  f"{description!r}: use another name, or drop it first")
        else:
            from pymilvus import DataType, MilvusClient

            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False, description=description)
            schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=ID_MAX)
            params = MilvusClient.prepare_index_params()
            for field, dim in wanted.items():
                schema.add_field(field, DataType.FLOAT_VECTOR, dim=dim)
                params.add_index(field, index_type="FLAT", metric_type=METRIC)
            self.index._create(name, schema, params)
        self.index._call(f"load_collection {name}", lambda c, **kw: c.load_collection(name, **kw))
        self._fields[name] = wanted

    def upsert(self, name: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert or replace rows ``{id, <field>: vector, ...}`` (every field of the collection)."""
        fields = self._fields[name]
        clean = []
        for row in rows:
            item: dict[str, Any] = {"id": row["id"]}
            for field, dim in fields.items():
                vector = np.asarray(row[field], np.float32)
                if vector.shape != (dim,) or not np.isfinite(vector).all():
                    raise DataError(f"{name}: row {row['id']!r} field {field} must be {dim} finite floats, "
                                    f"got shape {vector.shape}")
                item[field] = vector.tolist()
            clean.append(item)
        per_call = max(1, min(MAX_BATCH_ROWS, MAX_BATCH_BYTES // (4 * sum(fields.values()) + 64)))
        for chunk in _chunks(clean, per_call):
            self.index._call(f"upsert into {name}", lambda c, b=list(chunk), **kw: c.upsert(name, b, **kw))
        return len(clean)

    def delete(self, name: str, ids: Iterable[str]) -> None:
        for chunk in _chunks(sorted(set(ids)), ID_CHUNK):
            self.index._call(f"delete from {name}", lambda c, b=list(chunk), **kw: c.delete(name, ids=b, **kw))

    def search(self, name: str, query: Mapping[str, np.ndarray], weights: Mapping[str, float], limit: int
               ) -> list[tuple[str, float]]:
        """One query's best ``limit`` ids by the weighted sum of its per-field inner products. Each field
        contributes its own top ``limit`` (Milvus's hybrid search): an item outside a field's list scores 0 there.
        A collection of one field is searched with a plain search (the weight does not change the order)."""
        from pymilvus import AnnSearchRequest, WeightedRanker

        if not 1 <= limit <= MAX_TOPK:
            raise ConfigError(f"search limit must be in 1..{MAX_TOPK}, got {limit}")
        fields = list(self._fields[name])
        fetch = min(limit + self.index.tie_margin, MAX_TOPK)
        if len(fields) == 1:    # one field: a plain search, which keeps the inner product as it is
            results = self.index._call(f"search {name}", lambda c, **kw: c.search(
                name, data=[np.asarray(query[fields[0]], np.float32).tolist()], limit=fetch, output_fields=[],
                anns_field=fields[0], search_params={"metric_type": METRIC}, consistency_level="Strong", **kw))
            pairs = sorted(((hit["id"], float(hit["distance"])) for hit in results[0]), key=lambda p: (-p[1], p[0]))
            return pairs[:limit]
        requests = [AnnSearchRequest([np.asarray(query[f], np.float32).tolist()], f, {"metric_type": METRIC}, fetch)
                    for f in fields]
        ranker = WeightedRanker(*[float(weights[f]) for f in fields], norm_score=False)
        results = self.index._call(f"hybrid_search {name}", lambda c, **kw: c.hybrid_search(
            name, requests, ranker, limit=fetch, output_fields=[], **kw))
        pairs = sorted(((hit["id"], float(hit["distance"])) for hit in results[0]), key=lambda p: (-p[1], p[0]))
        return pairs[:limit]
