"""Settings: defaults < file < STRATA_* environment < flags, loud about unknown keys and bad values."""
from __future__ import annotations

import pytest

from common.errors import ConfigError
from common.settings import Settings, load_settings


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("STRATA_HOME", str(tmp_path))
    monkeypatch.delenv("STRATA_SETTINGS", raising=False)
    for name in list(__import__("os").environ):
        if name.startswith("STRATA_") and name.lower()[7:] in Settings.__dataclass_fields__:
            monkeypatch.delenv(name)
    return tmp_path


def test_defaults_listen_on_loopback(home):
    settings = load_settings()
    assert settings == Settings()
    assert settings.gateway_url == "127.0.0.1:50051"
    assert settings.triton_url == "127.0.0.1:8001"
    assert settings.milvus == "http://127.0.0.1:19530"
    assert settings.repository == home / "model_repository"


def test_file_then_environment_then_flags(home, monkeypatch):
    (home / "settings.yaml").write_text("gateway_port: 6000\ntriton_grpc_port: 7001\nmodel_repository: /srv/repo\n")
    monkeypatch.setenv("STRATA_GATEWAY_PORT", "6001")
    settings = load_settings({"triton_grpc_port": 7002, "top_k": None})
    assert settings.gateway_port == 6001          # environment beats the file
    assert settings.triton_grpc_port == 7002      # a flag beats the file
    assert str(settings.repository) == "/srv/repo"
    assert settings.top_k == Settings().top_k     # a flag left unset changes nothing


def test_explicit_settings_file(home, monkeypatch, tmp_path_factory):
    other = tmp_path_factory.mktemp("elsewhere") / "mine.yaml"
    other.write_text("milvus_uri: http://10.0.0.5:19530\n")
    monkeypatch.setenv("STRATA_SETTINGS", str(other))
    assert load_settings().milvus == "http://10.0.0.5:19530"
    monkeypatch.setenv("STRATA_SETTINGS", str(other) + ".missing")
    with pytest.raises(ConfigError, match="no such settings file"):
        load_settings()


def test_string_setting_from_environment_stays_a_string(home, monkeypatch):
    monkeypatch.setenv("STRATA_MODEL_REPOSITORY", "2025")
    assert load_settings().model_repository == "2025"


@pytest.mark.parametrize(("source", "value", "message"), [
    ("file", "gateway_prot: 1\n", "unknown key"),
    ("file", "gateway_port: 70000\n", "gateway_port must be a port in 0..65535"),
    ("env", "abc", "expected an integer"),
    ("flag", 0, "top_k must be >= 1"),
])
def test_bad_values_name_the_key_and_the_source(home, monkeypatch, source, value, message):
    flags = None
    if source == "file":
        (home / "settings.yaml").write_text(value)
    elif source == "env":
        monkeypatch.setenv("STRATA_GATEWAY_PORT", value)
    else:
        flags = {"top_k": value}
    with pytest.raises(ConfigError, match=message) as err:
        load_settings(flags)
    assert {"file": "settings.yaml", "env": "STRATA_GATEWAY_PORT", "flag": "--top-k"}[source] in str(err.value)


def test_index_settings_are_validated(home, monkeypatch):
    assert (Settings().index_type, Settings().index_nlist, Settings().index_nprobe) == ("FLAT", 1024, 32)
    monkeypatch.setenv("STRATA_INDEX_TYPE", "IVF_FLAT")
    monkeypatch.setenv("STRATA_INDEX_NLIST", "256")
    chosen = load_settings({"index_nprobe": 16})
    assert (chosen.index_type, chosen.index_nlist, chosen.index_nprobe) == ("IVF_FLAT", 256, 16)
    hnsw = load_settings({"index_type": "HNSW", "index_hnsw_m": 32, "index_hnsw_ef": 64})
    assert (hnsw.index_type, hnsw.index_hnsw_m, hnsw.index_hnsw_ef_construction, hnsw.index_hnsw_ef) == \
        ("HNSW", 32, 200, 64)
    for flags, message in (({"index_type": "DISKANN"}, "index_type must be one of FLAT, IVF_FLAT, HNSW"),
                           ({"index_hnsw_m": 1}, r"index_hnsw_m must be in 2\.\.2048"),
                           ({"index_hnsw_ef": 0}, r"index_hnsw_ef must be in 1\.\."),
                           ({"index_hnsw_ef_construction": 0}, r"index_hnsw_ef_construction must be in 1\.\."),
                           ({"index_nlist": 0}, r"index_nlist must be in 1\.\.65536"),
                           ({"index_nlist": 65537}, r"index_nlist must be in 1\.\.65536"),
                           ({"index_nprobe": 0}, r"index_nprobe must be in 1\.\.index_nlist \(256\)"),
                           ({"index_nprobe": 257}, r"index_nprobe must be in 1\.\.index_nlist \(256\)")):
        with pytest.raises(ConfigError, match=message):
            load_settings(flags)
