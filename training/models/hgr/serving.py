"""HGR's serving tables (torch-free): its fused score is the mean of its event, action and entity levels."""
from common.serving_tables import ATTENTIVE, CAPTIONS, COSINE, VIDEOS, Choice, Level, ServingTables, Term

TABLES = ServingTables(
    # The strategy by `strata bench rerank` at 10,000 items (common.serving_tables.ServingTables says how; the README
    # has the table); the depths by `strata bench agreement` at 100,000: the least of those tried holding agreement@10
    # >= 0.99 there (twice the 50 and 100 that 10,000 items need).
    choices={VIDEOS: Choice("fused", 100), CAPTIONS: Choice("fused", 200)},
    levels=(Level("event", ("text_event",), ("video_event",), 1 / 3),
            Level("action", ("text_verbs",), ("video_actions",), 1 / 3),
            Level("entity", ("text_nouns",), ("video_entities",), 1 / 3)),
    terms=(Term("text_event", "video_event", COSINE, 1 / 3),
           Term("text_verbs", "video_actions", ATTENTIVE, 1 / 3),
           Term("text_nouns", "video_entities", ATTENTIVE, 1 / 3)),
)
