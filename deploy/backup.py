"""``strata backup`` and ``strata restore``: the local stack's index, tensor store and model versions, copied whole
while the stack is down (torch-free).

A backup is a folder::

    backup.json            the format version, when it was made, and each file's size and SHA-256
    milvus/strata.db       Milvus Lite's db file: every collection, and the state record (the active version)
    tensors/...            the tensor store's folders (LMDB, or Lance datasets on local disk)
    model_repository/...   the exported versions: the index holds their embeddings, so it serves nothing without them

Settings are configuration, not data, and are not in it (keep ``settings.yaml`` with the rest of your
configuration). The parts are taken from, and restored to, where the settings in force put them.

Refused, each with the way out: a backup while any part of the local stack runs (its files are copied as files:
``strata down`` first); a Milvus server (``milvus_uri`` set) or a tensor store on object storage, which have their
own tools (deploy/README.md, "Backup and restore"); a restore into a home that already holds any of the parts
(nothing is overwritten), from a folder that is not a backup, of another format version, or whose files do not
match their checksums (what was restored is removed again, so the home is as before).
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from common.errors import ConfigError, DataError
from common.records import GATEWAY, HTTP_API, MILVUS, TRITON, running_part
from common.settings import Settings

BACKUP_FORMAT = 1           # of backup.json and the folder's layout; raise it when they change
MANIFEST = "backup.json"
CHUNK = 8 << 20             # bytes read at a time while copying and hashing
PROGRESS_S = 5.0            # seconds between progress lines


def local_parts(settings: Settings) -> dict[str, Path]:
    """Where each part lives in this home: {name in the backup: path}. ``ConfigError`` for a part that is not on
    local disk, naming its own backup route."""
    from serving.index.milvus_server import default_db

    if settings.milvus_uri:
        raise ConfigError(f"the milvus_uri setting names a Milvus server ({settings.milvus_uri}): back it up with "
                          "Milvus's own backup tool (milvus-backup; deploy/README.md, \"Backup and restore\"); "
                          "strata backup copies the local Milvus Lite")
    store = settings.tensor_store_root
    if "://" in store:
        raise ConfigError(f"the tensor store {store} is on object storage: keep its bucket's versioning or copy "
                          "its prefix (deploy/README.md, \"Backup and restore\"); strata backup copies a local one")
    store = store.split(":", 1)[1] if store.startswith(("lmdb:", "lance:")) else store
    return {"milvus/strata.db": default_db(), "tensors": Path(store), "model_repository": settings.repository}


def check_stack_down() -> None:
    running = [label for label, part in (("Milvus Lite", MILVUS), ("Triton", TRITON), ("the gateway", GATEWAY),
                                         ("the HTTP API", HTTP_API)) if running_part(part) is not None]
    if running:
        raise ConfigError(f"{', '.join(running)} still running: its files are copied as files, so stop the stack "
                          "first (strata down), then back up, then strata up")


def files_of(path: Path) -> Iterator[Path]:
    """``path`` itself if a file, else every file under it, in a stable order."""
    if path.is_file():
        yield path
    elif path.is_dir():
        yield from sorted(p for p in path.rglob("*") if p.is_file())


def copy_hashed(source: Path, target: Path, count: Callable[[int], None]) -> str:
    """Copy ``source`` to ``target`` (its folder made), hashing as it goes; the SHA-256 of the bytes copied."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with source.open("rb") as reader, target.open("wb") as writer:
        while chunk := reader.read(CHUNK):
            digest.update(chunk)
            writer.write(chunk)
            count(len(chunk))
    shutil.copystat(source, target)
    return digest.hexdigest()


class Progress:
    """A line every :data:`PROGRESS_S` seconds: files and bytes done of the total."""

    def __init__(self, what: str, files: int, total: int, log: Callable[[str], None]):
        self.what, self.files, self.total, self.log = what, files, total, log
        self.done_files, self.done, self.start, self.shown = 0, 0, time.monotonic(), time.monotonic()

    def bytes(self, n: int) -> None:
        self.done += n
        if time.monotonic() - self.shown >= PROGRESS_S:
            self.shown = time.monotonic()
            self.log(f"{self.what}: {self.done_files:,}/{self.files:,} files, {self.done / 1e6:,.1f} of "
                     f"{self.total / 1e6:,.1f} MB")

    def file_done(self) -> None:
        self.done_files += 1

    def summary(self) -> str:
        return (f"{self.done_files:,} files, {self.done / 1e6:,.1f} MB in {time.monotonic() - self.start:.1f} s")


def backup(settings: Settings, dest: str | Path, log: Callable[[str], None] = print) -> dict:
    """Copy this home's parts into the new folder ``dest``; returns the manifest written there."""
    parts = local_parts(settings)
    check_stack_down()
    dest = Path(dest).expanduser().resolve()
    if dest.exists() and any(dest.iterdir()):
        raise ConfigError(f"{dest} exists and is not empty: back up into a new folder")
    if not parts["milvus/strata.db"].is_file():
        raise ConfigError(f"nothing to back up: no Milvus Lite db at {parts['milvus/strata.db']} (strata up and "
                          "index something first)")
    listed = {name: [(f, f.relative_to(path) if path.is_dir() else Path()) for f in files_of(path)]
              for name, path in parts.items()}
    progress = Progress("backup", sum(map(len, listed.values())),
                        sum(f.stat().st_size for files in listed.values() for f, _ in files), log)
    files = {}
    for name, entries in listed.items():
        for source, relative in entries:
            key = str(Path(name) / relative) if str(relative) != "." else name
            files[key] = {"bytes": source.stat().st_size,
                          "sha256": copy_hashed(source, dest / key, progress.bytes)}
            progress.file_done()
    manifest = {"format": BACKUP_FORMAT, "made": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "parts": {name: str(path) for name, path in parts.items()}, "files": files}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    log(f"backup: {progress.summary()} into {dest}")
    return manifest


def read_manifest(source: Path) -> dict:
    path = source / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{source} is not a Strata backup: it has no {MANIFEST}") from None
    except (OSError, ValueError) as err:
        raise DataError(f"{path} cannot be read: {err}") from None
    found = manifest.get("format") if isinstance(manifest, dict) else None
    if found != BACKUP_FORMAT:
        newer = isinstance(found, int) and found > BACKUP_FORMAT
        raise ConfigError(f"{path} is backup format {found!r}; this Strata reads format {BACKUP_FORMAT}"
                          + (": restore it with the newer Strata that made it" if newer else ""))
    return manifest


def restore(settings: Settings, source: str | Path, log: Callable[[str], None] = print) -> dict:
    """Copy the backup in ``source`` into this home, each file checked against its SHA-256; returns its manifest."""
    parts = local_parts(settings)
    check_stack_down()
    source = Path(source).expanduser().resolve()
    manifest = read_manifest(source)
    taken = [str(path) for path in parts.values() if next(files_of(path), None) is not None]
    if taken:
        raise ConfigError(f"this home already holds {', '.join(taken)}: restore into a fresh STRATA_HOME, or move "
                          "those away first (nothing is overwritten)")
    files = manifest["files"]
    progress = Progress("restore", len(files), sum(entry["bytes"] for entry in files.values()), log)
    absent = [path for path in parts.values() if not path.exists()]   # made by this restore: removed if it fails
    copied: list[Path] = []
    try:
        for key, entry in files.items():
            name = next((n for n in parts if key == n or key.startswith(n + "/")), None)
            if name is None:
                raise DataError(f"{source / MANIFEST} lists {key}, which is no part of a Strata home")
            target = parts[name] / Path(key).relative_to(name)
            copied.append(target)
            if copy_hashed(source / key, target, progress.bytes) != entry["sha256"]:
                raise DataError(f"{source / key} does not match its checksum in {MANIFEST}: the backup is damaged; "
                                "nothing was restored")
            progress.file_done()
    except BaseException as err:
        _remove(copied, absent)
        if isinstance(err, FileNotFoundError) and str(source) in str(err.filename):
            raise DataError(f"the backup in {source} is incomplete: {err.filename} is missing; nothing was "
                            "restored") from None
        raise
    log(f"restore: {progress.summary()} from {source} (made {manifest['made']}); start it with strata up")
    return manifest


def _remove(copied: list[Path], absent: list[Path]) -> None:
    """Undo a restore: the files it copied, and the parts' folders that were absent before it began."""
    for path in copied:
        path.unlink(missing_ok=True)
    for path in absent:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
