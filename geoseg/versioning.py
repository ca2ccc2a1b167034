"""Versioned file formats: bundle metadata and training configs carry a format version and are upgraded.

An upgrader turns the dict of version N into version N+1; every one is kept forever, so files written by
any earlier geoseg still load. A file newer than this geoseg is refused with the fix (upgrade geoseg).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from geoseg.errors import InputError

Upgrader = Callable[[dict[str, Any]], dict[str, Any]]


def upgrade(raw: dict[str, Any], *, current: int, upgraders: Mapping[int, Upgrader], unversioned: int,
            where: object, what: str, error: type[InputError], fix_old: str) -> dict[str, Any]:
    """``raw`` brought to version ``current``; ``unversioned`` is the version of files without the key."""
    version = int(raw.get("format_version", unversioned))
    if version > current:
        raise error(f"{where}: {what} format {version} is newer than this geoseg reads ({current}); upgrade geoseg")
    while version < current:
        if version not in upgraders:
            raise error(f"{where}: {what} format {version} is not supported; {fix_old}")
        raw = upgraders[version](raw)
        version = int(raw["format_version"])
    return raw
