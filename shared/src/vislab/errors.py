"""User-facing errors: one clear message, no traceback."""

from __future__ import annotations

from pathlib import Path


class VislabError(Exception):
    """An error caused by the user's input (a path, a file, a config value).

    The command line prints ``error: <message>`` and exits with code 2, without a
    traceback unless ``VISLAB_DEBUG=1`` is set.
    """


class InputError(VislabError):
    """A file the user gave is missing, unreadable or of the wrong kind."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class ConfigError(VislabError):
    """A config file or override is malformed or names an unknown key."""
