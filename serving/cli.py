"""``strata triton start|stop|status|swap``: the real Triton server on the model repository."""
from __future__ import annotations

import argparse

from clients.conventions import (add_command, port, positive_float, positive_int, repo_help, repo_path, setting_help,
                                 settings)


def register(subparsers: argparse._SubParsersAction) -> None:
    triton = add_command(
        subparsers, "triton", help="run the Triton server on the model repository (start|stop|status|swap)",
        description="The real tritonserver on the model repository: one server per $STRATA_HOME, its address "
                    "recorded there so that `strata evaluate --backend triton` finds it.",
        examples=["strata triton start", "strata triton status", "strata triton swap hgr_fast --version 2",
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

    swap = add_command(commands, "swap", help="serve version N beside the current one(s); --retire M drops M",
                       examples=["strata triton swap hgr_fast --version 2", "strata triton swap hgr_fast --retire 1"])
    swap.add_argument("name", help="a model base (e.g. vsepp_fast: its text, video and scorer) or one Triton model")
    swap.add_argument("--version", type=positive_int, help="version to add (it must be in the server's repository)")
    swap.add_argument("--retire", type=positive_int, help="version to drop")
    swap.set_defaults(func=_swap)


def _start(args: argparse.Namespace) -> int:
    from serving.triton.server import TritonServer

    current = settings({"triton_http_port": args.http_port, "triton_grpc_port": args.grpc_port,
                        "triton_metrics_port": args.metrics_port})
    server = TritonServer()
    ports = None if 0 in current.triton_ports else current.triton_ports   # 0: free ports, picked without a race
    state = server.start(repo_path(args.repo), args.models, ports, address=current.address,
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
    from serving.triton.server import ServerError, TritonServer
    from serving.triton.swap import swap

    state = TritonServer().state()
    if state is None:
        raise ServerError("no Triton server running; `strata triton start` first")
    for model, versions in swap(state.grpc_url, args.name, args.version, args.retire, repo=state.repo).items():
        print(f"{model}: serving version(s) {', '.join(map(str, versions))}")
    return 0
