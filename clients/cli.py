"""The ``strata`` command: a thin dispatcher.

Each package owns its subcommands in a torch-free ``cli`` module exposing ``register(subparsers)``;
handlers import their heavy dependencies (PyTorch, Triton, Milvus) only when they run, so every command is
listed in every install, and one whose dependencies this install lacks says which install has them.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from common.errors import StrataError

# Modules whose ``register(subparsers)`` adds subcommands, in the order they appear in ``--help``.
COMMAND_MODULES = (
    "deploy.demo",           # demo: the main job
    "training.text.cli",     # parse
    "training.synth.cli",    # synth, synth-check
    "training.engine.cli",   # train, diagnose, results
    "export.cli",            # export
    "serving.cli",           # triton start|stop|status|swap
    "deploy.cli",            # up, down: the local stack
    "clients.service_cli",   # search, index, info: ask the gateway
    "evaluation.cli",        # evaluate, bench NAME
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="strata",
        description="Multi-level video-text retrieval: parse, synthesise data, train, export, serve.",
        epilog="Every command has --help, with its defaults and examples. Addresses, ports, paths and limits come "
               "from the settings (a flag's help names its setting KEY): built-in defaults, then "
               "$STRATA_HOME/settings.yaml (KEY: value), then STRATA_<KEY> variables, then flags.",
    )
    parser.add_argument("--version", action="version", version=f"strata {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("strata")
    except PackageNotFoundError:
        return "(not installed)"


_OWN_PACKAGES = {name.split(".")[0] for name in COMMAND_MODULES}


def _missing_install(module: str) -> str:
    """What to install for a missing module: the extra of Strata's that requires a distribution of that name,
    else the training install (it has everything)."""
    from importlib.metadata import PackageNotFoundError, requires
    from re import split

    wanted, extra = module.split(".")[0].replace("_", "-").lower(), "training"
    try:
        for requirement in requires("strata") or []:
            name, _, marker = requirement.partition(";")
            if split(r"[\[<>=!~ ]", name.strip(), maxsplit=1)[0].replace("_", "-").lower() == wanted and "extra" in marker:
                extra = marker.split("extra")[-1].strip(" =\"'")
                break
    except PackageNotFoundError:
        pass
    return (f"this command needs {module!r}, which this install of Strata lacks: "
            f"pip install 'strata[{extra}]' (the README's Installs say what each install holds)")


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)  # unknown flags and out-of-range values are errors (argparse exits with 2)
        result = args.func(args)
    except StrataError as err:
        print(f"strata: error: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:
        if err.name is None or err.name.split(".")[0] in _OWN_PACKAGES:
            raise
        print(f"strata: error: {_missing_install(err.name)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("strata: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
