"""``strata up`` and ``strata down``: the local stack (Milvus Lite, Triton, the gateway) as background processes;
``strata backup`` and ``strata restore``: its data, copied while it is down."""
from __future__ import annotations

import argparse

from common.conventions import add_command, port, positive_float, repo_help, repo_path, setting_help

def register(subparsers: argparse._SubParsersAction) -> None:
    up = add_command(subparsers, "up", help="start Milvus Lite, Triton, the gateway and the HTTP API (reusing any "
                                            "already running)",
                     description="Starts the local stack as background processes recorded under $STRATA_HOME: Milvus "
                                 "Lite's server (unless the milvus_uri setting names another Milvus), Triton with the "
                                 "active model version, the gateway, and the HTTP/JSON API in front of it. Every "
                                 "address comes from the settings.",
                     examples=["strata up", "strata up --model hgr_fast --gateway-port 50052",
                               "STRATA_TRITON_GRPC_PORT=18001 strata up"])
    up.add_argument("--model", help=setting_help("model to serve when no version is active yet (empty: the only model "
                                                 "exported)", "model"))
    up.add_argument("--gateway-port", type=port, help=setting_help("gateway gRPC port (0: any free port)", "gateway_port"))
    up.add_argument("--http-port", type=port, help=setting_help("HTTP/JSON API port (0: any free port)", "http_port"))
    up.add_argument("--milvus-port", type=port, help=setting_help("Milvus Lite port (0: any free port)", "milvus_port"))
    up.add_argument("--repo", help=repo_help())
    up.add_argument("--timeout", type=positive_float, default=240.0, help="seconds each part may take to come up")
    up.set_defaults(func=_up)

    down = add_command(subparsers, "down", help="stop the HTTP API, the gateway, Triton and Milvus Lite started by "
                                                "`strata up`",
                       examples=["strata down"])
    down.set_defaults(func=_down)

    backup = add_command(subparsers, "backup", help="copy the local stack's index, tensor store and model versions "
                                                    "into a new folder (the stack stopped)",
                         description="Copies Milvus Lite's db file, the tensor store and the model repository of "
                                     "$STRATA_HOME into DEST with each file's SHA-256 (deploy/backup.py). The stack "
                                     "must be down (strata down): its files are copied as files. A Milvus server or "
                                     "a tensor store on object storage has its own backup route (deploy/README.md).",
                         examples=["strata backup /backups/strata-2026-12-06   # after strata down; then strata up"])
    backup.add_argument("dest", help="a new (or empty) folder")
    backup.set_defaults(func=_backup)

    restore = add_command(subparsers, "restore", help="copy a backup into a fresh $STRATA_HOME, each file checked",
                          description="Copies a backup made by strata backup into $STRATA_HOME, where the settings in "
                                      "force put each part, checking every file's SHA-256; a home that already holds "
                                      "any part is refused (nothing is overwritten), and a damaged backup restores "
                                      "nothing. Then strata up serves what was backed up.",
                          examples=["strata restore /backups/strata-2026-12-06   # into a fresh $STRATA_HOME; then strata up"])
    restore.add_argument("source", help="a folder written by strata backup")
    restore.set_defaults(func=_restore)


def _up(args: argparse.Namespace) -> int:
    from common.settings import load_settings
    from deploy.stack import up

    settings = load_settings({"model": args.model, "gateway_port": args.gateway_port, "http_port": args.http_port,
                              "milvus_port": args.milvus_port,
                              "model_repository": str(repo_path(args.repo)) if args.repo else None})
    state = up(settings, timeout=args.timeout)
    http = f", HTTP API {state.http}" if state.http else ""
    print(f"Strata is up: gateway {state.gateway}{http}, serving {state.model} version {state.version}. "
          f"Try: strata search \"a man is slicing bread\"; stop with: strata down")
    return 0


def _down(args: argparse.Namespace) -> int:
    from deploy.stack import down

    down()
    return 0


def _backup(args: argparse.Namespace) -> int:
    from common.settings import load_settings
    from deploy.backup import backup

    backup(load_settings(), args.dest)
    return 0


def _restore(args: argparse.Namespace) -> int:
    from common.settings import load_settings
    from deploy.backup import restore

    restore(load_settings(), args.source)
    return 0
