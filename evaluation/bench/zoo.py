"""``strata bench zoo``: parameter count and forward time of every model of the zoo, ``fast`` and ``paper`` presets.

A forward is what a retrieval batch costs: the text tower, the video tower, and the scorer on the in-batch
``[B, B]`` matrix, in eval mode without gradients. Inputs are random tensors of realistic sizes built from each
model's layout (20 frames, 30 words, 4 verbs, 6 nouns, 8 regions per frame for ``fast`` as in SynthVTR, 36 for
``paper``; feature sizes from the preset). ``fast`` runs at one batch size; ``paper`` at the largest of
``--paper-batches`` that fits in memory (a batch that raises out-of-memory is skipped, and the table says which
size ran).
"""
from __future__ import annotations

import gc
import json
import statistics
import time
from pathlib import Path

from common.conventions import non_negative_int, positive_int, standalone_parser
from common.errors import ConfigError
from training.text.roles import NUM_ROLES

SIZES = {"words": 30, "verbs": 4, "nouns": 6, "frames": 20}
REGIONS = {"fast": 8, "paper": 36}


def random_inputs(layout, batch: int, regions: int, vocab_size: int, seed: int = 0) -> dict:
    """Valid canonical inputs for both towers of ``layout``: full-length masks, one word per verb, two words per
    noun phrase, each noun an argument of one verb, random features / ids / roles."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    sizes = {**SIZES, "batch": batch, "regions": regions}
    verbs, nouns = SIZES["verbs"], SIZES["nouns"]  # spans below need words >= 3 * verbs and 2 * nouns + 1
    out = {}
    for spec in layout.text.inputs + layout.video.inputs:
        shape = tuple(sizes[d] if isinstance(d, str) else d for d in spec.shape)
        if spec.name.endswith("_mask"):
            value = torch.ones(shape)
        elif spec.name == "word_ids":
            value = torch.randint(1, vocab_size, shape, generator=gen)
        elif spec.name == "noun_roles":
            value = torch.randint(0, NUM_ROLES, shape, generator=gen)
        elif spec.name == "verb_spans":
            value = torch.zeros(shape)
            value[:, torch.arange(verbs), torch.arange(verbs) * 3] = 1
        elif spec.name == "noun_spans":
            value = torch.zeros(shape)
            value[:, torch.arange(nouns), torch.arange(nouns) * 2 + 1] = 1
            value[:, torch.arange(nouns), torch.arange(nouns) * 2 + 2] = 1
        elif spec.name == "noun_verb_edges":
            value = torch.zeros(shape)
            value[:, torch.arange(nouns) % verbs, torch.arange(nouns)] = 1
        else:
            value = torch.randn(shape, generator=gen)
        out[spec.name] = value
    return out


def time_forward(model, inputs: dict, repeats: int, device) -> float:
    """Median wall time (ms) of text tower + video tower + in-batch scorer."""
    import torch

    inputs = {k: v.to(device) for k, v in inputs.items()}
    text_in, video_in = model.text_inputs(inputs), model.video_inputs(inputs)

    def forward():
        with torch.no_grad():
            model.score(model.encode_text(text_in), model.encode_video(video_in))
        if device.type == "cuda":
            torch.cuda.synchronize()

    forward()  # warm-up at the measured size (allocator, kernels)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, MemoryError) or "out of memory" in str(err).lower() or "can't allocate" in str(err).lower()


def bench_model(name: str, preset: str, batches: list[int], repeats: int, device) -> dict:
    import torch

    from training.models.factory import create_model, resolve_config

    torch.manual_seed(0)
    concepts = getattr(resolve_config(name, preset), "concepts", None)
    overrides = concepts.cap_overrides() if concepts is not None else []  # "auto" heads: measured at their cap
    model = create_model(name, preset, overrides=overrides).eval().to(device)
    row = {"params": model.num_parameters(), "batch": None, "ms": None, "skipped_batches": []}
    vocab = max(model.config.text.vocab_size, 2)
    for batch in batches:
        inputs = random_inputs(model.layout, batch, REGIONS[preset], vocab)
        try:
            row["ms"] = time_forward(model, inputs, repeats, device)
            row["batch"] = batch
            break
        except (RuntimeError, MemoryError) as err:
            if not _is_oom(err):
                raise
            row["skipped_batches"].append(batch)
            del inputs
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
    del model
    gc.collect()
    return row


def _table(results: dict, presets: list[str]) -> str:
    head = ["model"]
    for p in presets:
        head += [f"{p} params", f"{p} batch", f"{p} ms", f"{p} ms/item"]
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for name, rows in results.items():
        cells = [name]
        for p in presets:
            r = rows[p]
            if r["batch"] is None:
                cells += [f"{r['params'] / 1e6:.2f}M", "none fits", "-", "-"]
            else:
                cells += [f"{r['params'] / 1e6:.2f}M", str(r["batch"]), f"{r['ms']:.1f}", f"{r['ms'] / r['batch']:.2f}"]
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def run(argv: list[str]) -> int:
    parser = standalone_parser("strata bench zoo", __doc__, ["strata bench zoo --models hgr,vsepp --presets fast --json zoo.json"])
    parser.add_argument("--models", default="all", help="comma-separated model names (default: every model of the zoo)")
    parser.add_argument("--presets", default="fast,paper", help="comma-separated presets: fast, paper")
    parser.add_argument("--fast-batch", type=positive_int, default=64, help="batch size of the fast presets")
    parser.add_argument("--paper-batches", default="64,32,16,8", help="paper batch sizes to try, largest first")
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed forwards after one warm-up (median reported)")
    parser.add_argument("--threads", type=non_negative_int, default=0, help="torch intra-op threads (0: PyTorch's default)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON to FILE")
    args = parser.parse_args(argv)
    presets = [p for p in args.presets.split(",") if p]
    if any(p not in REGIONS for p in presets):
        parser.error(f"--presets: known presets are {', '.join(REGIONS)}")
    try:
        paper_batches = sorted({int(b) for b in args.paper_batches.split(",")}, reverse=True)
    except ValueError:
        parser.error("--paper-batches must be comma-separated integers")
    if args.repeats < 1 or args.fast_batch < 1 or min(paper_batches) < 1:
        parser.error("--repeats and batch sizes must be >= 1")

    import torch

    from training.models.factory import list_models

    models = list_models() if args.models == "all" else [m for m in args.models.split(",") if m]
    unknown = sorted(set(models) - set(list_models()))
    if unknown:
        raise ConfigError(f"unknown model(s) {', '.join(unknown)}; models: {', '.join(list_models())}")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    results = {}
    for name in models:
        results[name] = {}
        for preset in presets:
            batches = [args.fast_batch] if preset == "fast" else paper_batches
            results[name][preset] = row = bench_model(name, preset, batches, args.repeats, device)
            took = "no batch fits" if row["ms"] is None else f"{row['ms']:.1f} ms"
            print(f"{name:7s} {preset:5s} params {row['params']:>11,d}  batch {row['batch']}  {took}", flush=True)
    print()
    print(f"device {device}, torch threads {torch.get_num_threads()}, inputs {SIZES} + regions {REGIONS}, "
          f"median of {args.repeats} forwards (text tower + video tower + in-batch scorer, no grad)")
    print(_table(results, presets))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "device": str(device), "threads": torch.get_num_threads(), "repeats": args.repeats,
            "sizes": SIZES, "regions": REGIONS, "models": results}, indent=2))
        print(f"wrote {args.json}")
    return 0
