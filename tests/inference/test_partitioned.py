"""One scene cut into partitions of tile rows on a real Dask LocalCluster (2 worker processes): the class
map, probabilities and sidecars byte-identical to the single-process run, a killed client resumed without
recomputing finished parts, a dying worker, remote reads, and settings that differ refused on resume."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.windows import Window

import geoseg
from geoseg.errors import ConfigError
from geoseg.progress import NullReporter
from geoseg.inference.tiling import TileGrid, row_partitions
from tests.conftest import ZION, tiny_bundle, tiny_meta, write_crop
from tests.inference.test_distributed import KillOnce

distributed = pytest.importorskip("distributed")
from geoseg.distributed import PartsManifest, predict_partitioned, work_folder  # noqa: E402


@given(height=st.integers(1, 2000), tile=st.sampled_from([32, 64, 256]), share=st.sampled_from([0, 4, 2]),
       count=st.integers(1, 40))
@settings(max_examples=200, deadline=None)
def test_partitions_tile_the_scene_with_the_smallest_halo(height: int, tile: int, share: int, count: int) -> None:
    overlap = tile // share if share else 0
    grid = TileGrid(height, 50, tile, overlap)
    parts = row_partitions(grid, count)
    assert len(parts) == min(count, len(grid.ys))
    assert parts[0].y0 == 0 and parts[-1].y1 == height
    for above, below in zip(parts, parts[1:]):
        assert above.y1 == below.y0 and above.stop == below.row
    for part in parts:
        assert part.first <= part.row < part.stop and part.height > 0
        assert grid.ys[part.first] + tile > part.y0                       # the halo's first row reaches the part
        assert part.first == 0 or grid.ys[part.first - 1] + tile <= part.y0   # and no row above it does


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The tiny Zion bundle, a 230 x 270 px crop (8 tile rows of 64 px at stride 32), and its single-process
    class map (with probabilities beside it)."""
    folder = tmp_path_factory.mktemp("huge")
    meta = tiny_meta(["blue", "green", "red", "nir"], 4, gsd=30.0, mean=9000.0, std=600.0, input_dtype="uint16")
    model = folder / "zion_tiny.safetensors"
    tiny_bundle(meta, seed=3).save(model)
    crop = write_crop(ZION, folder / "mosaic.tif", Window(10, 20, 230, 270))
    single = folder / "single" / "map.tif"
    single.parent.mkdir()
    geoseg.predict(crop, single, model, probabilities=single.with_name("probs.tif"))
    return model, crop, single


def _same_products(made: Path, single: Path) -> None:
    """The map, its attribute table, its style and probabilities: the same bytes as the single-process run."""
    assert made.read_bytes() == single.read_bytes()
    assert Path(f"{made}.aux.xml").read_bytes() == Path(f"{single}.aux.xml").read_bytes()
    assert made.with_suffix(".qml").read_text() == single.with_suffix(".qml").read_text()
    assert made.with_name("probs.tif").read_bytes() == single.with_name("probs.tif").read_bytes()


def _products(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_three_partitions_are_byte_identical_to_one_process(tmp_path: Path, client: object,
                                                            scene: tuple[Path, Path, Path]) -> None:
    model, crop, single = scene
    import rasterio

    with rasterio.open(single) as ds:
        assert len(set(ds.read(1).ravel().tolist())) > 1                 # a map with several classes
    out = tmp_path / "map.tif"
    summary = predict_partitioned(crop, out, model, partitions=3, probabilities=tmp_path / "probs.tif",
                                  scheduler=client)
    _same_products(out, single)
    assert _products(tmp_path) == ["map.qml", "map.stac.json", "map.tif", "map.tif.aux.xml", "probs.tif"]
    assert summary.tiles_total == 8 * 7 and summary.width == 230 and summary.height == 270
    assert summary.pixels_per_class == geoseg.predict(crop, tmp_path / "again.tif", model).pixels_per_class


def test_a_killed_client_is_resumed_without_redoing_finished_parts(tmp_path: Path, client: object,
                                                                   scene: tuple[Path, Path, Path]) -> None:
    model, crop, single = scene
    out = tmp_path / "map.tif"
    script = f"""
import os, signal
from geoseg.distributed import predict_partitioned
from geoseg.progress import NullReporter

class KillAfterTwo(NullReporter):
    def advance(self, n=1):
        self.done_parts = getattr(self, "done_parts", 0) + n
        if self.done_parts >= 2:                    # parts.json records two finished parts by now
            os.kill(os.getpid(), signal.SIGKILL)

predict_partitioned({str(crop)!r}, {str(out)!r}, {str(model)!r}, partitions=5, probabilities={str(tmp_path / 'probs.tif')!r},
                    scheduler={client.scheduler.address!r}, reporter=KillAfterTwo())
"""
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not out.exists()
    left = PartsManifest.read(work_folder(out))
    done = [r for r in left.parts if r.status == "done"]
    assert len(done) >= 2
    stamps = {r.part: left.class_part(r).stat().st_mtime_ns for r in done}
    with pytest.raises(ConfigError, match="resume"):                       # a plain rerun must say resume
        predict_partitioned(crop, out, model, partitions=5, probabilities=tmp_path / "probs.tif", scheduler=client)
    with pytest.raises(ConfigError, match="predictor.overlap"):            # other settings are refused
        predict_partitioned(crop, out, model, partitions=5, probabilities=tmp_path / "probs.tif", scheduler=client,
                            resume=True, overlap=16)
    moved: list[int] = []
    finished = PartsManifest.write

    def spy(self: PartsManifest) -> None:                                  # what the resumed run recomputes
        moved.extend(r.part for r in self.parts if r.status == "done" and r.part not in stamps
                     and r.part not in moved)
        for part, mtime in stamps.items():
            assert self.class_part(self.parts[part]).stat().st_mtime_ns == mtime    # finished parts untouched
        finished(self)

    PartsManifest.write = spy                                              # type: ignore[method-assign]
    try:
        predict_partitioned(crop, out, model, partitions=5, probabilities=tmp_path / "probs.tif", scheduler=client,
                            resume=True)
    finally:
        PartsManifest.write = finished                                     # type: ignore[method-assign]
    assert sorted(moved) == sorted(set(range(5)) - set(stamps))
    _same_products(out, single)
    assert not work_folder(out).exists()


class Interrupt(NullReporter):
    """Ctrl-C once the first part is recorded."""

    def advance(self, n: int = 1) -> None:
        if n:
            raise KeyboardInterrupt


def test_an_interrupted_run_keeps_its_parts_and_refuses_a_changed_scene(tmp_path: Path, client: object,
                                                                          scene: tuple[Path, Path, Path]) -> None:
    model, crop, single = scene
    mosaic = shutil.copy(crop, tmp_path / "mosaic.tif")
    out = tmp_path / "map.tif"
    with pytest.raises(KeyboardInterrupt):
        predict_partitioned(mosaic, out, model, partitions=3, scheduler=client, reporter=Interrupt())
    assert not out.exists() and not list(tmp_path.glob(".map*tmp*"))
    left = PartsManifest.read(work_folder(out))
    assert [r.status for r in left.parts].count("done") >= 1
    assert left.fingerprint["input"] == {"size": os.path.getsize(mosaic), "mtime_ns": os.stat(mosaic).st_mtime_ns}
    os.utime(mosaic, ns=(os.stat(mosaic).st_atime_ns, os.stat(mosaic).st_mtime_ns + 10**9))   # replaced since
    with pytest.raises(ConfigError, match="input.mtime_ns"):
        predict_partitioned(mosaic, out, model, partitions=3, scheduler=client, resume=True)
    (work_folder(out) / "notes.txt").write_text("mine")
    predict_partitioned(mosaic, out, model, partitions=3, scheduler=client, overwrite=True)   # starts over
    assert out.read_bytes() == single.read_bytes()
    assert _products(work_folder(out)) == ["notes.txt"]       # the run's files went; the user's stays


@pytest.mark.slow
def test_a_worker_dying_mid_run_changes_nothing(tmp_path: Path, client: object,
                                                scene: tuple[Path, Path, Path]) -> None:
    model, crop, single = scene
    flag = tmp_path / "killed"
    client.register_plugin(KillOnce(str(flag), marker="geoseg-part"))
    try:
        predict_partitioned(crop, tmp_path / "map.tif", model, partitions=4, probabilities=tmp_path / "probs.tif",
                            scheduler=client, retries=0)
    finally:
        client.unregister_worker_plugin(KillOnce.name)
    assert flag.exists()                                   # a worker did die running a part
    _same_products(tmp_path / "map.tif", single)
    assert _products(tmp_path) == ["killed", "map.qml", "map.stac.json", "map.tif", "map.tif.aux.xml", "probs.tif"]


def test_a_remote_mosaic_through_vsicurl(tmp_path: Path, client: object, scene: tuple[Path, Path, Path],
                                         http_folder: tuple[Path, str]) -> None:
    model, crop, single = scene
    served, url = http_folder
    shutil.copy(crop, served / "mosaic.tif")
    out = tmp_path / "map.tif"
    predict_partitioned(f"/vsicurl/{url}/mosaic.tif", out, model, partitions=3, scheduler=client, stac=False)
    assert out.read_bytes() == single.read_bytes()


@pytest.mark.slow
def test_cli_partitions_on_a_local_cluster(tmp_path: Path, scene: tuple[Path, Path, Path]) -> None:
    model, crop, single = scene
    done = subprocess.run([sys.executable, "-m", "geoseg", "predict", str(crop), "-o", str(tmp_path / "map.tif"),
                           "-m", str(model), "--local-workers", "2", "--partitions", "3",
                           "--probabilities", str(tmp_path / "probs.tif")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stderr and "on Dask" in done.stderr
    _same_products(tmp_path / "map.tif", single)


def test_public_import_path_loads_nothing_heavy() -> None:
    loaded = subprocess.run([sys.executable, "-c", "import sys, geoseg.distributed; "
                             "print('torch' in sys.modules, 'distributed' in sys.modules)"],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert loaded.stdout.split() == ["False", "False"], loaded.stderr
