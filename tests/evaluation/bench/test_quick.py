"""The regression alarm's judgement: a count over its budget is named, one at or under it passes. (The alarm
itself runs as its own CI step, `make bench-quick`, on a stack of its own.)"""
from __future__ import annotations

from evaluation.bench.quick import BUDGET, over_budget


def test_a_count_over_its_budget_is_named_and_one_at_it_passes():
    at_budget = {direction: dict(limits) for direction, limits in BUDGET.items()}
    assert over_budget(at_budget, BUDGET) == []
    at_budget["text_to_video"]["triton"] += 1
    at_budget["video_to_text"]["fetched_bytes"] *= 1.01
    assert over_budget(at_budget, BUDGET) == [
        f"text_to_video: triton {BUDGET['text_to_video']['triton'] + 1:g} per query, budget "
        f"{BUDGET['text_to_video']['triton']:g}",
        f"video_to_text: fetched_bytes {BUDGET['video_to_text']['fetched_bytes'] * 1.01:g} per query, budget "
        f"{BUDGET['video_to_text']['fetched_bytes']:g}"]


def test_every_direction_budgets_the_same_counts():
    assert {direction: set(limits) for direction, limits in BUDGET.items()} == {
        "text_to_video": {"triton", "milvus", "store", "scored_pairs", "fetched_bytes"},
        "video_to_text": {"triton", "milvus", "store", "scored_pairs", "fetched_bytes"}}
