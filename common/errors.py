"""Errors a user can act on. The CLI prints them as one line, without a traceback."""


class StrataError(Exception):
    """Base class: the message names what was wrong (file, item, key) and what was expected."""


class ConfigError(StrataError):
    """A config file or override is malformed: unknown key, wrong type, bad value."""


class DataError(StrataError):
    """A dataset file or item is missing, corrupt or inconsistent."""


def read_json_file(path, what: str = "file"):
    """Parse a JSON file; a missing or malformed file raises ``DataError`` naming it (``what`` says what it is)."""
    import json
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} not found: {path}")
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON: {err}") from None
