"""HANet's serving tables (torch-free): its fused score is (mean of the alignment levels its config turns on + mean of
the two concept Jaccards) / 2."""
from __future__ import annotations

from collections.abc import Mapping

from common.serving_tables import (ATTENTIVE, CAPTIONS, COSINE, JACCARD, VIDEOS, Choice, Level, ServingTables,
                                   Term)


def fused_terms(config: Mapping) -> tuple[Term, ...]:
    alignment = []
    if config.get("individual_alignment", True):
        alignment += [("text_verb_words", "video_actions", ATTENTIVE), ("text_noun_words", "video_entities", ATTENTIVE)]
    if config.get("local_alignment", True):
        alignment += [("text_verbs", "video_local_actions", ATTENTIVE),
                      ("text_nouns", "video_local_entities", ATTENTIVE)]
    if config.get("global_alignment", True):
        alignment += [("text_global", "video_global", COSINE)]
    return (tuple(Term(*a, 0.5 / len(alignment)) for a in alignment)
            + (Term("text_verb_concepts", "video_verb_concepts", JACCARD, 0.25),
               Term("text_noun_concepts", "video_noun_concepts", JACCARD, 0.25)))


def refusal(config: Mapping, strategy: str) -> str:
    """Without global alignment the index view is never trained: only the fused vector (which leaves that level
    out, as the scorer does) finds the answers."""
    if config.get("global_alignment", True) is False and strategy != "fused":
        return ("HANet with global_alignment=false: its index view (the global vector) is never trained, so a first "
                "stage over it would rank candidates at random")
    return ""


TABLES = ServingTables(
    # Measured by `strata bench rerank` (common.serving_tables.ServingTables says how; the README has the table).
    choices={VIDEOS: Choice("fused", 50), CAPTIONS: Choice("fused", 100)},
    # The two local levels are left to the re-rank (the individual ones see the same nodes and frames), and the two
    # concept levels share one field.
    levels=(Level("global", ("text_global",), ("video_global",), 0.1),
            Level("individual_action", ("text_verb_words",), ("video_actions",), 0.1),
            Level("individual_entity", ("text_noun_words",), ("video_entities",), 0.1),
            Level("concept", ("text_verb_concepts", "text_noun_concepts"),
                  ("video_verb_concepts", "video_noun_concepts"), 0.5)),
    terms=fused_terms,
    config_refusal=refusal,
)
