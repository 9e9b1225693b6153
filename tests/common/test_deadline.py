"""Backend calls are counted by origin: inside a served call (``call``) or outside one (``background``)."""
from __future__ import annotations

import pytest

from common import deadline


def test_backend_calls_are_counted_by_origin_and_in_total():
    before = {origin: deadline.started(origin) for origin in deadline.ORIGINS}
    total_before = deadline.started()
    with deadline.serving(5.0):
        deadline.call_timeout("triton", 1.0)
        deadline.starting("store")
    deadline.call_timeout("milvus", 1.0)
    call, background = deadline.started("call"), deadline.started("background")
    assert {b: call[b] - before["call"][b] for b in deadline.BACKENDS} == {"triton": 1, "milvus": 0, "store": 1}
    assert {b: background[b] - before["background"][b] for b in deadline.BACKENDS} == {"triton": 0, "milvus": 1,
                                                                                          "store": 0}
    assert {b: deadline.started()[b] - total_before[b] for b in deadline.BACKENDS} == {"triton": 1, "milvus": 1,
                                                                                       "store": 1}


def test_a_call_whose_caller_is_gone_starts_nothing_and_counts_nothing():
    before = deadline.started("call")
    with deadline.serving(5.0, alive=lambda: False):
        with pytest.raises(deadline.DeadlineExpired):
            deadline.call_timeout("triton", 1.0)
    assert deadline.started("call") == before
