"""``strata bench peer``: a multi-level model against the single-vector service users deploy instead, side by side.

MULTI is a two-stage model (e.g. HGR: first-stage vector search, then its exported scorer re-ranks); SINGLE is a
global-only one (e.g. VSE++: one vector per video, served as CLIP-as-service or Towhee serve theirs). For each in
turn, on a stack of its own (a scratch STRATA_HOME, free ports; :mod:`evaluation.bench.private`): export the
checkpoint, bring the stack up, measure its quality on the checkpoint's own ``--split`` through the gateway (as
``strata evaluate CHECKPOINT --backend gateway`` does, on the still empty index), fill the benchmark corpus
(:mod:`evaluation.bench.corpus`) to ``--items``, ask both directions under Locust (:mod:`evaluation.bench.e2e`):
every query once at 1 user (p50/p95/p99, the gateway's stage medians), then ``--seconds`` at ``--concurrency``
users (answered QPS); bring the stack down. Each model runs only the stages the gateway runs for it, at its own
first-stage depth unless ``--depth`` sets one for both (a global-only model's fetch and rerank stages score its
candidates in the index's own order: the gateway's cost of serving it, shown as such). Prints one table with a column per model and the ratio
of MULTI's p50 to SINGLE's per direction.

The corpus is drawn from the demo's SynthVTR generator, so both checkpoints must have been trained on the demo's
data (``strata demo`` trains HGR; ``strata train demo --set model=vsepp --set run_name=demo-vsepp`` trains VSE++
on the same data); any other is refused before anything starts.
"""
from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import Any

from common.conventions import add_depth_flag, add_json_flag, emit_json, positive_int, say, standalone_parser
from common.errors import ConfigError
from evaluation.bench.e2e import add_floor_flag

ROLES = ("multi", "single")


def run(argv: list[str]) -> int:
    parser = standalone_parser(
        "strata bench peer", __doc__,
        ["strata bench peer $STRATA_HOME/runs/demo-seed0/best $STRATA_HOME/runs/demo-vsepp/best --json peer.json",
         "strata bench peer MULTI SINGLE --items 1000 --queries 200 --seconds 10 --out peer.png"])
    parser.add_argument("multi", metavar="MULTI_CHECKPOINT", help="the multi-level model's checkpoint (e.g. HGR's)")
    parser.add_argument("single", metavar="SINGLE_CHECKPOINT",
                        help="the single-vector peer's checkpoint (e.g. VSE++'s)")
    parser.add_argument("--items", type=positive_int, default=1_000,
                        help="corpus videos indexed, each with a caption")
    parser.add_argument("--queries", type=positive_int, default=1_000,
                        help="distinct queries per direction (at most 1,000 texts: the MSR-VTT captions shipped)")
    parser.add_argument("--concurrency", type=positive_int, default=8, help="Locust users of the throughput runs")
    parser.add_argument("--seconds", type=positive_int, default=20, help="length of each throughput run")
    parser.add_argument("--split", default="tst", help="the checkpoints' data split whose quality is measured")
    parser.add_argument("--top-k", type=positive_int, default=10, help="hits per query")
    add_depth_flag(parser)
    add_floor_flag(parser)
    parser.add_argument("--out", default="peer.png", help="the figure (PNG): each model's stage medians")
    add_json_flag(parser, "the settings of the run, each model's rows and quality, and the p50 ratios")
    args = parser.parse_args(argv)
    from evaluation.bench.e2e import require_locust
    from training.progress import progress

    require_locust("strata bench peer")
    tell = say(args)
    folders = {role: benchmark_data(getattr(args, role), args.split) for role in ROLES}
    tell(f"peer: {args.multi} against {args.single}; {args.items:,} corpus items, up to {args.queries} queries each "
         f"way at 1 user and {args.concurrency} users ({args.seconds} s); quality on {args.split}; load average "
         f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    models = [measure_model(role, getattr(args, role), folders[role], args, tell)
              for role in progress(ROLES, len(ROLES), "peer bench", "model")]
    ratio = p50_ratio(*models)
    tell(side_by_side(models, args))
    tell(f"p50 ratio {models[0]['model']} / {models[1]['model']}: "
         + ", ".join(f"{direction} {value:.2f}x" for direction, value in ratio.items()))
    plot(models, Path(args.out))
    tell(f"figure: {args.out}")
    emit_json(args, {"items": args.items, "queries": args.queries, "concurrency": args.concurrency,
                     "seconds": args.seconds, "split": args.split, "top_k": args.top_k, "depth": args.depth or 0,
                     "load_average": os.getloadavg()[0], "cores": os.cpu_count(), "models": models,
                     "p50_ratio": ratio})
    return 0


def benchmark_data(checkpoint: str, split: str) -> Path:
    """The checkpoint's data folder, once it is known to fit the benchmark: SynthVTR from the demo's generator at
    the sizes its corpus is drawn at for this model, none of whose videos the model trained on, with ``split``."""
    from common.config import from_dict
    from common.frame_backbone import video_sizes
    from evaluation.bench.corpus import CorpusGenerator
    from evaluation.gateway import checkpoint_train_config
    from training.models.factory import resolve_config
    from training.synth.config import SynthConfig
    from training.synth.generator import open_dataset

    meta, config = checkpoint_train_config(checkpoint)
    fix = (f"train it on the demo's data (strata train demo --set model={meta['name']} --set "
           f"run_name=demo-{meta['name']}) and pass that run's best/")
    if config.data.synth is None:
        raise ConfigError(f"{checkpoint}: trained on {config.data.path}, not on SynthVTR; the benchmark corpus is "
                          f"drawn from the demo's SynthVTR generator: {fix}")
    frame_dim, region_dim = video_sizes(meta["config"]["video"], resolve_config(meta["name"], meta["config"]).layout())
    corpus = CorpusGenerator.demo(frame_dim, region_dim).config
    trained = from_dict(SynthConfig, config.data.synth, where=f"{checkpoint}: data.synth")
    differs = [f"{f.name} {getattr(trained, f.name)} (the corpus: {getattr(corpus, f.name)})"
               for f in fields(SynthConfig) if f.name != "videos" and getattr(trained, f.name) != getattr(corpus, f.name)]
    if differs:
        raise ConfigError(f"{checkpoint}: its SynthVTR data is not the benchmark corpus's (the demo's generator at "
                          f"its frame and region sizes): {'; '.join(differs)}; {fix}")
    if trained.videos > corpus.videos:
        raise ConfigError(f"{checkpoint}: trained on the generator's first {trained.videos} videos, but the corpus "
                          f"starts at video {corpus.videos}, so it would be asked videos it trained on; {fix}")
    folder = config.data.resolved_path()
    available = open_dataset(folder).splits
    if split not in available:
        raise ConfigError(f"{checkpoint}: its data ({folder}) has no split {split!r}; it has {', '.join(available)}")
    return folder


def measure_model(role: str, checkpoint: str, folder: Path, args, tell) -> dict[str, Any]:
    """One checkpoint on a stack of its own: its quality through the gateway, then its latency and throughput."""
    from argparse import Namespace

    from clients.client import StrataClient
    from evaluation.bench.e2e import measure_sizes
    from evaluation.bench.private import private_stack
    from evaluation.gateway import evaluate_checkpoint_through_gateway

    with private_stack("strata-bench-peer-", [str(checkpoint)], f"strata bench peer ({checkpoint})") as (settings,
                                                                                                         state):
        with StrataClient(state.gateway, timeout_s=600) as client:
            info = client.describe()
            name, version = info.model.name, info.model.version
            tell(f"{role}: {name} version {version} at {state.gateway}")
            quality = evaluate_checkpoint_through_gateway(checkpoint, client, settings.repository, str(folder),
                                                          [args.split], args.depth or 0, tell)["splits"][args.split]
            tell(f"{name} on {args.split} through the gateway: rsum {quality['fused']['rsum']:.1f}")
        sizes = Namespace(**{**vars(args), "items": [args.items], "url": state.gateway, "evidence": False})
        _, rows, footprints = measure_sizes(f"peer ({role})", sizes, [args.concurrency], tell, settings)
    return {"role": role, "checkpoint": str(checkpoint), "model": name, "version": version, "rows": rows,
            "footprint": footprints[0], "quality": quality}


def single_user(model: dict, direction: str) -> dict:
    return next(r for r in model["rows"] if r["direction"] == direction and r["users"] == 1)


def p50_ratio(multi: dict, single: dict) -> dict[str, float]:
    """MULTI's p50 over SINGLE's at 1 user, per direction."""
    from evaluation.bench.e2e import DIRECTIONS

    return {d: single_user(multi, d)["p50_ms"] / single_user(single, d)["p50_ms"] for d in DIRECTIONS}


def side_by_side(models: list[dict], args) -> str:
    """One row per figure, one column per model."""
    from evaluation.bench.e2e import DIRECTIONS, STAGES

    def cell(value) -> str:
        return f"{value:>16.2f}" if value is not None else f"{'-':>16s}"

    lines = ["\n" + f"{'':34s}" + "".join(f"{m['model'] + ' v' + str(m['version']):>16s}" for m in models)]
    for direction in DIRECTIONS:
        for label, pick in (("p50 ms, 1 user", lambda r: r["p50_ms"]), ("p95 ms, 1 user", lambda r: r["p95_ms"]),
                            ("p99 ms, 1 user", lambda r: r["p99_ms"])):
            lines.append(f"{direction + ' ' + label:34s}" + "".join(cell(pick(single_user(m, direction)))
                                                                    for m in models))
        for stage in STAGES:
            medians = [single_user(m, direction)["stages_p50_ms"].get(stage) for m in models]
            if any(value is not None for value in medians):
                lines.append(f"{'  ' + stage + ' ms (median)':34s}" + "".join(map(cell, medians)))
        floors = [single_user(m, direction).get("floor", {}).get("p50_ms") for m in models]
        if any(value is not None for value in floors):
            lines.append(f"{'  floor p50 ms (in one process)':34s}" + "".join(map(cell, floors)))
        loaded = [next(r for r in m["rows"] if r["direction"] == direction and r["users"] == args.concurrency)
                  for m in models]
        lines.append(f"{direction + f' QPS, {args.concurrency} users':34s}" + "".join(cell(r["qps"]) for r in loaded))
        lines.append(f"{direction + ' failed calls':34s}" + "".join(cell(sum(r["failed"] for r in m["rows"]
                                                                              if r["direction"] == direction))
                                                                     for m in models))
    lines.append(f"{'rsum on ' + args.split:34s}" + "".join(cell(m["quality"]["fused"]["rsum"]) for m in models))
    selections = sorted({k for m in models for k in m["quality"].get("binary_selection", {})})
    for kind in selections:
        lines.append(f"{kind + ' %':34s}" + "".join(cell(m["quality"].get("binary_selection", {}).get(kind))
                                                    for m in models))
    return "\n".join(lines)


def plot(models: list[dict], path: Path) -> None:
    """Per direction, each model's stage medians at 1 user stacked, with the client's p50 beside them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from evaluation.bench.e2e import DIRECTIONS, STAGES

    fig, axes = plt.subplots(1, len(DIRECTIONS), figsize=(10, 3.8))
    for axis, direction in zip(axes, DIRECTIONS):
        rows = [single_user(m, direction) for m in models]
        names = [f"{m['model']} v{m['version']}" for m in models]
        bottom = [0.0] * len(rows)
        for k, stage in enumerate(STAGES):
            heights = [r["stages_p50_ms"].get(stage, 0.0) for r in rows]
            if any(heights):
                axis.bar(names, heights, bottom=bottom, color=f"C{k}", label=stage)
                bottom = [b + h for b, h in zip(bottom, heights)]
        axis.scatter(names, [r["p50_ms"] for r in rows], marker="_", s=600, color="black", label="client p50",
                     zorder=3)
        axis.set_title(direction, fontsize=9)
        axis.set_ylabel("ms at 1 user (stage medians)", fontsize=8)
        axis.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
