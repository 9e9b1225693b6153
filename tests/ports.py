"""Start a server on ports nobody holds, without the bind-then-release race (for the tests' Ray heads).

Asking the OS for a free port (bind port 0, read it, close) and handing it to another process leaves a gap in
which someone else may take it. A server that can bind port 0 itself and report the port (a gRPC server can)
needs none of this; Strata's own servers go through :class:`serving.process.ManagedProcess`, which retries on
another port. For one started here by hand (a Ray head), ``start_on_free_ports`` picks ports and, when the start
fails because one of them was taken in the gap (``PortInUse``), tries again with fresh ones.
"""
from __future__ import annotations

import socket
from contextlib import ExitStack
from typing import Callable, TypeVar

from serving.process import PortInUse

T = TypeVar("T")


def pick_free_ports(count: int, address: str = "127.0.0.1") -> tuple[int, ...]:
    """``count`` distinct ports that were free a moment ago (all held at once while picking, so distinct)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind((address, 0))
        return tuple(s.getsockname()[1] for s in sockets)


def start_on_free_ports(start: Callable[[tuple[int, ...]], T], count: int, address: str = "127.0.0.1",
                        attempts: int = 5) -> T:
    """``start(ports)`` with ``count`` freshly picked ports; picked anew, up to ``attempts`` times, while it raises
    ``PortInUse``. Any other error, and the last clash, propagate."""
    for attempt in range(attempts):
        try:
            return start(pick_free_ports(count, address))
        except PortInUse:
            if attempt == attempts - 1:
                raise
    raise ValueError(f"attempts must be >= 1, got {attempts}")
