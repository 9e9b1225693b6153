"""``strata bench scorer``: the exported scorer at the shapes the gateway's re-rank gives it, per candidate.

One query against ``--depths`` candidates each way (text -> video: 1 caption x depth videos; video -> text: depth
captions x 1 video), on tower outputs of a freshly initialised model at the preprocessing limits (30 words, 4 verbs,
6 nouns, ``--frames`` frames), in ONNX Runtime in this process as the gateway runs it (``--threads``, default 1, as
the gateway's scorer session), with eager PyTorch beside it. Two exported graphs of the same formula are timed side
by side, call by call: the one ``strata export`` writes, whose local attentive matching (HGR, HANet) takes the
attended vectors' norms directly (``training.models.common.matching``), and one traced with them taken through each
video's frame Gram matrix (the order a training batch uses, and the one exports had before), with ``--also`` any
other scorer graph of the model (an earlier Strata's export). Their scores are compared too. Models without local
attentive matching give two identical graphs.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np

from common.conventions import positive_int, standalone_parser
from evaluation.bench.towers import median_ms

WORDS, VERBS, NOUNS, REGIONS = 30, 4, 6, 8


def run(argv: list[str]) -> int:
    parser = standalone_parser("strata bench scorer", __doc__, ["strata bench scorer --depths 50 100 --iters 100"])
    parser.add_argument("--model", default="hgr", help="zoo model")
    parser.add_argument("--preset", default="fast", help="preset: fast or paper")
    parser.add_argument("--depths", type=positive_int, nargs="+", default=[50, 100], help="candidates per query")
    parser.add_argument("--frames", type=positive_int, default=40, help="frames of every candidate video")
    parser.add_argument("--iters", type=positive_int, default=100, help="timed calls per cell (median reported)")
    parser.add_argument("--threads", type=positive_int, default=1, help="ONNX Runtime / PyTorch intra-op threads")
    parser.add_argument("--also", nargs="+", type=Path, default=[], metavar="ONNX",
                        help="other scorer graphs of the same model to time beside them, e.g. an earlier Strata's "
                             "export (REPO/<model>_<preset>_scorer/VERSION/model.onnx)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.also if not p.is_file()]
    if missing:
        parser.error(f"--also: no such file: {', '.join(missing)}")

    import torch

    import training.models.common.matching as matching
    from common.layout import SCORE
    from export.batches import random_inputs
    from export.exporter import load_source
    from export.onnx import export_part, torch_outputs
    from export.runner import OnnxPart

    torch.set_num_threads(args.threads)
    model, _ = load_source(None, args.model, args.preset, seed=0)
    model.eval()
    layout = model.layout
    most = max(args.depths)
    text = random_inputs(layout.text, {"batch": most, "words": WORDS, "verbs": VERBS, "nouns": NOUNS}, seed=1)
    video = random_inputs(layout.video, {"batch": most, "frames": args.frames, "regions": REGIONS}, seed=2)
    encoded = {**torch_outputs(model, "text", text), **torch_outputs(model, "video", video)}
    sample = {k: v for k, v in encoded.items() if k in layout.scorer.input_names}
    rows = []
    with tempfile.TemporaryDirectory(prefix="strata-bench-scorer-") as tmp:
        export_part(model, "scorer", _pairs(sample, 2, 3), Path(tmp) / "exported.onnx")
        with mock.patch.object(matching, "attended_sq_norms", matching.attended_through_gram):
            export_part(model, "scorer", _pairs(sample, 2, 3), Path(tmp) / "gram.onnx")
        paths = {"exported": Path(tmp) / "exported.onnx", "gram_order": Path(tmp) / "gram.onnx",
                 **{f"also_{k}": path for k, path in enumerate(args.also, 1)}}
        graphs = {name: OnnxPart(path, threads=args.threads, spinning=False) for name, path in paths.items()}
        for name, path in paths.items():
            if name.startswith("also_"):
                print(f"{name}: {path}")
        print(f"scorer: {model.name} {args.preset} (random init), {args.frames} frames per video, {args.threads} "
              f"thread(s), median of {args.iters} calls", flush=True)
        for depth in args.depths:
            for direction, (texts, videos) in (("text_to_video", (1, depth)), ("video_to_text", (depth, 1))):
                feed = _pairs(sample, texts, videos)
                scores = {name: graph.run(feed, (SCORE,))[SCORE] for name, graph in graphs.items()}
                calls = {name: (lambda g=graph: g.run(feed, (SCORE,))) for name, graph in graphs.items()}
                calls["pytorch"] = lambda: torch_outputs(model, "scorer", feed)
                ms = median_ms(calls, args.iters)
                row = {"direction": direction, "depth": depth,
                       "us_per_candidate": {n: 1e3 * v / depth for n, v in ms.items()},
                       "max_abs_difference": {n: float(np.abs(scores["exported"] - v).max())
                                              for n, v in scores.items() if n != "exported"}}
                rows.append(row)
                print(line(row), flush=True)
    print(f"\n{'direction':14s} {'depth':>5s} " + " ".join(f"{g:>11s}" for g in rows[0]["us_per_candidate"])
          + "   us per candidate; then each graph's time / exported's, and its largest |score - exported's|")
    for row in rows:
        print(line(row))
    if args.json:
        Path(args.json).write_text(json.dumps({"model": f"{args.model}_{args.preset}", "frames": args.frames,
                                               "threads": args.threads, "rows": rows}, indent=2))
    return 0


def _pairs(sample: dict[str, np.ndarray], texts: int, videos: int) -> dict[str, np.ndarray]:
    """The first ``texts`` captions' and ``videos`` videos' scorer inputs."""
    return {k: v[:texts] if k.startswith("text_") else v[:videos] for k, v in sample.items()}


def line(row: dict) -> str:
    us = row["us_per_candidate"]
    return (f"{row['direction']:14s} {row['depth']:5d} " + " ".join(f"{v:11.2f}" for v in us.values())
            + "   " + ", ".join(f"{n} {us[n] / us['exported']:.2f}x |{row['max_abs_difference'][n]:.1e}|"
                               for n in row["max_abs_difference"]))
