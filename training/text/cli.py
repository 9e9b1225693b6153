"""``strata parse``: captions -> role graph, concepts and triplets as JSON; role accuracy on labelled captions."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common.conventions import add_command, positive_int
from common.errors import ConfigError, DataError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "parse",
        help="parse captions into HGR role graphs, concepts and SVO triplets",
        description="Parse a caption (pretty JSON), a file of captions (one per line -> JSON lines), "
                    "or score the parser on hand-labelled captions (--eval-labelled).",
        examples=['strata parse "a cat is chased by a dog on the grass"',
                  "strata parse --file captions.txt --out parsed.jsonl   # one caption per line"],
    )
    parser.add_argument("caption", nargs="?", help="one caption, e.g. \"a dog is chasing a cat on the grass\"")
    parser.add_argument("--file", type=Path, help="a text file with one caption per line")
    parser.add_argument("--out", type=Path, help="with --file: write the JSON lines here instead of stdout")
    parser.add_argument("--rolegraphs", type=Path,
                        help="a sent2rolegraph JSON (e.g. HGR's AllenNLP parses) whose graphs replace ours "
                             "for the sentences it holds")
    parser.add_argument("--eval-labelled", type=Path, metavar="FILE",
                        help="print role accuracy on a labelled-captions JSON file")
    parser.add_argument("--show-errors", action="store_true", help="with --eval-labelled: list missed and extra edges")
    parser.add_argument("--batch-size", type=positive_int, default=256,
                        help="with --file: captions per spaCy batch (speed only; the parses are the same)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from training.text import parser as text_parser
    from training.text.rolegraph import load_sent2rolegraph

    modes = [m for m in ("caption", "file", "eval_labelled") if getattr(args, m) is not None]
    if len(modes) != 1:
        raise ConfigError("strata parse: give exactly one of CAPTION, --file or --eval-labelled")
    if args.eval_labelled is not None:
        items = text_parser.load_labelled(args.eval_labelled)
        splits = sorted({item.split for item in items} - {""})
        for name in splits + ["all"]:
            report = text_parser.evaluate_roles([i for i in items if name in ("all", i.split)])
            print(f"{name}: {report.summary()}")
            if args.show_errors and name != "all":
                for kind, errors in (("missed", report.missed), ("extra", report.spurious)):
                    for caption, (arg, role, verb) in errors:
                        print(f"  {kind}: {arg} {role} {verb}  | {caption}")
        return 0
    rolegraphs = None if args.rolegraphs is None else load_sent2rolegraph(args.rolegraphs)
    if args.caption is not None:
        parsed = text_parser.parse_captions([args.caption], rolegraphs=rolegraphs)[0]
        print(json.dumps(parsed.to_json(), indent=2))
        return 0
    captions = _read_lines(args.file)
    parsed = text_parser.parse_captions(captions, batch_size=args.batch_size, rolegraphs=rolegraphs)
    lines = "".join(json.dumps(p.to_json()) + "\n" for p in parsed)
    if args.out is None:
        sys.stdout.write(lines)
    else:
        args.out.write_text(lines)
        print(f"parsed {len(parsed)} captions -> {args.out}", file=sys.stderr)
    return 0


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"caption file not found: {path}")
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text: {err}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise DataError(f"{path}:{number}: empty caption (one caption per line, no blank lines)")
    if not lines:
        raise DataError(f"{path}: no captions")
    return lines
