"""Errors that mean "the user gave us something we cannot use" (CLI exit code 2).

Everything else that escapes is a bug (exit code 1). Messages are one line, name the file and the fix.
"""
from __future__ import annotations


class InputError(Exception):
    """Bad input or usage: a path, a parameter or a file that does not fit. Exit code 2."""


class OutputExistsError(InputError):
    """An output exists and ``overwrite`` was not given."""

    def __init__(self, path: object) -> None:
        super().__init__(f"{path}: output exists; pass --overwrite (overwrite=True) to replace it")
