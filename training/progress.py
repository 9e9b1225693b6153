"""Progress for long work: a tqdm bar on an interactive terminal, plain lines (about every 10%) in a log."""
from __future__ import annotations

import sys
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


def progress(iterable: Iterable[T], total: int, desc: str, unit: str = "it", enabled: bool = True) -> Iterable[T]:
    if not enabled:
        return iterable
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, dynamic_ncols=True)
    return _plain(iterable, total, desc, unit)


def _plain(iterable: Iterable[T], total: int, desc: str, unit: str) -> Iterator[T]:
    step = max(1, total // 10)
    for done, item in enumerate(iterable, 1):
        yield item
        if done % step == 0 or done == total:
            print(f"{desc}: {done}/{total} {unit}", file=sys.stderr, flush=True)
