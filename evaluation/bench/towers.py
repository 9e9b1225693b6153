"""``strata bench towers``: text and video tower latency/throughput, four ways side by side in one run.

Eager PyTorch, in-process ONNX Runtime, Triton over gRPC (protobuf tensors) and Triton with system shared memory,
at batch 1 and 32 (``--batches``), on inputs at the preprocessing limits (30 words, 4 verbs, 6 nouns, 20 frames,
8 regions). The model is a freshly initialised one exported into a temporary repository (or ``--repo`` with an
existing export), served by a real tritonserver on free loopback ports; ONNX Runtime gets the same thread count in
process and in Triton's python backend. Each cell is the median of ``--iters`` timed calls after warm-up.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from common.conventions import positive_int, standalone_parser

SIZES = {"words": 30, "verbs": 4, "nouns": 6, "frames": 20, "regions": 8}
METHODS = ("pytorch", "onnxruntime", "triton_grpc", "triton_shm")


def median_ms(calls: dict, iters: int, warmup: int = 3) -> dict[str, float]:
    """Median ms per call of each method; the methods take turns call by call, so load from other processes on
    the machine falls on all of them alike."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(iters):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: 1000.0 * statistics.median(t) for name, t in times.items()}


def run(argv: list[str]) -> int:
    parser = standalone_parser("strata bench towers", __doc__, ["strata bench towers --batches 1 32 --iters 10"])
    parser.add_argument("--model", default="hgr", help="zoo model")
    parser.add_argument("--preset", default="fast", help="preset: fast or paper")
    parser.add_argument("--repo", help="an existing repository holding <model>_<preset> (default: export into a temp one)")
    parser.add_argument("--version", type=int, help="version in --repo (default: latest)")
    parser.add_argument("--batches", type=positive_int, nargs="+", default=[1, 32], help="batch sizes timed")
    parser.add_argument("--iters", type=positive_int, default=30, help="timed calls per cell")
    parser.add_argument("--threads", type=positive_int, default=2, help="PyTorch / ONNX Runtime intra-op threads")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    args = parser.parse_args(argv)

    import torch

    from common.repository import latest_version, model_name
    from export.batches import random_inputs
    from export.exporter import export_version, load_source
    from export.runner import OnnxRunner
    from export.triton_config import ServingOptions
    from serving.triton.client import TritonTowers
    from serving.triton.server import TritonServer
    from training.engine.runner import TorchRunner

    torch.set_num_threads(args.threads)
    base = f"{args.model}_{args.preset}"
    with tempfile.TemporaryDirectory(prefix="strata-bench-") as tmp:
        if args.repo:
            repo, version = Path(args.repo), args.version or latest_version(Path(args.repo), base)
            from training.models.factory import create_model

            manifest = OnnxRunner(repo, base, version, parts=()).manifest
            model = create_model(args.model, manifest["config"])
            print("note: PyTorch runs the architecture with fresh weights (timing only)")
        else:
            repo, version = Path(tmp) / "repo", 1
            model, source = load_source(None, args.model, args.preset, seed=0)
            print(f"exporting {base} (random init) ...", flush=True)
            export_version(model, source, repo, version, ServingOptions(threads=args.threads), log=lambda *_: None)
        ort = OnnxRunner(repo, base, version, threads=args.threads, parts=("text", "video"))
        torch_runner = TorchRunner(model)
        server = TritonServer(Path(tmp) / "run")
        state = server.start(repo, [model_name(base, "text"), model_name(base, "video")], ports=None)
        grpc = TritonTowers(state.grpc_url, base, ort.layout, version=version)
        shm = TritonTowers(state.grpc_url, base, ort.layout, version=version, shared_memory=True)
        vocab = ort.manifest["config"]["text"].get("vocab_size", 0)
        rows = []
        try:
            for part in ("text", "video"):
                tower = ort.layout.text if part == "text" else ort.layout.video
                for batch in args.batches:
                    inputs = random_inputs(tower, {**SIZES, "batch": batch}, seed=batch, vocab_size=vocab)
                    mb = sum(v.nbytes for v in inputs.values()) / 1e6
                    calls = {
                        "pytorch": lambda: getattr(torch_runner, f"encode_{part}")(inputs),
                        "onnxruntime": lambda: getattr(ort, f"encode_{part}")(inputs),
                        "triton_grpc": lambda: grpc.infer(part, inputs),
                        "triton_shm": lambda: shm.infer(part, inputs),
                    }
                    ms = median_ms(calls, args.iters)
                    rows.append({"tower": part, "batch": batch, "input_mb": mb, "ms": ms,
                                 "items_per_s": {m: 1000.0 * batch / v for m, v in ms.items()}})
                    print(f"  {part} batch {batch}: " + ", ".join(f"{m} {v:.2f} ms" for m, v in ms.items()), flush=True)
        finally:
            grpc.close()
            shm.close()
            server.stop()
    _print_table(base, args, rows)
    if args.json:
        Path(args.json).write_text(json.dumps({"model": base, "threads": args.threads, "rows": rows}, indent=2))
    return 0


def _print_table(base: str, args: argparse.Namespace, rows: list[dict]) -> None:
    print(f"\n{base}: median ms per call ({args.iters} calls, {args.threads} threads); x = time / ONNX Runtime's; "
          f"items/s = batch / time")
    header = f"{'tower':6s} {'batch':>5s} {'in MB':>6s} " + " ".join(f"{m:>20s}" for m in METHODS)
    print(header)
    print("-" * len(header))
    for row in rows:
        ref = row["ms"]["onnxruntime"]
        cells = " ".join(f"{row['ms'][m]:8.2f} ms {row['ms'][m] / ref:4.1f}x {'':1s}".rjust(20) for m in METHODS)
        print(f"{row['tower']:6s} {row['batch']:5d} {row['input_mb']:6.2f} {cells}")
    print("items/s: " + "; ".join(f"{r['tower']}@{r['batch']}: " + ", ".join(f"{m} {r['items_per_s'][m]:.0f}" for m in METHODS)
                                  for r in rows))
