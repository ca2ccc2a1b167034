"""Atomic outputs: write under a temporary name in the target folder, rename only when complete.

A crash or a cancel therefore never leaves a half-written file under the name the user asked for, and
the temporaries of a run that died without cleaning up (SIGKILL, power cut) are removed by the next run
to the same target. Nothing
here ever deletes a folder or an input: a target that is a folder, or one of the run's inputs, is refused
even with ``overwrite``. An existing file is replaced only with ``overwrite``, and that is checked again at
the moment of the rename (a file that appeared during the run is not clobbered: the rename is a hard link
that fails when the name is taken).
"""
from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import shutil
import socket
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from geoseg.errors import OutputError, OutputExistsError

#: Sidecar extensions that belong to a main file (Shapefile parts, GDAL aux files).
SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx")
PathLike = str | os.PathLike


def check_writable(path: PathLike, overwrite: bool, inputs: Sequence[object] = ()) -> Path:
    """Refuse early (before hours of work) a target that exists without overwrite, is a folder, is one of
    ``inputs``, or whose folder is missing or read-only."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; pass a file path for the output (geoseg never replaces a folder)")
    for source in inputs:
        if _same_file(path, _path_of(source)):
            raise OutputError(f"{path}: is also an input of this run; write the output to another path")
    if path.exists() and not overwrite:
        raise OutputExistsError(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{path}: output folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{path}: output folder {parent} is not writable; choose another output path")
    return path


@contextlib.contextmanager
def atomic_output(path: PathLike, overwrite: bool = False, sidecars: Sequence[str] = (),
                  inputs: Sequence[object] = ()) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it (and its sidecars) into place.

    ``sidecars`` lists extensions of files that travel with the main one (e.g. Shapefile parts); GDAL's
    ``.aux.xml`` and ``.ovr`` are always carried. On any exception, every temporary file is removed.
    """
    final = check_writable(path, overwrite, inputs)
    remove_stale_temporaries(final)
    tmp = final.with_name(f".{final.stem}.tmp-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:6]}{final.suffix}")
    carried = [s for s in sidecars if s != final.suffix]
    pairs = [(tmp, final)]
    pairs += [(tmp.with_suffix(s), final.with_suffix(s)) for s in carried]
    pairs += [(Path(str(tmp) + s), Path(str(final) + s)) for s in (".aux.xml", ".ovr")]
    if not overwrite:                                    # refuse now what the final rename would refuse
        for _, dst in pairs[1:]:
            if dst.exists():
                raise OutputExistsError(dst)
    try:
        try:
            yield tmp
        except Exception as err:
            _raise_if_disk_full(final, err)
            raise
        check_writable(final, overwrite, inputs)        # again: the world may have changed during the run
        if overwrite:
            for _, dst in pairs[1:]:
                _remove_file(dst)                        # stale sidecars of the file being replaced
        for src, dst in pairs:
            if src.exists():
                _move(src, dst, overwrite)
    finally:
        for src, _ in pairs:
            _remove_file(src)


#: Temporary names carry the host and process that write them, so a later run can tell a dead run's
#: leftovers (a SIGKILL or a power cut skips every cleanup) from a live run's files, even on a shared disk.
_HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"
_TEMPORARY = re.compile(r"\.tmp-(?P<host>[A-Za-z0-9_.]+)-(?P<pid>\d+)-[0-9a-f]{6}")


def remove_stale_temporaries(final: Path) -> list[Path]:
    """Remove the temporary files of runs to ``final`` whose process is gone (this host's only)."""
    removed = []
    folder = final.parent if str(final.parent) else Path(".")
    for path in folder.glob(f".{glob.escape(final.stem)}.tmp-*"):
        match = _TEMPORARY.search(path.name)
        if match and match["host"] == _HOST and not _alive(int(match["pid"])) and path.is_file():
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:              # another user's live process
        return True
    return True


def _move(src: Path, dst: Path, overwrite: bool) -> None:
    """Rename ``src`` to ``dst``; without ``overwrite`` fail rather than replace a file that appeared."""
    if overwrite:
        if dst.is_dir():
            raise OutputError(f"{dst}: is a folder; pass a file path for the output")
        os.replace(src, dst)
        return
    try:
        os.link(src, dst)                                # atomic, and fails if dst exists
    except FileExistsError:
        raise OutputExistsError(dst) from None
    except OSError:                                      # file systems without hard links
        if dst.exists():
            raise OutputExistsError(dst) from None
        os.replace(src, dst)
        return
    src.unlink()


#: Less free space than this in the output folder when a write fails means the disk filled up.
DISK_FULL_BYTES = 1 << 20


def _raise_if_disk_full(final: Path, err: Exception) -> None:
    """Name a full disk instead of the writer's symptom (GDAL says "IO error writing tag data" or, reading
    back a truncated stage file, "Cannot read 11226 bytes"). Checked before the temporaries are removed."""
    folder = final.parent if str(final.parent) else Path(".")
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < DISK_FULL_BYTES or getattr(err, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
        raise OutputError(f"{final}: no space left in {folder} ({free / 2**20:.1f} MiB free) while writing it; "
                          "free some space or write the output elsewhere") from err


def _path_of(source: object) -> Path | None:
    """The file behind an input: a path, or an open dataset's ``name`` (in-memory datasets have none)."""
    if isinstance(source, (str, os.PathLike)):
        return Path(source)
    name = getattr(source, "name", None)
    return Path(name) if isinstance(name, str) else None


def _same_file(a: Path, b: Path | None) -> bool:
    if b is None:
        return False
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _remove_file(path: Path) -> None:
    """Remove a file we own; never a folder."""
    if path.is_dir():
        return
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
