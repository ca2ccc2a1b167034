"""Atomic outputs never lose data: no folder deleted, no input replaced, no file clobbered that appeared."""
from __future__ import annotations

from pathlib import Path

import pytest

from geoseg.errors import OutputError, OutputExistsError
from geoseg.io.outputs import atomic_output, check_writable


def test_a_folder_is_never_a_target_even_with_overwrite(tmp_path: Path) -> None:
    folder = tmp_path / "results"
    (folder / "keep").mkdir(parents=True)
    (folder / "keep" / "a.txt").write_text("precious")
    for overwrite in (False, True):
        with pytest.raises(OutputError, match="is a folder"):
            with atomic_output(folder, overwrite=overwrite) as tmp:
                tmp.write_text("x")
    assert (folder / "keep" / "a.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


def test_an_input_is_never_a_target_even_with_overwrite(tmp_path: Path) -> None:
    scene = tmp_path / "scene.tif"
    scene.write_bytes(b"scene")
    with pytest.raises(OutputError, match="also an input"):
        check_writable(tmp_path / "." / "scene.tif", overwrite=True, inputs=[scene])
    link = tmp_path / "alias.tif"
    link.symlink_to(scene)
    with pytest.raises(OutputError, match="also an input"):
        check_writable(link, overwrite=True, inputs=[scene])
    assert scene.read_bytes() == b"scene"


def test_a_file_that_appears_during_the_run_is_not_clobbered(tmp_path: Path) -> None:
    target = tmp_path / "map.tif"
    with pytest.raises(OutputExistsError):
        with atomic_output(target) as tmp:
            tmp.write_text("ours")
            target.write_text("theirs")                  # someone else, mid-run
    assert target.read_text() == "theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["map.tif"]


def test_success_moves_the_file_and_sidecars_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.shp"
    with atomic_output(target, sidecars=(".shp", ".dbf")) as tmp:
        tmp.write_text("shp")
        tmp.with_suffix(".dbf").write_text("dbf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.dbf", "out.shp"]
    with atomic_output(target, overwrite=True, sidecars=(".shp", ".dbf")) as tmp:
        tmp.write_text("shp2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.shp"]   # stale sidecar of the old file removed
    assert target.read_text() == "shp2"


def test_failure_removes_every_temporary_file(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with atomic_output(tmp_path / "x.tif") as tmp:
            tmp.write_text("half")
            Path(str(tmp) + ".aux.xml").write_text("aux")
            raise RuntimeError("cancelled")
    assert list(tmp_path.iterdir()) == []


def test_a_stale_sidecar_is_refused_before_the_work(tmp_path: Path) -> None:
    """An orphaned ``.aux.xml`` would otherwise fail the final rename, after the whole run."""
    target = tmp_path / "map.tif"
    stale = tmp_path / "map.tif.aux.xml"
    stale.write_text("<PAMDataset/>")
    with pytest.raises(OutputExistsError, match="map.tif.aux.xml"):
        with atomic_output(target) as tmp:
            raise AssertionError("the body must not run")
    with atomic_output(target, overwrite=True) as tmp:
        tmp.write_text("map")
    assert target.read_text() == "map" and not stale.exists()


def test_temporaries_of_dead_runs_are_removed_by_the_next_run(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from geoseg.io import outputs

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".map.tmp-{outputs._HOST}-{dead_pid}-abcdef.tif"
    stage = tmp_path / f".map.tmp-{outputs._HOST}-{dead_pid}-abcdef.tif.stage.tif"
    live = tmp_path / f".map.tmp-{outputs._HOST}-{os.getpid()}-123456.tif"          # a run still going
    elsewhere = tmp_path / f".map.tmp-otherhost-{dead_pid}-abcdef.tif"              # another machine's
    other_target = tmp_path / f".maps.tmp-{outputs._HOST}-{dead_pid}-abcdef.tif"
    for path in (stale, stage, live, elsewhere, other_target):
        path.write_text("x")
    with atomic_output(tmp_path / "map.tif") as tmp:
        tmp.write_text("map")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (live, elsewhere, other_target, tmp_path / "map.tif"))
