"""Errors a user can act on. The CLI prints them as one line, without a traceback."""


class StrataError(Exception):
    """Base class: the message names what was wrong (file, item, key) and what was expected."""


class ConfigError(StrataError):
    """A config file or override is malformed: unknown key, wrong type, bad value."""


class DataError(StrataError):
    """A dataset file or item is missing, corrupt or inconsistent."""
