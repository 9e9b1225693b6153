"""The real MSR-VTT captions shipped with Strata (``samples/``: the 1k-A test split's 1,000 sentences) and the
reader of their ``key;vid_key;video_id;sentence`` CSV layout (torch-free)."""
from __future__ import annotations

import csv
from pathlib import Path

from common.errors import DataError

SAMPLE_CAPTIONS = Path(__file__).resolve().parent / "samples" / "msrvtt_1ka_test_captions.csv"


def load_msrvtt_captions(path: str | Path = SAMPLE_CAPTIONS) -> list[str]:
    """The ``sentence`` column of a ``key;vid_key;video_id;sentence`` file (MSR-VTT 1k-A test captions)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"caption file not found: {path}")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle, delimiter=";")
        if reader.fieldnames is None or "sentence" not in reader.fieldnames:
            raise DataError(f"{path}: expected a 'sentence' column (header key;vid_key;video_id;sentence)")
        captions = [row["sentence"] for row in reader]
    for i, caption in enumerate(captions):
        if not (caption or "").strip():
            raise DataError(f"{path}: row {i + 2}: empty sentence")
    return captions
