"""``strata up`` and ``strata down``: the local stack (Milvus Lite, Triton, the gateway) as background processes."""
from __future__ import annotations

import argparse

EXAMPLES_UP = """examples:
  strata up                              # serve the only exported model (or the active one)
  strata up --model hgr_fast --gateway-port 50052
  STRATA_TRITON_GRPC_PORT=18001 strata up
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    up = subparsers.add_parser("up", help="start Milvus Lite, Triton and the gateway (reusing any already running)",
                               epilog=EXAMPLES_UP, formatter_class=argparse.RawDescriptionHelpFormatter)
    up.add_argument("--model", help="model to serve if no version is active yet, e.g. hgr_fast (default: the model "
                                    "setting, else the only model exported)")
    up.add_argument("--gateway-port", type=int, help="gateway gRPC port (default: the gateway_port setting, 50051; "
                                                     "0: any free port)")
    up.add_argument("--milvus-port", type=int, help="Milvus Lite port (default: the milvus_port setting, 19530)")
    up.add_argument("--repo", help="model repository (default: the model_repository setting, "
                                   "$STRATA_HOME/model_repository)")
    up.add_argument("--timeout", type=float, default=240.0, help="seconds each part may take to come up "
                                                                  "(default: %(default)s)")
    up.set_defaults(func=_up)

    down = subparsers.add_parser("down", help="stop the gateway, Triton and Milvus Lite started by `strata up`",
                                 epilog="example:\n  strata down", formatter_class=argparse.RawDescriptionHelpFormatter)
    down.set_defaults(func=_down)


def _up(args: argparse.Namespace) -> int:
    from pathlib import Path

    from deploy.stack import up
    from training.settings import load_settings

    settings = load_settings({"model": args.model, "gateway_port": args.gateway_port,
                              "milvus_port": args.milvus_port,
                              "model_repository": str(Path(args.repo).resolve()) if args.repo else None})
    state = up(settings, timeout=args.timeout)
    print(f"Strata is up: gateway {state.gateway}, serving {state.model} version {state.version}. "
          f"Try: strata search \"a man is slicing bread\"; stop with: strata down")
    return 0


def _down(args: argparse.Namespace) -> int:
    from deploy.stack import down

    down()
    return 0
