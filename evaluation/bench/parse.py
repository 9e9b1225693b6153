"""``strata bench parse``: batch caption-parsing throughput (sentences/s) on the real MSR-VTT captions, beside the
tokenizer alone, all a text tower without a role graph needs (VSE++, ViSERN, VSR-Net)."""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from common.conventions import positive_int, standalone_parser
from training.data.msrvtt_captions import SAMPLE_CAPTIONS, load_msrvtt_captions


def run(argv: list[str]) -> int:
    parser = standalone_parser("strata bench parse", __doc__, ["strata bench parse --repeats 1"])
    parser.add_argument("--captions", type=Path, default=SAMPLE_CAPTIONS, help="key;vid_key;video_id;sentence CSV")
    parser.add_argument("--batch-size", type=positive_int, default=256, help="captions per spaCy batch")
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed passes over the captions (median reported)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.batch_size < 1:
        parser.error("--repeats and --batch-size must be >= 1")

    from training.text.parser import load_nlp, parse_captions, tokenize_captions

    captions = load_msrvtt_captions(args.captions)
    start = time.perf_counter()
    load_nlp()
    load_s = time.perf_counter() - start
    parse_captions(captions[: args.batch_size], batch_size=args.batch_size)  # warm-up
    print(f"parse: {len(captions)} captions from {args.captions.name}, batch {args.batch_size}, one process; "
          f"model load {load_s:.2f} s; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    texts = [" ".join(c.lower().split()) for c in captions]
    runs = (("spaCy pipeline alone", lambda: list(load_nlp().pipe(texts, batch_size=args.batch_size))),
            ("parse throughput", lambda: parse_captions(captions, batch_size=args.batch_size)),
            ("words alone (towers without a role graph)", lambda: tokenize_captions(captions, args.batch_size)))
    for name, job in runs:
        rates = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            job()
            rates.append(len(captions) / (time.perf_counter() - start))
        print(f"{name}: {statistics.median(rates):.0f} sentences/s "
              f"(median of {args.repeats}; min {min(rates):.0f}, max {max(rates):.0f})")
    return 0
