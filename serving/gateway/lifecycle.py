"""The versions one gateway holds: the active one, and those it replaced that still have calls running (torch-free).

:meth:`ActiveVersions.refresh` follows the active-version record (:mod:`serving.gateway.active`): a new record
loads that version and makes it the one new calls get; the version it replaces drains, and is closed when its last
call ends, so calls in flight finish on the version they started on. Each refresh also reports this replica's
versions (:mod:`serving.gateway.replicas`).
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from common.errors import StrataError
from common.settings import Settings
from serving.gateway import replicas
from serving.gateway.active import active_version
from serving.gateway.errors import FailedPrecondition
from serving.gateway.model import ServedModel
from serving.gateway.version import Version
from serving.index.milvus_index import IndexUnavailable

log = logging.getLogger("strata.gateway")


class ActiveVersions:
    def __init__(self, settings: Settings, index, replica_name: str = ""):
        self.settings, self.index = settings, index
        self._version: Version | None = None
        self._draining: list[Version] = []   # versions replaced while calls were still running on them
        self._lock = threading.Lock()
        self.problem = "not started"   # why there is no active version (for health and errors)
        self.replica = replica_name or f"{socket.gethostname()}:{os.getpid()}"
        self._reported: tuple[list, float] | None = None   # (versions, time.monotonic()) of the last record written

    def refresh(self) -> None:
        """Load the version the record names (choosing and recording a default when there is none) and report
        this replica's versions; on failure keep what was loaded and remember why."""
        try:
            wanted, self.problem = active_version(self.settings, self.index)
            if wanted is not None and (self._version is None or self._version.key != wanted):
                self._activate(wanted)
        except IndexUnavailable:
            self.problem = "Milvus did not answer"   # its error names its address: kept out of replies and logs
        except StrataError as err:
            self.problem = str(err)
            log.warning("no model version loaded: %s", err)
        self._heartbeat()

    def _activate(self, key: tuple[str, int]) -> None:
        version = Version(ServedModel(self.settings.repository, *key, self.settings.triton_url,
                                      self.settings.request_timeout_s), self.index, self.settings)
        with self._lock:
            old, self._version = self._version, version
            if old is not None:
                old.retired = True
                self._draining.append(old)
        self.problem = ""
        log.info("serving %s version %d", *version.key)
        self._close_drained()

    def _close_drained(self) -> None:
        with self._lock:
            done = [v for v in self._draining if v.users == 0]
            self._draining = [v for v in self._draining if v.users > 0]
        for version in done:
            log.info("closed %s version %d (no call in flight)", *version.key)
            version.close()

    def _heartbeat(self) -> None:
        """Record this replica's versions when they changed, or when the record is due for renewal."""
        with self._lock:
            in_use = [v.key for v in [self._version, *self._draining] if v is not None]
        now = time.monotonic()
        if self._reported is not None and self._reported[0] == in_use and \
                now - self._reported[1] < replicas.HEARTBEAT_RENEW_S:
            return
        try:
            replicas.report(self.index, self.replica, in_use)
            self._reported = (in_use, now)
        except StrataError as err:
            log.warning("cannot record this replica's versions: %s", err)

    @contextmanager
    def using(self) -> Iterator[Version]:
        """The active version, counted as in use until the block ends."""
        with self._lock:
            version = self._version
            if version is None:
                raise FailedPrecondition(f"no model version is active: {self.problem}")
            version.users += 1
        try:
            yield version
        finally:
            with self._lock:
                version.users -= 1
            if version.retired:
                self._close_drained()

    def current(self) -> Version | None:
        """The active version now, or None (not counted as in use: for what describes it, not for work on it)."""
        return self._version

    def close(self) -> None:
        with self._lock:
            versions = [v for v in [self._version, *self._draining] if v is not None]
            self._version, self._draining = None, []
        for version in versions:
            version.close()
        try:
            replicas.forget(self.index, self.replica)
        except StrataError:
            pass
