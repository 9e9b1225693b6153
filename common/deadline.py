"""The deadline of the call being served, carried to every backend call it makes (torch-free).

The gateway runs each call inside :func:`serving` with the time its caller gave it; every call to a backend
(Triton, Milvus, the tensor store) asks :func:`call_timeout` first. That answer is the backend's own timeout cut to
the time the caller has left, or :class:`DeadlineExpired` when the caller has given up (its deadline passed, or it
cancelled): so no backend work starts for a caller who is no longer waiting. A call is not started with less than
``MIN_CALL_S`` left: the caller's deadline reaches the gateway a little later than the caller set it, and no backend
answers in less.

Outside :func:`serving` (the health loop, ingest commands, tests) a backend call gets its own timeout. Every call
that starts is counted per backend and origin (:func:`started`): ``call`` inside :func:`serving`, ``background``
outside it. That is how the gateway's metrics show work done, and what a query costs apart from the background.
"""
from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from common.errors import StrataError

MIN_CALL_S = 0.01
BACKENDS = ("triton", "milvus", "store")
ORIGINS = ("call", "background")


class DeadlineExpired(StrataError):
    """The caller of the call being served gave up (its deadline passed, or it cancelled) before a backend call."""


@dataclass(frozen=True)
class Deadline:
    expires: float                  # time.monotonic() when the caller stops waiting (inf: never)
    alive: Callable[[], bool]       # False once the caller has cancelled or the call has ended

    def left(self) -> float:
        return self.expires - time.monotonic()


_current: ContextVar[Deadline | None] = ContextVar("strata_deadline", default=None)
_started: Counter[tuple[str, str]] = Counter()
_lock = threading.Lock()


@contextmanager
def serving(time_left_s: float | None, alive: Callable[[], bool] = lambda: True) -> Iterator[Deadline]:
    """Run the block as one call whose caller waits ``time_left_s`` more seconds (None: no deadline)."""
    deadline = Deadline(math.inf if time_left_s is None else time.monotonic() + time_left_s, alive)
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)


def no_deadline() -> AbstractContextManager[Deadline]:
    """Run the block with no caller's deadline: work that must finish once begun (undoing a failed write)."""
    return serving(None)


def call_timeout(backend: str, timeout_s: float, what: str = "") -> float:
    """The timeout of a ``backend`` call about to start: ``timeout_s`` cut to the caller's time left; counts the
    call. :class:`DeadlineExpired` (and nothing started) when the caller is gone or nearly out of time."""
    deadline = _current.get()
    origin = "background" if deadline is None else "call"
    if deadline is not None:
        left = deadline.left()
        if left < MIN_CALL_S or not deadline.alive():
            raise DeadlineExpired(f"the caller's deadline ran out before {what or backend} was called"
                                  if left < MIN_CALL_S else f"the caller cancelled before {what or backend} was called")
        timeout_s = min(timeout_s, left)
    with _lock:
        _started[backend, origin] += 1
    return timeout_s


def starting(backend: str, what: str = "") -> None:
    """:func:`call_timeout` for a backend call that takes no timeout (the tensor store's)."""
    call_timeout(backend, math.inf, what)


def caller_gone() -> bool:
    """Whether the caller of the call being served has given up (so a backend's timeout is the caller's, not the
    backend's fault)."""
    deadline = _current.get()
    return deadline is not None and (deadline.left() < MIN_CALL_S or not deadline.alive())


def started(origin: str | None = None) -> dict[str, int]:
    """Backend calls started in this process, per backend: of ``origin`` (see :data:`ORIGINS`), or all."""
    with _lock:
        return {backend: sum(_started[backend, o] for o in ORIGINS if origin in (None, o)) for backend in BACKENDS}
