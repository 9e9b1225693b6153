"""The settings' Milvus credentials (token, database, CA) reach every Milvus client Strata makes, seen on the wire.

Milvus Lite has no TLS and no authentication, so the session's Milvus Lite server is put behind a TLS proxy made
here: a real gRPC server with a certificate of a test CA that forwards every call, unchanged, to Milvus Lite and
records the metadata each call arrived with. A client reaches it only if it was given that CA; the token arrives as
pymilvus sends it (``authorization``: base64 of the token) and the database as ``dbname``.

Every place that makes a Milvus client goes through :class:`MilvusIndex` (and it through
``common.connect.milvus_client``): :meth:`MilvusIndex.from_settings` (``strata up``, ``strata swap``), the
gateway's :class:`RetrievalService` (also what each bulk-ingest worker builds), and ``MilvusIndex(uri)`` with the
settings in force (``strata bench rerank``, the Milvus Lite server's readiness probe).
"""
from __future__ import annotations

import base64
import threading
from concurrent import futures
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import pytest

from common.connect import milvus_client
from common.records import MILVUS, ProcessState
from common.settings import MILVUS_TOKEN_ENV, Settings
from serving.gateway.service import RetrievalService
from serving.index.milvus_index import IndexUnavailable, MilvusIndex
from serving.index.milvus_server import _milvus_ready
from tests.certs import TestCA

FORWARDED = ("authorization", "dbname")   # what pymilvus adds to a call for a token and a database


class RecordingProxy(grpc.GenericRpcHandler):
    """A TLS gRPC server on a free loopback port that forwards every unary call to ``upstream`` (host:port, plain
    text) and records (method, metadata) of each call it received."""

    def __init__(self, upstream: str, cert: Path, key: Path):
        self.calls: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._upstream = grpc.insecure_channel(upstream)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers((self,))
        credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
        self.port = self.server.add_secure_port("127.0.0.1:0", credentials)
        self.server.start()

    def service(self, handler_call_details):
        method = handler_call_details.method
        forward = self._upstream.unary_unary(method)   # bytes in, bytes out: the call is passed on unchanged

        def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
            metadata = dict(context.invocation_metadata())
            with self._lock:
                self.calls.append((method, metadata))
            try:
                return forward(request, metadata=[(k, metadata[k]) for k in FORWARDED if k in metadata])
            except grpc.RpcError as err:
                context.abort(err.code(), err.details() or "")

        return grpc.unary_unary_rpc_method_handler(handle)

    def take(self) -> list[tuple[str, dict[str, str]]]:
        """The calls recorded since the last take."""
        with self._lock:
            calls, self.calls = self.calls, []
        return calls

    def stop(self) -> None:
        self.server.stop(grace=None)
        self._upstream.close()


@pytest.fixture()
def tls_milvus(milvus, tmp_path):
    """(proxy, CA file): the session's Milvus Lite behind a TLS proxy whose certificate a test CA signed."""
    ca = TestCA(tmp_path / "tls")
    cert, key = ca.issue("milvus", server=True)
    proxy = RecordingProxy(urlsplit(milvus[1]).netloc, cert, key)
    yield proxy, ca.pem
    proxy.stop()


def assert_calls_carry(calls: list[tuple[str, dict[str, str]]], token: str, db: str, who: str) -> None:
    assert calls, f"{who}: no call reached the TLS proxy"
    for method, metadata in calls:
        assert base64.b64decode(metadata.get("authorization", "")).decode() == token, f"{who}: {method} {metadata}"
        assert metadata.get("dbname") == db, f"{who}: {method} {metadata}"


def test_every_milvus_client_gets_the_token_database_and_ca_of_the_settings(tls_milvus, tmp_path, monkeypatch):
    proxy, ca = tls_milvus
    token_file = tmp_path / "milvus.token"
    token_file.write_text("root:from-file\n")
    uri = f"https://127.0.0.1:{proxy.port}"
    settings = Settings(milvus_uri=uri, milvus_token_file=str(token_file), milvus_db="strata_given",
                        milvus_tls_ca=str(ca), request_timeout_s=20)
    # the settings in force, for the clients made without explicit settings: the token from the environment
    monkeypatch.setenv("STRATA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STRATA_MILVUS_DB", "strata_in_force")
    monkeypatch.setenv("STRATA_MILVUS_TLS_CA", str(ca))
    monkeypatch.setenv(MILVUS_TOKEN_ENV, "api-key-from-env")

    made = {
        "MilvusIndex.from_settings (strata up, strata swap)":
            (MilvusIndex.from_settings(settings), "root:from-file", "strata_given"),
        "the gateway's RetrievalService (the gateway, each bulk-ingest worker)":
            (RetrievalService(settings).index, "root:from-file", "strata_given"),
        "MilvusIndex(uri) with the settings in force (strata bench rerank)":
            (MilvusIndex(uri, timeout_s=20), "api-key-from-env", "strata_in_force"),
    }
    proxy.take()
    for who, (index, token, db) in made.items():
        try:
            assert isinstance(index.collections(), list)
            assert index.ping(timeout_s=5)
        finally:
            index.close()
        assert_calls_carry(proxy.take(), token, db, who)

    # the Milvus Lite server's readiness probe (http:// URI of the recorded port; TLS because a CA is in force)
    probed = ProcessState(pid=0, name=MILVUS.name, marker=MILVUS.marker, address="127.0.0.1",
                          ports={"milvus_port": proxy.port}, serves={}, command=[], log="")
    assert _milvus_ready(probed)
    assert_calls_carry(proxy.take(), "api-key-from-env", "strata_in_force", "the Milvus Lite readiness probe")


def test_without_the_ca_no_client_reaches_a_tls_milvus(tls_milvus, tmp_path, monkeypatch):
    proxy, _ = tls_milvus
    monkeypatch.setenv("STRATA_HOME", str(tmp_path / "home"))
    proxy.take()
    index = MilvusIndex.from_settings(Settings(milvus_uri=f"https://127.0.0.1:{proxy.port}", request_timeout_s=3))
    with pytest.raises(IndexUnavailable, match=r"Milvus at https://127\.0\.0\.1:\d+ is unreachable"):
        index.collections()
    assert proxy.take() == []   # the handshake failed: the system's CAs do not trust the test CA


def _databases(client) -> list[str] | None:
    """The server's databases, or None when it has none (Milvus Lite 2.5's server answers UNIMPLEMENTED)."""
    try:
        return client.list_databases()
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.UNIMPLEMENTED:
            return None
        raise


def test_collections_land_in_the_database_milvus_db_names(milvus, tmp_path, monkeypatch):
    monkeypatch.setenv("STRATA_HOME", str(tmp_path / "home"))
    uri = milvus[1]
    default = milvus_client(uri, 20, Settings())
    try:
        databases = _databases(default)
        if databases is None:
            pytest.skip("the embedded Milvus Lite server has no databases (list_databases answers UNIMPLEMENTED and "
                        "a request's dbname is ignored), so milvus_db can be tested only against a Milvus that has "
                        "them")
        if "strata_db" not in databases:
            default.create_database("strata_db")
        index = MilvusIndex.from_settings(Settings(milvus_uri=uri, milvus_db="strata_db", request_timeout_s=20))
        try:
            index.ensure_collection("in_strata_db", 4, "videos")
            assert index.collections() == ["in_strata_db"]
        finally:
            index.close()
        assert "in_strata_db" not in default.list_collections()
        default.using_database("strata_db")
        assert "in_strata_db" in default.list_collections()
        default.drop_collection("in_strata_db")
    finally:
        default.close()
