"""``strata triton start|stop|status``: the real Triton server on the model repository; ``strata swap``: the whole
service to another model version (Triton's load and unload are its inner steps)."""
from __future__ import annotations

import argparse

from common.conventions import (add_command, port, positive_float, positive_int, repo_help, repo_path, setting_help,
                                 settings)


def register(subparsers: argparse._SubParsersAction) -> None:
    triton = add_command(
        subparsers, "triton", help="run the Triton server on the model repository (start|stop|status)",
        description="The real tritonserver on the model repository: one server per $STRATA_HOME, its address "
                    "recorded there so that `strata evaluate --backend triton` finds it.",
        examples=["strata triton start", "strata triton status",
                  "strata triton stop"])
    commands = triton.add_subparsers(dest="triton_command", metavar="ACTION", required=True)

    start = add_command(commands, "start", help="start tritonserver (explicit model control) and wait until ready",
                        examples=["strata triton start",
                                  "strata triton start --repo ./my_repository --grpc-port 18001 --models hgr_fast_text"])
    start.add_argument("--repo", help=repo_help())
    start.add_argument("--models", nargs="+", help="models to load (default: every model the repository holds)")
    start.add_argument("--http-port", type=port, help=setting_help("HTTP port", "triton_http_port"))
    start.add_argument("--grpc-port", type=port, help=setting_help("gRPC port", "triton_grpc_port"))
    start.add_argument("--metrics-port", type=port, help=setting_help("metrics port", "triton_metrics_port"))
    start.add_argument("--timeout", type=positive_float, default=180.0, help="seconds to wait for readiness")
    start.set_defaults(func=_start)

    stop = add_command(commands, "stop", help="stop the server (copes with a stale process id)",
                       examples=["strata triton stop"])
    stop.set_defaults(func=_stop)

    status = add_command(commands, "status", help="the server, its models and their versions (exit 1: none running)",
                         examples=["strata triton status"])
    status.set_defaults(func=_status)

    swap = add_command(
        subparsers, "swap", help="move the whole service to model version N (towers, scorer, index, tensors); "
                                 "--retire M drops M",
        description="Triton loads N beside the active version; the indexed corpus is re-embedded from the stored "
                    "source features into N's collections and tensor stores (resumable: a rerun continues); then "
                    "the active version flips in one step, and every gateway switches while its calls in flight "
                    "finish on the old version. --retire M then unloads M from Triton and drops its index and "
                    "tensors. A swap that fails before the flip leaves the old version serving.",
        examples=["strata swap hgr_fast --version 2", "strata swap hgr_fast --version 2 --retire 1",
                  "strata swap hgr_fast --retire 1"])
    swap.add_argument("name", help="the model base, e.g. hgr_fast (its text tower, video tower and scorer)")
    swap.add_argument("--version", type=positive_int, help="version to activate (it must be exported)")
    swap.add_argument("--retire", type=positive_int, help="version to retire")
    swap.add_argument("--repo", help=repo_help("model repository; the running Triton server's first"))
    swap.set_defaults(func=_swap)


def _start(args: argparse.Namespace) -> int:
    from serving.triton.server import TritonServer

    current = settings({"triton_http_port": args.http_port, "triton_grpc_port": args.grpc_port,
                        "triton_metrics_port": args.metrics_port})
    server = TritonServer()
    ports = None if 0 in current.triton_ports else current.triton_ports   # 0: free ports, picked without a race
    state = server.start(repo_path(args.repo), args.models, ports, address=current.triton_address,
                         timeout=args.timeout)
    print(f"tritonserver ready (pid {state.pid}): gRPC {state.grpc_url}, HTTP {state.address}:{state.http_port}, "
          f"metrics {state.address}:{state.metrics_port}")
    print(f"repository {state.repo}; models: {', '.join(state.models)}; log {state.log}")
    return 0


def _stop(args: argparse.Namespace) -> int:
    from serving.triton.server import TritonServer

    print(TritonServer().stop())
    return 0


def _status(args: argparse.Namespace) -> int:
    from serving.triton.server import TritonServer

    server = TritonServer()
    state = server.state()
    if state is None:
        print("no Triton server running")
        return 1
    print(f"tritonserver pid {state.pid}: gRPC {state.grpc_url}, repository {state.repo}, log {state.log}")
    for m in server.models():
        reason = f"  ({m['reason']})" if m["reason"] else ""
        print(f"  {m['name']:32s} version {m['version'] or '-':>4s}  {m['state']}{reason}")
    return 0


def _swap(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from common.connect import service_settings
    from serving.swap import swap

    current = service_settings(settings())
    if args.repo:
        current = replace(current, model_repository=str(repo_path(args.repo)))
    report = swap(current, args.name, args.version, args.retire)
    print(f"active: {report.model} version {report.version} (was {report.previous[0]} version {report.previous[1]}); "
          f"{report.videos} videos, {report.captions} captions indexed; {report.reembedded} items re-embedded in "
          f"{report.seconds:.1f}s")
    return 0