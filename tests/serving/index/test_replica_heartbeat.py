"""A gateway replica's heartbeat on the session's Milvus Lite server: its record is written when the versions it
holds change and renewed when due, not rewritten at every health tick in between (on a Milvus cluster each write
is load)."""
from __future__ import annotations

from types import SimpleNamespace

from common.settings import Settings
from serving.gateway import lifecycle, replicas
from serving.gateway.lifecycle import ActiveVersions


def test_a_replica_writes_its_record_on_a_change_and_when_due_not_every_tick(index, monkeypatch):
    ix, _ = index
    clock = [100.0]
    monkeypatch.setattr(lifecycle.time, "monotonic", lambda: clock[0])
    writes = []
    real = ix.set_state
    monkeypatch.setattr(ix, "set_state", lambda key, value: writes.append(value["versions"]) or real(key, value))
    versions = ActiveVersions(Settings(), ix, replica_name="replica-a")
    try:
        versions._heartbeat()                                  # the first tick: written
        clock[0] += 2.0
        versions._heartbeat()                                  # a tick later, unchanged: not written
        assert writes == [[]]
        versions._version = SimpleNamespace(key=("hgr_fast", 1))   # all the heartbeat reads of a loaded version
        versions._heartbeat()                                  # changed: written at once
        clock[0] += replicas.HEARTBEAT_RENEW_S - 0.1
        versions._heartbeat()                                  # unchanged and not yet due
        clock[0] += 0.2
        versions._heartbeat()                                  # due: renewed
        assert writes == [[], [["hgr_fast", 1]], [["hgr_fast", 1]]]
        assert replicas.fresh_replicas(ix) == {"replica-a": [["hgr_fast", 1]]}
        assert replicas.HEARTBEAT_RENEW_S + 2.0 < replicas.HEARTBEAT_FRESH_S   # renewed before it goes stale
    finally:
        versions._version = None
        versions.close()
