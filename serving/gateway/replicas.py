"""Each running gateway's heartbeat beside the index: the versions it answers with now (torch-free).

A replica writes its record when the versions it holds change, and otherwise renews it every
:data:`HEARTBEAT_RENEW_S` (not every health tick: on a Milvus cluster each write is a write load); ``strata swap``
reads the fresh ones to know when every replica has switched, and when an old version is no longer in use anywhere
and can be retired.
"""
from __future__ import annotations

import time

REPLICA_PREFIX = "replica:"   # state records of running gateways
HEARTBEAT_FRESH_S = 10.0      # a replica that has not reported for this long is gone
HEARTBEAT_RENEW_S = HEARTBEAT_FRESH_S / 2   # an unchanged record is written again this often (a change at once)


def report(index, replica: str, versions: list[tuple[str, int]]) -> None:
    index.set_state(f"{REPLICA_PREFIX}{replica}", {"versions": [list(v) for v in versions], "time": time.time()})


def forget(index, replica: str) -> None:
    index.delete_state(f"{REPLICA_PREFIX}{replica}")


def fresh_replicas(index) -> dict[str, list[list]]:
    """The replicas that reported within :data:`HEARTBEAT_FRESH_S`: {replica: [[base, version], ...]}."""
    now = time.time()
    return {key[len(REPLICA_PREFIX):]: value["versions"] for key, value in index.states(REPLICA_PREFIX).items()
            if now - float(value.get("time", 0)) < HEARTBEAT_FRESH_S}
