"""Backup and restore, once, for real: a stack indexed and asked, backed up while down, restored into a fresh home,
brought up there, answers exactly as before; a backup is refused while the stack runs, a restore into a home that
holds data or from a damaged backup is refused and leaves the home as it was."""
from __future__ import annotations

import json
import shutil

import pytest

from common.errors import ConfigError, DataError
from common.settings import Settings
from tests.serving.gateway.corpus import FREE_PORTS
from tests.serving.gateway.stack import running_stack

pytestmark = pytest.mark.slow

TEXTS = ["a man is slicing bread in a kitchen", "people are dancing"]


def answers(url: str) -> list:
    """Every hit of both directions, with its level scores: what a restored index must give back exactly."""
    from clients.client import StrataClient

    with StrataClient(url, timeout_s=60) as client:
        found = [client.search_videos(text, top_k=5) for text in TEXTS]
        found.append(client.search_captions(video_id="vid0005", top_k=5))
    return [[(hit.id, hit.score, [(level.level, level.score) for level in hit.levels]) for hit in answer.hits]
            for answer in found]


def test_a_restored_home_answers_as_the_one_backed_up(tmp_path, monkeypatch):
    from deploy.backup import MANIFEST, backup, restore
    from deploy.stack import down, up

    monkeypatch.setenv("STRATA_HOME", str(tmp_path / "home"))
    settings = Settings(**FREE_PORTS)
    with running_stack(settings) as state:
        before = answers(state.gateway)
        with pytest.raises(ConfigError, match=r"still running: .*stop the stack first \(strata down\)"):
            backup(settings, tmp_path / "refused")
    lines: list[str] = []
    manifest = backup(settings, tmp_path / "backup", log=lines.append)
    assert {key.split("/")[0] for key in manifest["files"]} == {"milvus", "tensors", "model_repository"}
    assert lines and "into" in lines[-1]

    monkeypatch.setenv("STRATA_HOME", str(tmp_path / "fresh"))
    restore(settings, tmp_path / "backup", log=lines.append)
    try:
        state = up(settings, log=lambda *_: None)
        assert answers(state.gateway) == before
    finally:
        down(log=lambda *_: None)
    with pytest.raises(ConfigError, match="this home already holds .*nothing is overwritten"):
        restore(settings, tmp_path / "backup", log=lines.append)

    # A damaged copy of the backup restores nothing, and says which file.
    damaged = tmp_path / "damaged"
    shutil.copytree(tmp_path / "backup", damaged)
    listed = json.loads((damaged / MANIFEST).read_text())["files"]
    victim = next(key for key in listed if key.startswith("tensors/"))
    data = bytearray((damaged / victim).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (damaged / victim).write_bytes(bytes(data))
    monkeypatch.setenv("STRATA_HOME", str(tmp_path / "third"))
    with pytest.raises(DataError, match=f"{victim} does not match its checksum .*nothing was restored"):
        restore(settings, damaged, log=lines.append)
    assert not (tmp_path / "third" / "tensors").exists() and not (tmp_path / "third" / "milvus" / "strata.db").exists()
    assert not any((tmp_path / "third").rglob("*.onnx"))


def test_what_backup_does_not_copy_is_refused_with_its_own_route(tmp_path, monkeypatch):
    from deploy.backup import BACKUP_FORMAT, MANIFEST, backup, restore

    monkeypatch.setenv("STRATA_HOME", str(tmp_path / "home"))
    with pytest.raises(ConfigError, match="Milvus server .*milvus-backup"):
        backup(Settings(milvus_uri="http://milvus.example:19530"), tmp_path / "b1")
    with pytest.raises(ConfigError, match="object storage: keep its bucket's versioning"):
        backup(Settings(tensor_store="lance:s3://bucket/tensors"), tmp_path / "b2")
    with pytest.raises(ConfigError, match="nothing to back up: no Milvus Lite db"):
        backup(Settings(), tmp_path / "b3")
    with pytest.raises(ConfigError, match="is not a Strata backup: it has no backup.json"):
        restore(Settings(), tmp_path)
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / MANIFEST).write_text(json.dumps({"format": BACKUP_FORMAT + 1, "files": {}}))
    with pytest.raises(ConfigError, match="restore it with the newer Strata that made it"):
        restore(Settings(), newer)
