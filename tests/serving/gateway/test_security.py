"""Who may call the gateway, and what it lets out: gateways started here in-process with TLS and tokens, and with
mTLS, on the stack's Milvus and Triton, with certificates this module makes; each part's bind setting; no
internal address or credential in Describe, replies or logs."""
from __future__ import annotations

import logging
import secrets
import socket
from contextlib import contextmanager
from dataclasses import replace

import grpc
import pytest

from clients.client import StrataCallError, StrataClient
from common.errors import ConfigError
from common.settings import Settings, load_settings
from tests.certs import TestCA
from tests.serving.gateway.corpus import BINDS, VIDEOS

pytestmark = pytest.mark.slow

READ_TOKEN, WRITE_TOKEN = secrets.token_hex(16), secrets.token_hex(16)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA with a gateway certificate and two client certificates (``ingest`` may write, ``stranger`` is not in
    the access file), another CA's client certificate, token files and the access file."""
    folder = tmp_path_factory.mktemp("pki")
    ca = TestCA(folder / "ca")
    other = TestCA(folder / "other", name="another CA")
    files = {"ca": ca.pem, "server": ca.issue("gateway", server=True), "ingest": ca.issue("ingest"),
             "stranger": ca.issue("stranger"), "forged": other.issue("ingest")}
    for name, token in (("read", READ_TOKEN), ("write", WRITE_TOKEN), ("wrong", secrets.token_hex(16))):
        files[name] = folder / f"{name}.token"
        files[name].write_text(token + "\n")
    files["access"] = folder / "access"
    files["access"].write_text(f"# who may call\nread {READ_TOKEN}\nwrite {WRITE_TOKEN}\nwrite CN=ingest\n")
    return files


class Captured(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextmanager
def gateway(settings: Settings):
    """A gateway in this process on a free loopback port; yields (url, the lines it logged)."""
    from serving.gateway.server import Gateway

    logger, captured = logging.getLogger("strata"), Captured()
    logger.addHandler(captured)
    level = logger.level
    logger.setLevel(logging.INFO)
    server = Gateway(settings)
    try:
        server.start()
        yield f"127.0.0.1:{server.port}", captured.lines
    finally:
        server.stop(grace=0)
        logger.removeHandler(captured)
        logger.setLevel(level)


def gateway_settings(stack, **credentials) -> Settings:
    from common.connect import service_settings

    return replace(service_settings(stack[0]), gateway_address="127.0.0.1", gateway_port=0, gateway_metrics_port=0,
                   gateway_metrics_address="127.0.0.1", **credentials)


# One in-process gateway at a time (a process opens an LMDB store once): each fixture lives for its class.
@pytest.fixture(scope="class")
def tls_gateway(stack, pki):
    server, key = pki["server"]
    with gateway(gateway_settings(stack, gateway_tls_cert=str(server), gateway_tls_key=str(key),
                                  gateway_access_file=str(pki["access"]))) as running:
        yield running


@pytest.fixture(scope="class")
def mtls_gateway(stack, pki):
    server, key = pki["server"]
    with gateway(gateway_settings(stack, gateway_tls_cert=str(server), gateway_tls_key=str(key),
                                  gateway_client_ca=str(pki["ca"]), gateway_access_file=str(pki["access"]))) as running:
        yield running


def client(url: str, **credentials) -> StrataClient:
    return StrataClient(url, timeout_s=30, settings=Settings(**credentials))


def code_of(call) -> str:
    with pytest.raises(StrataCallError) as err:
        call()
    return err.value.code.name


class TestTokens:
    """TLS, and bearer tokens from the access file."""

    def test_tls_with_tokens_refuses_calls_without_a_valid_token_and_writes_with_a_read_token(self, tls_gateway, pki):
        url, _ = tls_gateway
        ca = str(pki["ca"])
        with client(url, gateway_tls_ca=ca) as anonymous:
            assert anonymous.health() == "SERVING"                       # health stays open for probes
            assert code_of(lambda: anonymous.search_videos("a dog")) == "UNAUTHENTICATED"
            assert code_of(lambda: anonymous.delete("videos", ["vid0001"])) == "UNAUTHENTICATED"
        with client(url, gateway_tls_ca=ca, gateway_token_file=str(pki["wrong"])) as wrong:
            assert code_of(lambda: wrong.describe()) == "UNAUTHENTICATED"
        with client(url, gateway_tls_ca=ca, gateway_token_file=str(pki["read"])) as reader:
            assert len(reader.search_videos("a dog runs", top_k=3).hits) == 3
            assert code_of(lambda: reader.delete("videos", ["vid0001"])) == "PERMISSION_DENIED"
            assert code_of(lambda: reader.index_captions([("x", "a cat")])) == "PERMISSION_DENIED"
            assert reader.describe().videos == VIDEOS                   # nothing was deleted
        with client(url, gateway_tls_ca=ca, gateway_token_file=str(pki["write"])) as writer:
            assert (writer.index_captions([("sec0", "a cat sleeps")]).indexed,
                    writer.delete("captions", ["sec0"]).deleted) == (1, 1)
        with client(url) as plain:                                      # plain text to a TLS port: no connection
            assert plain.health() == "UNREACHABLE"


    def test_reflection_needs_a_read_credential(self, tls_gateway, pki):
        from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

        from common.connect import gateway_channel

        url, _ = tls_gateway

        def services(**credentials) -> set[str]:
            with gateway_channel(url, settings=Settings(gateway_tls_ca=str(pki["ca"]), **credentials)) as channel:
                stub = reflection_pb2_grpc.ServerReflectionStub(channel)
                request = reflection_pb2.ServerReflectionRequest(list_services="")
                return {s.name for r in stub.ServerReflectionInfo(iter([request]), timeout=10)
                        for s in r.list_services_response.service}

        with pytest.raises(grpc.RpcError) as err:
            services()
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "strata.v1.Strata" in services(gateway_token_file=str(pki["read"]))


    def test_no_credential_or_internal_address_in_describe_or_the_logs(self, tls_gateway, pki, stack):
        url, lines = tls_gateway
        with client(url, gateway_tls_ca=str(pki["ca"]), gateway_token_file=str(pki["read"])) as reader:
            info = reader.describe()
        settings = gateway_settings(stack)
        reply = str(info)
        assert info.videos == VIDEOS and settings.triton_url not in reply and settings.milvus not in reply
        assert settings.tensor_store_root not in reply
        logged = "\n".join(lines)
        assert "UNAUTHENTICATED" in logged and "PERMISSION_DENIED" in logged   # the refusals were logged...
        assert READ_TOKEN not in logged and WRITE_TOKEN not in logged            # ...without the tokens


class TestMutualTLS:
    """mTLS: client certificates the CA signed, their common names in the access file."""

    def test_mtls_takes_the_role_of_the_certificates_common_name(self, mtls_gateway, pki):
        url, _ = mtls_gateway
        ca = str(pki["ca"])
        cert, key = pki["ingest"]
        with client(url, gateway_tls_ca=ca, gateway_client_cert=str(cert), gateway_client_key=str(key)) as ingest:
            assert ingest.health() == "SERVING"
            assert ingest.index_captions([("sec1", "a bird sings")]).indexed == 1
            assert ingest.delete("captions", ["sec1"]).deleted == 1
        cert, key = pki["stranger"]                      # signed by the CA, but not in the access file
        with client(url, gateway_tls_ca=ca, gateway_client_cert=str(cert), gateway_client_key=str(key)) as stranger:
            assert code_of(lambda: stranger.search_videos("a dog")) == "UNAUTHENTICATED"
        cert, key = pki["forged"]                        # the right name from another CA: the handshake fails
        with client(url, gateway_tls_ca=ca, gateway_client_cert=str(cert), gateway_client_key=str(key)) as forged:
            assert code_of(lambda: forged.search_videos("a dog")) == "UNAVAILABLE"
        with client(url, gateway_tls_ca=ca, gateway_token_file=str(pki["write"])) as no_certificate:
            assert code_of(lambda: no_certificate.search_videos("a dog")) == "UNAVAILABLE"
        logged = "\n".join(mtls_gateway[1])
        assert "UNAUTHENTICATED (peer" in logged and WRITE_TOKEN not in logged


def test_an_unreachable_milvus_with_a_token_in_its_uri_stays_out_of_replies_and_logs(stack, monkeypatch):
    """A Milvus URI that holds a password, on a port where nothing listens, and a token in the environment."""
    from common.settings import MILVUS_TOKEN_ENV
    from serving.gateway.server import HEALTH_PERIOD_S

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    password, token = secrets.token_hex(8), secrets.token_hex(8)
    monkeypatch.setenv(MILVUS_TOKEN_ENV, token)
    settings = replace(gateway_settings(stack), milvus_uri=f"http://root:{password}@127.0.0.1:{dead}")
    with gateway(settings) as (url, lines):
        with client(url) as anyone:
            assert anyone.health() == "NOT_SERVING"
            details = str(pytest.raises(StrataCallError, anyone.search_videos, "a dog").value)
        import time

        time.sleep(2.5 * HEALTH_PERIOD_S)    # the health loop runs twice more
    logged = "\n".join(lines)
    assert "not serving: Milvus is unreachable" in logged
    assert logged.count("not serving") == 1                           # a change is logged once
    for secret in (password, token, str(dead)):
        assert secret not in logged and secret not in details


@pytest.mark.parametrize("part", ["gateway", "gateway_metrics", "triton", "milvus", "http"])
def test_each_part_listens_on_its_own_bind_setting(stack, part):
    """The stack runs each part on its own loopback address (tests.serving.gateway.corpus.BINDS): its port answers
    there and not on 127.0.0.1."""
    from common.records import GATEWAY, HTTP_API, MILVUS, TRITON, running_part

    record, key = {"gateway": (GATEWAY, "gateway_port"), "gateway_metrics": (GATEWAY, "gateway_metrics_port"),
                   "triton": (TRITON, "triton_grpc_port"), "milvus": (MILVUS, "milvus_port"),
                   "http": (HTTP_API, "http_port")}[part]
    port = running_part(record).port(key)
    with socket.create_connection((BINDS[f"{part}_address"], port), timeout=5):
        pass
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_misconfigured_credentials_are_refused_with_the_setting_to_change(monkeypatch, tmp_path):
    from common.connect import gateway_channel
    from serving.gateway.auth import interceptors

    monkeypatch.setenv("STRATA_GATEWAY_ADDRESS", "0.0.0.0")
    with pytest.raises(ConfigError, match="gateway_tls_cert.*gateway_insecure"):
        load_settings()
    monkeypatch.setenv("STRATA_GATEWAY_INSECURE", "true")
    assert load_settings().gateway_address == "0.0.0.0"
    access = tmp_path / "access"
    access.write_text("read abc\n")
    with pytest.raises(ConfigError, match="no TLS"):
        interceptors(Settings(gateway_access_file=str(access)))
    access.write_text("admin abc\n")
    with pytest.raises(ConfigError, match="line 1"):
        interceptors(Settings(gateway_access_file=str(access), gateway_tls_cert="c", gateway_tls_key="k"))
    with pytest.raises(ConfigError, match="gateway_tls_ca"):
        gateway_channel("127.0.0.1:1", settings=Settings(gateway_token_file=str(access)))
    with pytest.raises(ConfigError, match="gateway_token_file.*cannot read"):
        gateway_channel("127.0.0.1:1", settings=Settings(gateway_tls_ca=str(access),
                                                         gateway_token_file=str(tmp_path / "missing")))
