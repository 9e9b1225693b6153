"""``strata triton start|stop|status|swap``: the real Triton server on the model repository."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    triton = subparsers.add_parser("triton", help="run the Triton server on the model repository (start|stop|status|swap)")
    commands = triton.add_subparsers(dest="triton_command", metavar="ACTION", required=True)

    start = commands.add_parser("start", help="start tritonserver (explicit model control, loopback) and wait until ready")
    start.add_argument("--repo", default="model_repository", help="model repository (default: %(default)s)")
    start.add_argument("--models", nargs="+", help="models to load (default: every model the repository holds)")
    start.add_argument("--http-port", type=int, default=8000)
    start.add_argument("--grpc-port", type=int, default=8001)
    start.add_argument("--metrics-port", type=int, default=8002)
    start.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for readiness")
    start.set_defaults(func=_start)

    stop = commands.add_parser("stop", help="stop the server (copes with a stale process id)")
    stop.set_defaults(func=_stop)

    status = commands.add_parser("status", help="the server, its models and their versions")
    status.set_defaults(func=_status)

    swap = commands.add_parser("swap", help="serve version N beside the current one(s); --retire M drops M")
    swap.add_argument("name", help="a model base (e.g. vsepp_fast: its text, video and scorer) or one Triton model")
    swap.add_argument("--version", type=int, help="version to add")
    swap.add_argument("--retire", type=int, help="version to drop")
    swap.set_defaults(func=_swap)


def _start(args: argparse.Namespace) -> int:
    from serving.triton.server import TritonServer

    server = TritonServer()
    state = server.start(args.repo, args.models, (args.http_port, args.grpc_port, args.metrics_port), timeout=args.timeout)
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
    for model, versions in swap(state.grpc_url, args.name, args.version, args.retire).items():
        print(f"{model}: serving version(s) {', '.join(map(str, versions))}")
    return 0
