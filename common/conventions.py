"""The conventions every ``strata`` subcommand follows, in one place (torch-free; used by each package's cli module).

- ``add_command``: a subcommand whose ``--help`` shows every default and ends with worked examples.
- Values are checked where argparse reads them, and the message gives the valid range: ``positive_int``,
  ``non_negative_int``, ``int_range``, ``positive_float``, ``port``, ``key_value``.
- ``--set KEY=VALUE`` (repeatable) overrides a config value: ``add_set_flag``.
- ``--json [FILE]`` gives the command's figures as JSON, on stdout or in FILE: ``add_json_flag`` / ``emit_json``.
  (``--out`` names the file or folder a command *produces*: a dataset, parsed captions, a table.)
- Addresses, ports, paths and limits default to :mod:`common.settings` (flag defaults are None): ``settings``
  gives the settings in force, ``setting_help`` shows the effective default in ``--help``, ``repo_path`` applies
  the model-repository rule.
- ``--depth N``, the first-stage candidates the gateway re-ranks per query, unset by default (the gateway
  chooses): ``add_depth_flag``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, Iterable

from common.errors import ConfigError, StrataError


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's and examples' line breaks, and appends ``(default: X)`` to every option whose
    default is not None/False and whose help does not already say its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "default" in text or default is None or default is False or default == argparse.SUPPRESS or default == []:
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            if isinstance(default, (list, tuple)):
                default = " ".join(map(str, default))
            return f"{text} (default: {default})".strip()
        return text


def add_command(subparsers: argparse._SubParsersAction, name: str, *, help: str, description: str | None = None,
                examples: Iterable[str] = ()) -> argparse.ArgumentParser:
    """A subcommand with the shared help style. ``examples`` are full command lines (``strata ...``), each
    optionally followed by ``  # comment``; at least one is expected."""
    lines = list(examples)
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in lines) if lines else None
    return subparsers.add_parser(name, help=help, description=description or help[:1].upper() + help[1:] + ".",
                                 epilog=epilog, formatter_class=HelpFormatter)


# -- value checks (argparse ``type=`` callables) ---------------------------------------------------------------
def int_range(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in ``low..high`` (either bound may be None)."""
    if low is not None and high is not None:
        wanted = f"an integer in {low}..{high}"
    elif low is not None:
        wanted = f"an integer >= {low}"
    elif high is not None:
        wanted = f"an integer <= {high}"
    else:
        wanted = "an integer"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {value}")
        return value

    parse.__name__ = wanted  # argparse names the type in some messages
    return parse


positive_int = int_range(1)
non_negative_int = int_range(0)
port = int_range(0, 65535)   # 0: any free port (servers started by Strata pick one)


def positive_float(text: str) -> float:
    """An argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
    return value


def key_value(text: str) -> str:
    """An argparse type: ``KEY=VALUE`` with a non-empty dotted key (the value is parsed later, as YAML)."""
    key, sep, _ = text.partition("=")
    if not sep or not key.strip() or any(not part for part in key.strip().split(".")):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. optim.epochs=5), got {text!r}")
    return text


def add_set_flag(parser: argparse.ArgumentParser, what: str = "a config value",
                 example: str = "optim.epochs=5") -> None:
    """``--set KEY=VALUE`` (repeatable) into ``args.overrides`` (a list of strings, possibly empty)."""
    parser.add_argument("--set", dest="overrides", action="append", default=[], type=key_value, metavar="KEY=VALUE",
                        help=f"override {what}, e.g. --set {example} (repeatable; the value is read as YAML)")


# -- JSON output -----------------------------------------------------------------------------------------------
def add_json_flag(parser: argparse.ArgumentParser, what: str = "the figures") -> None:
    """``--json [FILE]``: ``args.json`` is None (text only), ``"-"`` (JSON on stdout) or a file path."""
    parser.add_argument("--json", nargs="?", const="-", metavar="FILE",
                        help=f"also give {what} as JSON: in FILE, or on stdout without FILE "
                             "(the text then goes to stderr)")


def json_on_stdout(args: argparse.Namespace) -> bool:
    """True when ``--json`` without FILE was given: human-readable text should go to stderr."""
    return getattr(args, "json", None) == "-"


def say(args: argparse.Namespace) -> Callable[[str], None]:
    """``print`` to stdout, or to stderr when stdout carries the JSON."""
    stream = sys.stderr if json_on_stdout(args) else sys.stdout
    return lambda message: print(message, file=stream, flush=True)


def emit_json(args: argparse.Namespace, data: Any) -> None:
    """Write ``data`` where ``--json`` said (nothing when it was not given)."""
    target = getattr(args, "json", None)
    if target is None:
        return
    text = json.dumps(data, indent=2, default=str) + "\n"
    if target == "-":
        sys.stdout.write(text)
        return
    path = Path(target)
    if not path.parent.is_dir():
        raise ConfigError(f"--json {target}: folder {path.parent} does not exist")
    path.write_text(text)


# -- settings ----------------------------------------------------------------------------------------------------
def settings(flags: dict[str, Any] | None = None):
    """:func:`common.settings.load_settings` (defaults < settings.yaml < STRATA_* < these flags)."""
    from common.settings import load_settings

    return load_settings(flags)


def setting_help(text: str, key: str, shown: Callable[[Any], Any] | None = None) -> str:
    """Help text ending with the effective default of setting ``key`` and where to change it. A settings file
    that cannot be read shows the built-in default here; the command itself then reports the error."""
    from common.settings import Settings

    try:
        current = settings()
    except StrataError:
        current = Settings()
    value = getattr(current, key) if shown is None else shown(current)
    return f"{text} (default: {value}; setting {key})"


def repo_help(text: str = "Triton model repository") -> str:
    return setting_help(text, "model_repository", lambda s: s.repository)


def repo_path(flag: str | Path | None) -> Path:
    """The model repository: ``--repo`` as given (relative to the current folder), else the setting
    ``model_repository`` (relative values under ``$STRATA_HOME``)."""
    if flag is not None:
        return Path(flag).expanduser().resolve()
    return settings().repository


# -- the gateway's candidate depth -------------------------------------------------------------------------------
def add_depth_flag(parser: argparse.ArgumentParser, both_directions: bool = False) -> None:
    """``--depth N`` into ``args.depth``: None when unset, and a request then carries 0 (the gateway's default).
    ``both_directions``: the command asks text and caption searches alike, each with the same N."""
    scope = ", N for the text and the caption searches alike" if both_directions else ""
    parser.add_argument("--depth", type=positive_int, metavar="N",
                        help=f"first-stage candidates the gateway re-ranks per query (>= the hits returned){scope}; "
                             "unset, the gateway uses the candidate_depth setting if it is set, else the model's "
                             "measured depth for that direction")


# -- plain text --------------------------------------------------------------------------------------------------
def plain(doc: str | None) -> str:
    """A docstring as terminal text: reStructuredText roles and literals (``:func:`x```, ````x````) unwrapped."""
    import re

    text = (doc or "").strip()
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", text)
    return text.replace("``", "`")


def standalone_parser(prog: str, doc: str | None, examples: Iterable[str] = ()) -> argparse.ArgumentParser:
    """A parser for a command that parses its own arguments (``strata bench NAME ...``), in the shared style."""
    lines = list(examples)
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in lines) if lines else None
    return argparse.ArgumentParser(prog=prog, description=plain(doc), epilog=epilog, formatter_class=HelpFormatter)
