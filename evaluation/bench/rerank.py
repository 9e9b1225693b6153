"""``strata bench rerank``: does two-stage retrieval give the model's answers? Agreement@10 and latency against depth.

For each exported model: the corpus's video and caption tower outputs are computed once with ONNX Runtime, and
written as the gateway writes them (tensor store, then Milvus: the index view in the main collection, the level
vectors in the levels collection, :mod:`serving.gateway.first_stage`) to a Milvus Lite server and an LMDB store
in a scratch folder. Exhaustive = the model's scorer over the whole corpus. For every first-stage strategy and
depth, each held-out query runs as the gateway runs it: first stage -> fetch from the store -> re-rank with the
scorer -> top 10 (ties by id). Agreement@10 = mean |two-stage top-10 ∩ exhaustive top-10| / 10; latency is the
median per query of those three stages. The corpus is a split the models never trained on, one caption per video;
text -> video queries are the captions of its first ``--queries`` videos, video -> text queries those videos
(searched against the corpus's captions, as the gateway searches by an indexed video's id).
"""
from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import numpy as np

from common.layout import LEVEL_SCORES, SCORE
from common.serving_tables import CAPTIONS, VIDEOS
from serving.gateway.items import axis_lengths, split_items, stack_items

TOP = 10


def _chunks(items, size):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def top_ids(ids, scores: np.ndarray, k: int = TOP) -> list[str]:
    """The ``k`` best ids, ties broken by id (as the gateway orders its hits)."""
    scores = np.asarray(scores)
    if len(ids) > k:   # only what could be in the top k (ties at the k-th score included) is sorted
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        shortlist = np.flatnonzero(scores >= kth)
    else:
        shortlist = np.arange(len(ids))
    return [ids[i] for i in sorted(shortlist, key=lambda i: (-float(scores[i]), ids[i]))[:k]]


class Scorer:
    """The version's scorer ONNX over stored records: text records x video records -> fused [texts, videos]."""

    def __init__(self, runner):
        self.runner = runner
        inputs = runner.layout.scorer.inputs
        self.text_specs = [s for s in inputs if s.name.startswith("text_")]
        self.video_specs = [s for s in inputs if s.name.startswith("video_")]

    def __call__(self, texts, videos) -> np.ndarray:
        part = self.runner.parts["scorer"]
        feed = {**stack_items(self.text_specs, texts), **stack_items(self.video_specs, videos)}
        return part.run(feed, (SCORE, LEVEL_SCORES))[SCORE]


def encode(runner, data, videos, captions, batch=128) -> tuple[list, list]:
    """Tower outputs per video and per caption, as the gateway stores them (ragged axes cut)."""
    video_records, text_records = [], []
    for chunk in _chunks(videos, batch):
        inputs = data.video_batch(list(chunk))
        video_records += split_items(runner.layout.video.outputs, runner.encode_video(inputs), axis_lengths(inputs))
    for chunk in _chunks(captions, batch):
        inputs = data.text_batch(list(chunk))
        text_records += split_items(runner.layout.text.outputs, runner.encode_text(inputs), axis_lengths(inputs))
    return video_records, text_records


def exhaustive(scorer: Scorer, queries, items, direction: str, chunk=500, query_chunk=50) -> np.ndarray:
    """[queries, items] fused scores of every query against every item, ``query_chunk`` queries x ``chunk`` items
    per scorer call (the exported scorer's largest intermediate grows with their product)."""
    out = np.zeros((len(queries), len(items)), np.float32)
    for q0 in range(0, len(queries), query_chunk):
        asked = queries[q0:q0 + query_chunk]
        for start in range(0, len(items), chunk):
            block = items[start:start + chunk]
            rows, cols = slice(q0, q0 + len(asked)), slice(start, start + len(block))
            out[rows, cols] = scorer(asked, block) if direction == "t2v" else scorer(block, asked).T
    return out


def two_stage(stage, kind: str, query, depth: int, store, scorer: Scorer) -> list[str]:
    """The top 10 ids of ``query`` as the gateway finds them: first stage, fetch, re-rank, ties by id."""
    found = stage.candidates(kind, query, depth)
    records = store.get(found)
    fused = scorer([query], records)[0] if kind == VIDEOS else scorer(records, [query])[:, 0]
    return top_ids(found, fused)


def agreement(top: list[str], truth: list[str]) -> float:
    return len(set(top) & set(truth)) / TOP


def run_model(args, repo: Path, base: str, scratch: Path, say) -> list[dict]:
    from common.connect import http_uri
    from common.serving_tables import Choice
    from export.runner import OnnxRunner
    from serving.gateway.first_stage import FirstStage, refusal
    from serving.index.milvus_index import MilvusIndex
    from serving.index.milvus_server import MilvusLiteServer
    from serving.store import open_store
    from training.engine.config import DataConfig
    from training.engine.data import prepare_data

    runner = OnnxRunner(repo, base, threads=args.threads)
    model = runner.layout.model
    strategies = [s for s in args.strategies if not refusal(model, runner.manifest, runner.layout, s)]
    for s in set(args.strategies) - set(strategies):
        say(f"{model}: strategy {s} skipped: {refusal(model, runner.manifest, runner.layout, s)}")
    if not strategies:
        return []
    data = prepare_data(DataConfig(path=str(args.data)), model, runner.manifest["preset"])
    names, captions, video_captions = data.eval_set(args.split)
    keep = [v for v, name in enumerate(names) if name not in args.trained_names][:args.corpus]
    if args.trained_names:
        say(f"{model}: {len(names) - len(keep)} {args.split} videos left out (trained on, or beyond --corpus)")
    names = [names[v] for v in keep]
    captions = [captions[video_captions[v][0]] for v in keep]   # one caption per corpus video
    t0 = time.perf_counter()
    video_records, text_records = encode(runner, data, names, captions)
    say(f"{model}: encoded {len(names)} videos and captions in {time.perf_counter() - t0:.0f} s")
    caption_ids = [f"c{i}" for i in range(len(captions))]
    scorer = Scorer(runner)
    q = min(args.queries, len(names))
    directions = {
        "t2v": (VIDEOS, list(names), video_records, text_records[:q]),
        "v2t": (CAPTIONS, caption_ids, text_records, video_records[:q]),
    }
    rows = []
    server = MilvusLiteServer(scratch / f"{model}-milvus")
    state = server.start(scratch / f"{model}-milvus" / "bench.db", port=0)
    try:
        index = MilvusIndex(http_uri(state.address, state.port()), timeout_s=120)
        collections = {VIDEOS: f"{model}_videos", CAPTIONS: f"{model}_captions"}
        for kind, name in collections.items():
            index.ensure_collection(name, int(runner.layout.video.spec("video_index").shape[-1]), kind)
        stages = {s: FirstStage(index, runner.manifest, runner.layout, collections,
                                {k: Choice(s, 0) for k in collections}) for s in strategies}
        stores = {kind: open_store(str(scratch / f"{model}-{kind}")) for kind in collections}
        for kind, (_, ids, records, _) in ((d[0], d) for d in directions.values()):
            view = "video_index" if kind == VIDEOS else "text_index"
            pairs = list(zip(ids, records))
            stores[kind].put(pairs)
            for stage in stages.values():
                stage.ensure()
                stage.write(kind, pairs)
            index.upsert(collections[kind], [{"id": i, "vector": r[view]} for i, r in pairs])
        for direction, (kind, ids, items, queries) in directions.items():
            full = exhaustive(scorer, queries, items, direction)
            truth = [top_ids(ids, full[i]) for i in range(len(queries))]
            for strategy, stage in stages.items():
                for depth in args.depths:
                    agree, took = [], []
                    for i, query in enumerate(queries):
                        start = time.perf_counter()
                        top = two_stage(stage, kind, query, depth, stores[kind], scorer)
                        took.append(1e3 * (time.perf_counter() - start))
                        agree.append(agreement(top, truth[i]))
                    rows.append({"model": model, "direction": direction, "strategy": strategy, "depth": depth,
                                 "depth_pct": 100 * depth / len(ids), "corpus": len(ids), "queries": len(queries),
                                 "agreement": float(np.mean(agree)), "latency_ms": float(np.median(took))})
                    say(_line(rows[-1]))
        for store in stores.values():
            store.close()
        index.close()
    finally:
        server.stop()
    return rows


COLORS = {"index": "tab:orange", "levels": "tab:green", "fused": "tab:blue"}   # one colour per strategy
HEADER = f"{'model':8s} {'dir':4s} {'strategy':8s} {'depth':>6s} {'% corpus':>8s} {'agree@10':>9s} {'ms/query':>9s}"


def _line(row: dict) -> str:
    return (f"{row['model']:8s} {row['direction']:4s} {row['strategy']:8s} {row['depth']:6d} {row['depth_pct']:8.2f} "
            f"{row['agreement']:9.3f} {row['latency_ms']:9.1f}")


def choose(rows: list[dict], target: float) -> dict[tuple[str, str], tuple[str, int, float]]:
    """Per (model, direction): among the rows reaching ``target``, the (strategy, depth, agreement) of least depth,
    then least latency; else the best agreement seen. Depth first: the re-rank's work grows with it, and the depth
    a strategy needs is a fraction of the corpus, so it is what grows with the corpus; the search itself costs
    about the same for every strategy."""
    best = {}
    for key in {(r["model"], r["direction"]) for r in rows}:
        mine = [r for r in rows if (r["model"], r["direction"]) == key]
        good = [r for r in mine if r["agreement"] >= target]
        pick = (min(good, key=lambda r: (r["depth"], r["latency_ms"])) if good
                else max(mine, key=lambda r: (r["agreement"], -r["depth"])))
        best[key] = (pick["strategy"], pick["depth"], pick["agreement"])
    return best


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted({r["model"] for r in rows})
    fig, axes = plt.subplots(2, len(models), figsize=(3.2 * len(models), 6.4), squeeze=False)
    for col, model in enumerate(models):
        for row, direction in enumerate(("t2v", "v2t")):
            ax = axes[row][col]
            for strategy in sorted({r["strategy"] for r in rows}):
                mine = sorted((r for r in rows if (r["model"], r["direction"], r["strategy"]) == (model, direction, strategy)),
                              key=lambda r: r["depth"])
                if mine:
                    ax.plot([r["depth_pct"] for r in mine], [r["agreement"] for r in mine], marker="o", label=strategy,
                            color=COLORS.get(strategy))
            ax.axhline(0.99, color="grey", lw=0.6, ls="--")
            ax.set_xscale("log")
            ax.set_ylim(0, 1.02)
            ax.set_title(f"{model} {direction}", fontsize=9)
            ax.set_xlabel("depth, % of corpus", fontsize=8)
            if col == 0:
                ax.set_ylabel("agreement@10", fontsize=8)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(argv: list[str]) -> int:
    """Agreement@10 of two-stage retrieval with exhaustive scoring, and latency, against first-stage depth, for
    every exported model and first-stage strategy; prints the table and draws the curves as a PNG."""
    from common.conventions import add_json_flag, emit_json, positive_int, repo_path, say, standalone_parser
    from common.errors import ConfigError
    from common.repository import model_bases
    from common.serving_tables import STRATEGIES

    parser = standalone_parser("strata bench rerank", run.__doc__, examples=[
        "strata bench rerank --data ~/.strata/data/synthvtr-rerank --repo ./repo --out rerank.png",
        "strata bench rerank --data DIR --repo R --models hgr_fast --queries 50 --depths 10 50"])
    parser.add_argument("--data", required=True, help="a SynthVTR (or HGR-format) dataset folder")
    parser.add_argument("--split", default="tst", help="the split whose videos form the corpus (held out from training)")
    parser.add_argument("--repo", help="model repository holding the exported versions (default: the setting)")
    parser.add_argument("--models", nargs="+", help="Triton model bases, e.g. hgr_fast (default: every one exported)")
    parser.add_argument("--trained-on", help="the dataset folder the checkpoints were trained on: videos of its "
                        "training split are left out of the corpus (SynthVTR names a video by its index, so a larger "
                        "set of the same seed repeats a smaller one's videos)")
    parser.add_argument("--corpus", type=positive_int, default=10000, help="corpus videos (and one caption each)")
    parser.add_argument("--queries", type=positive_int, default=200, help="held-out queries per direction")
    parser.add_argument("--depths", type=positive_int, nargs="+", help="first-stage depths "
                        "(default: 0.1%%, 0.2%%, 0.5%%, 1%% and 2%% of the corpus)")
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    parser.add_argument("--target", type=float, default=0.99, help="agreement the chosen depth must reach")
    parser.add_argument("--threads", type=positive_int, default=1, help="ONNX Runtime threads")
    parser.add_argument("--out", default="rerank.png", help="the figure (PNG)")
    add_json_flag(parser, "every row")
    args = parser.parse_args(argv)
    tell = say(args)
    args.data = Path(args.data).expanduser().resolve()
    if not args.data.is_dir():
        raise ConfigError(f"--data {args.data}: no such folder")
    args.trained_names = set()
    if args.trained_on:
        from training.synth.generator import open_dataset

        trained_on = Path(args.trained_on).expanduser()
        if not trained_on.is_dir():
            raise ConfigError(f"--trained-on {trained_on}: no such folder")
        args.trained_names = set(open_dataset(trained_on).split("trn").names)
    repo = repo_path(args.repo)
    bases = args.models or model_bases(repo)
    if not bases:
        raise ConfigError(f"no exported model in {repo}: strata export CHECKPOINT --repo {repo}")
    args.depths = args.depths or sorted({max(TOP, math.ceil(args.corpus * p)) for p in (0.001, 0.002, 0.005, 0.01, 0.02)})
    rows = []
    tell(HEADER)
    with tempfile.TemporaryDirectory(prefix="strata-rerank-") as scratch:
        for base in bases:
            rows += run_model(args, repo, base, Path(scratch), tell)
    tell("\n" + HEADER)
    for row in sorted(rows, key=lambda r: (r["model"], r["direction"], r["strategy"], r["depth"])):
        tell(_line(row))
    tell(f"\nchosen (least depth, then latency, with agreement@10 >= {args.target}, else the best agreement):")
    for (model, direction), (strategy, depth, agreement) in sorted(choose(rows, args.target).items()):
        tell(f"  {model:8s} {direction}  {strategy:8s} depth {depth:5d}  agreement@10 {agreement:.3f}")
    plot(rows, Path(args.out))
    tell(f"figure: {args.out}")
    emit_json(args, rows)
    return 0
