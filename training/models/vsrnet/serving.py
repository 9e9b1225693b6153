"""VSR-Net's serving tables (torch-free): its fused score is its index view's inner product, so ``index`` is exact."""
from common.serving_tables import CAPTIONS, VIDEOS, Choice, ServingTables

# Measured by `strata bench rerank` (common.serving_tables.ServingTables says how; the README has the table).
TABLES = ServingTables(choices={VIDEOS: Choice("index", 10), CAPTIONS: Choice("index", 10)})
