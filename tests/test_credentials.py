"""Credentials come from settings that name files, or from the environment, and reach the connection factory."""
from __future__ import annotations

import pytest

from common.connect import milvus_options
from common.errors import ConfigError
from common.settings import MILVUS_TOKEN_ENV, Settings


def test_milvus_clients_get_the_token_database_and_ca_of_the_settings(tmp_path, monkeypatch):
    token, ca = tmp_path / "milvus.token", tmp_path / "ca.pem"
    token.write_text("root:secret\n")
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = Settings(milvus_token_file=str(token), milvus_db="strata", milvus_tls_ca=str(ca))
    assert milvus_options(settings) == {"token": "root:secret", "db_name": "strata", "secure": True,
                                        "server_pem_path": str(ca)}
    monkeypatch.setenv(MILVUS_TOKEN_ENV, "from-env")
    assert milvus_options(Settings()) == {"token": "from-env"}
    with pytest.raises(ConfigError, match="milvus_token_file"):
        milvus_options(Settings(milvus_token_file=str(tmp_path / "missing")))


@pytest.mark.parametrize("key", ["milvus_db", "milvus_tls_ca"])
def test_strata_up_refuses_a_database_or_tls_ca_for_the_local_milvus_lite(tmp_path, monkeypatch, key):
    from deploy.stack import up
    from serving.index.milvus_server import MilvusLiteServer

    monkeypatch.setenv("STRATA_HOME", str(tmp_path / "home"))
    settings = Settings(**{key: "strata" if key == "milvus_db" else str(tmp_path / "ca.pem")})
    with pytest.raises(ConfigError, match=f"{key} set, but the local Milvus Lite server has no databases and no "
                                          f"TLS: set milvus_uri .* or unset {key}"):
        up(settings, log=lambda line: None)
    assert MilvusLiteServer().state() is None   # refused before anything started
