"""Fixtures for the plugin tests: the geoseg worker interpreter, a sample tile, a model, the plugin.

QGIS tests run in a headless QGIS (pytest-qgis) from ``.venv-qgis``; geoseg runs in its own environment,
found through ``GEOSEG_PYTHON`` (default: the repository's ``.venv``), exactly as the plugin finds it.
Nothing here imports qgis at module level, so that the pure worker tests run in any environment.
"""
from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "qgis_plugin"))

from geoseg_qgis.worker import WORKER_CWD, WorkerError, clean_env, run_info  # noqa: E402

SAMPLE_TILE = REPO / "sample_tiles" / "zion_landsat8_b2345.tif"
EVENT_SCHEMA = REPO / "qgis_plugin" / "geoseg_qgis" / "events.schema.json"

#: A tiny random-weight bundle for when the geoseg under test has no default model yet.
MAKE_BUNDLE = textwrap.dedent("""
    import sys, torch
    from geoseg.model.bundle import ModelBundle
    from geoseg.model.meta import BandSpec, BundleMeta, ModelSpec
    from geoseg.io.legend import ClassInfo, ClassScheme
    from geoseg.model.networks import build_model
    torch.manual_seed(0)
    classes = [ClassInfo(id=1, name="water", color="#466b9f"), ClassInfo(id=4, name="forest", color="#1c5f2c"),
               ClassInfo(id=5, name="shrubland", color="#ccb879"), ClassInfo(id=3, name="barren", color="#b3ac9f")]
    meta = BundleMeta(name="plugin-test", model=ModelSpec(architecture="SimpleFCN", encoder=None, hidden=[8]),
                      bands=[BandSpec(name=n, mean=11000.0, std=2500.0) for n in ("blue", "green", "red", "nir")],
                      input_dtype="uint16", scheme=ClassScheme(classes=classes, nodata_id=255), gsd=30.0,
                      tile_size=64, overlap=8)
    ModelBundle.from_module(meta, build_model(meta)).save(sys.argv[1])
""")


#: A tiny random-weight Mask R-CNN bundle (task: instance) for the 3-band 0.5 m scenes below.
MAKE_INSTANCE_BUNDLE = textwrap.dedent("""
    import sys, torch
    from geoseg.io.legend import ClassInfo, ClassScheme
    from geoseg.model.bundle import ModelBundle
    from geoseg.model.meta import BandSpec, BundleMeta, ModelSpec
    from geoseg.model.networks import build_model
    torch.manual_seed(0)
    classes = [ClassInfo(id=1, name="building", color="#d62728"), ClassInfo(id=2, name="pond", color="#1f77b4")]
    meta = BundleMeta(name="plugin-buildings", task="instance",
                      model=ModelSpec(architecture="MaskRCNN", encoder="resnet18", decoder_channels=[16]),
                      bands=[BandSpec(name=n, mean=80.0, std=40.0) for n in ("red", "green", "blue")],
                      input_dtype="uint8", scheme=ClassScheme(classes=classes), gsd=0.5, tile_size=128, overlap=32)
    ModelBundle.from_module(meta, build_model(meta)).save(sys.argv[1])
""")
#: Bright rectangles (row, column, height, width in px) on a noisy background: each is one object to
#: bright-objects. At 0.5 m they are 70-135 m², like houses.
RECTS = [(20, 20, 16, 24), (20, 100, 20, 20), (120, 40, 18, 30), (110, 150, 24, 16), (60, 200, 14, 20)]


def write_objects_scene(path: Path, crs: bool = True) -> Path:
    """A 3-band uint8 GeoTIFF (UTM 33N, 0.5 m pixels) with ``RECTS``, through QGIS's GDAL; ``crs=False``
    leaves out the CRS (and with it the pixel size in metres)."""
    import numpy as np
    from osgeo import gdal, osr

    data = (60 + np.random.default_rng(0).normal(0, 6, (3, 200, 240))).clip(0, 255)
    for y, x, h, w in RECTS:
        data[:, y:y + h, x:x + w] = 200
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 240, 200, 3, gdal.GDT_Byte)
    ds.SetGeoTransform((500000.0, 0.5, 0.0, 4500000.0, 0.0, -0.5))
    if crs:
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(32633)
        ds.SetProjection(srs.ExportToWkt())
    ds.WriteArray(data.astype(np.uint8))
    ds = None
    return path


@pytest.fixture(scope="session")
def objects_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_objects_scene(tmp_path_factory.mktemp("objects") / "houses.tif")


@pytest.fixture(scope="session")
def instance_model(geoseg_python: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The path of a tiny instance bundle (a real Mask R-CNN, random weights; ~45 MB, seconds to build)."""
    path = tmp_path_factory.mktemp("instance") / "buildings.safetensors"
    subprocess.run([geoseg_python, "-c", MAKE_INSTANCE_BUNDLE, str(path)], check=True, env=clean_env(),
                   cwd=WORKER_CWD)
    return str(path)


@pytest.fixture(scope="session")
def geoseg_python() -> str:
    python = os.environ.get("GEOSEG_PYTHON") or str(REPO / ".venv" / "bin" / "python")
    if not os.access(python, os.X_OK):
        pytest.skip(f"no geoseg environment at {python}: set GEOSEG_PYTHON to its python (make test does)")
    return python


@pytest.fixture(scope="session")
def installation(geoseg_python: str) -> dict[str, Any]:
    """``geoseg info --json`` of the worker: a broken geoseg environment fails the tests, loudly."""
    try:
        return run_info(geoseg_python)
    except WorkerError as exc:
        pytest.fail(f"geoseg does not run in {geoseg_python}: {exc}")


@pytest.fixture(scope="session")
def model(installation: dict[str, Any], geoseg_python: str,
          tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``{"path": file or None for the default model, "classes": [...]}``."""
    default = installation.get("default_model")
    if default and "error" not in default:
        return {"path": None, "classes": default["classes"]}
    path = tmp_path_factory.mktemp("model") / "plugin_test.safetensors"
    subprocess.run([geoseg_python, "-c", MAKE_BUNDLE, str(path)], check=True, env=clean_env(), cwd=WORKER_CWD)
    return {"path": str(path), "classes": run_info(geoseg_python, str(path))["classes"]}


@pytest.fixture(scope="session")
def sample_tile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the shipped Landsat tile (QGIS writes .aux.xml statistics beside what it opens)."""
    if not SAMPLE_TILE.is_file():
        pytest.fail(f"{SAMPLE_TILE} is missing: it ships with the repository")
    copy = tmp_path_factory.mktemp("scene") / SAMPLE_TILE.name
    shutil.copyfile(SAMPLE_TILE, copy)
    return copy


@pytest.fixture(scope="session")
def event_validator() -> Any:
    """A validator for geoseg's event lines built from the schema the plugin ships (not from geoseg)."""
    jsonschema = pytest.importorskip("jsonschema", reason="the event checks need jsonschema: run "
                                     ".ci/install_qgis.sh (or pip install jsonschema)")
    schema = json.loads(EVENT_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)
    validator.check_schema(schema)
    return validator(schema)


@pytest.fixture
def checked_events(event_validator: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Every event the plugin parses during the test, each validated against events.schema.json.

    The check wraps ``worker.parse_event``, so it sees exactly what the plugin reads, on whatever thread a
    task runs; an invalid event raises there (the run fails) and fails the test here too.
    """
    from geoseg_qgis import worker

    seen: list[dict[str, Any]] = []
    invalid: list[str] = []
    parse = worker.parse_event

    def parse_and_check(line: str) -> dict[str, Any] | None:
        event = parse(line)
        if event is not None:
            errors = [e.message for e in event_validator.iter_errors(event)]
            if errors:
                invalid.append(f"{line.strip()}: {'; '.join(errors)}")
                raise ValueError(f"geoseg sent an event outside events.schema.json: {invalid[-1]}")
            seen.append(event)
        return event

    monkeypatch.setattr(worker, "parse_event", parse_and_check)
    yield seen
    assert not invalid, "events outside events.schema.json:\n" + "\n".join(invalid)


@pytest.fixture
def worker_env(geoseg_python: str, checked_events: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> str:
    """The plugin configured through ``GEOSEG_PYTHON`` only (the saved setting cleared); events checked."""
    from geoseg_qgis import settings

    settings.set_configured_python("")
    monkeypatch.setenv("GEOSEG_PYTHON", geoseg_python)
    return geoseg_python


@pytest.fixture
def plugin(qgis_iface: Any, qgis_new_project: Any) -> Iterator[Any]:
    """The plugin as QGIS loads it: ``classFactory`` then ``initGui``; unloaded after the test."""
    import geoseg_qgis

    instance = geoseg_qgis.classFactory(qgis_iface)
    instance.initGui()
    yield instance
    instance.unload()


@pytest.fixture
def wait_until() -> Callable[..., None]:
    """Run the Qt event loop until ``condition()`` holds (tasks and QProcess signals need it)."""
    from qgis.PyQt.QtCore import QCoreApplication

    def wait(condition: Callable[[], Any], timeout: float = 180.0) -> None:
        end = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > end:
                raise TimeoutError(f"condition not met within {timeout} s")
            QCoreApplication.processEvents()
            time.sleep(0.02)

    return wait


def pytest_configure(config: pytest.Config) -> None:
    """A file or pipe left to the garbage collector fails the test (QGIS logs each as a ResourceWarning).

    A ResourceWarning raised in a finalizer is unraisable, and pyproject.toml makes those errors.
    """
    config.addinivalue_line("filterwarnings", "error::ResourceWarning")


@pytest.fixture(autouse=True)
def collect_garbage() -> Iterator[None]:
    """Run finalizers inside the test, so that a leaked file is reported by the test that leaked it."""
    yield
    gc.collect()
