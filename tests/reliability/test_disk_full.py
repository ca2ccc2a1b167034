"""A full disk is named in one line, with no traceback and no temporary file left behind."""
from __future__ import annotations

import errno
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from geoseg.errors import OutputError
from geoseg.io.outputs import atomic_output
from tests.conftest import ZION


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 600 kB tmpfs (root only; skipped where mounting is not allowed)."""
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.decode().strip()}); ENOSPC is injected instead")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_predict_on_a_full_disk_says_so(small_disk: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "geoseg", "predict", str(ZION), "-o", str(small_disk / "m.tif"),
                             "--probabilities", str(small_disk / "p.tif"), "--progress", "none"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "geoseg: error: " in result.stderr and "no space left in" in result.stderr
    assert list(small_disk.iterdir()) == []


def test_an_injected_enospc_is_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="x.tif: no space left in"):
        with atomic_output(tmp_path / "x.tif") as tmp:
            tmp.write_text("partial")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []
