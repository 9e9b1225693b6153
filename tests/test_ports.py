"""Starting a server on free ports: distinct ports, a clash retried with fresh ones, other errors not."""
from __future__ import annotations

import pytest

from tests.ports import PortInUse, pick_free_ports, start_on_free_ports


def test_picked_ports_are_distinct():
    assert len(set(pick_free_ports(5))) == 5


def test_a_clash_is_retried_with_fresh_ports():
    tried = []

    def start(ports):
        tried.append(ports)
        if len(tried) < 3:
            raise PortInUse(f"port {ports[0]} is in use")
        return ports

    assert start_on_free_ports(start, 2) == tried[-1] and len(tried) == 3


def test_the_last_clash_and_other_errors_propagate():
    with pytest.raises(PortInUse):
        start_on_free_ports(lambda ports: (_ for _ in ()).throw(PortInUse("taken")), 1, attempts=2)
    calls = []

    def broken(ports):
        calls.append(ports)
        raise RuntimeError("no binary")

    with pytest.raises(RuntimeError):
        start_on_free_ports(broken, 1)
    assert len(calls) == 1
