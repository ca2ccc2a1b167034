"""Atomic outputs: write under a temporary name in the target folder, rename only when complete.

A crash or a cancel therefore never leaves a half-written file under the name the user asked for, and an
existing file is never replaced unless ``overwrite`` is true.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from geoseg.errors import OutputError, OutputExistsError

#: Sidecar extensions that belong to a main file (Shapefile parts, GDAL aux files).
SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx")


def check_writable(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse early (before hours of work) when ``path`` exists without overwrite or its folder is missing."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{path}: output folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{path}: output folder {parent} is not writable; choose another output path")
    return path


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike, overwrite: bool = False, sidecars: Sequence[str] = ()
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it (and its sidecars) into place.

    ``sidecars`` lists extensions of files that travel with the main one (e.g. Shapefile parts); GDAL's
    ``.aux.xml`` and ``.ovr`` are always carried. On any exception, every temporary file is removed.
    """
    final = check_writable(path, overwrite)
    tmp = final.with_name(f".{final.stem}.tmp-{uuid.uuid4().hex[:8]}{final.suffix}")
    carried = [s for s in sidecars if s != final.suffix]

    def tmp_parts() -> list[tuple[Path, Path]]:
        pairs = [(tmp, final)]
        pairs += [(tmp.with_suffix(s), final.with_suffix(s)) for s in carried]
        pairs += [(Path(str(tmp) + s), Path(str(final) + s)) for s in (".aux.xml", ".ovr")]
        return pairs

    try:
        yield tmp
    except BaseException:
        for src, _ in tmp_parts():
            _remove(src)
        raise
    if overwrite:
        for _, dst in tmp_parts():
            _remove(dst)
    for src, dst in tmp_parts():
        if src.exists():
            os.replace(src, dst)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
