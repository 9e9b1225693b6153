"""MCSAN's serving tables (torch-free): its index view (the four levels concatenated, the holographic level's sigmoid
linearised) approximates its fused score, the mean of four levels."""
from common.serving_tables import CAPTIONS, VIDEOS, Choice, Level, ServingTables

TABLES = ServingTables(
    # Measured by `strata bench rerank` (common.serving_tables.ServingTables says how; the README has the table).
    choices={VIDEOS: Choice("index", 20), CAPTIONS: Choice("index", 50)},
    levels=tuple(Level(name, (f"text_{name}",), (f"video_{name}",), 0.25)
                 for name in ("global", "entity", "action", "relationship")),
)
