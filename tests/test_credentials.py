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
