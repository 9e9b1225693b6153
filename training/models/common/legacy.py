"""Declarations of the parameters that were removed because they cannot affect a model's output.

Checkpoints saved before the removal still hold them. Each module that lost one lists it in its class attribute
``legacy_inert_keys``; ``training.checkpoint`` drops exactly these entries (or slices) when it loads such a
checkpoint and refuses any other mismatch.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InertLegacyKey:
    """A removed state-dict entry, named relative to the module that declares it.

    ``part=(i, n)``: only the i-th of n equal parts of the old tensor was removed; the rest is the current entry of
    the same name. ``folded_into``: the removed bias fed a BatchNorm, whose running mean (this entry) absorbs it,
    so that eval-mode outputs stay the same (in training mode the batch mean cancels it anyway).
    """

    key: str
    part: tuple[int, int] | None = None
    folded_into: str | None = None
