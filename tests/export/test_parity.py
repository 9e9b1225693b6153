"""The parity rules: tolerances and top-10 agreement up to near-ties (checked on literal values)."""
from __future__ import annotations

import numpy as np
import pytest

from export.parity import OutputParity, ParityError, top_k_mismatches


def test_tolerance_is_absolute_for_small_and_relative_for_large_values():
    small = OutputParity("text", "a")
    small.update(np.array([0.5, -0.2]), np.array([0.5 + 9e-5, -0.2]))
    assert small.ok and small.max_abs == pytest.approx(9e-5)
    small.update(np.array([0.5]), np.array([0.5 + 2e-4]))
    assert not small.ok and small.worst_excess == pytest.approx(1e-4)
    large = OutputParity("scorer", "score")
    large.update(np.array([1000.0]), np.array([1000.05]))          # allowed 1e-4 * 1000 = 0.1
    assert large.ok and large.max_rel == pytest.approx(5e-5)
    large.update(np.array([1000.0]), np.array([1000.2]))
    assert not large.ok
    with pytest.raises(ParityError, match="shape"):
        large.update(np.zeros((2, 3)), np.zeros((3, 2)))


def test_top_k_allows_swaps_between_near_ties_only():
    reference = np.array([
        [0.9, 0.8, 0.7, 0.1],
        [0.5, 0.5 + 5e-6, 0.2, 0.1],   # items 0 and 1 tie within 1e-5
        [0.5, 0.4, 0.3, 0.3 + 5e-6],   # items 2 and 3 tie at the top-3 boundary
    ])
    same = reference + np.array([0.0, 0.0, 0.0, 0.0])
    assert top_k_mismatches(reference, same, k=3) == []
    swapped_ties = reference.copy()
    swapped_ties[1, 0], swapped_ties[1, 1] = 0.6, 0.55              # order of the tied pair flips
    swapped_ties[2, 2], swapped_ties[2, 3] = 0.3, 0.35              # the boundary tie flips in/out of the top 3
    assert top_k_mismatches(reference, swapped_ties, k=3) == []
    real_swap = reference.copy()
    real_swap[0, 2] = 0.95                                          # 0.7 jumps above 0.9: not a tie
    real_swap[2, 0] = 0.0                                           # item 0 falls out of the top 3
    assert top_k_mismatches(reference, real_swap, k=3) == [0, 2]
    assert top_k_mismatches(reference[:, :3], real_swap[:, :3], k=10) == [0, 2]  # k > items: the full ranking
