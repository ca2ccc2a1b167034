"""Fuzzing within a fixed budget: damaged GeoTIFF headers, model headers and configs are either read or
refused with an InputError (one line at the CLI); never another exception, which would be a traceback."""
from __future__ import annotations

import struct
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasterio.windows import Window

from geoseg.errors import InputError
from geoseg.io.rasters import describe, open_raster, read_tile
from geoseg.model.loading import load_model, read_meta
from geoseg.training.config import load_config
from tests.conftest import ROOT, ZION, tiny_bundle, tiny_meta, write_crop

BUDGET = settings(max_examples=60, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
mutations = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8)


@pytest.fixture(scope="module")
def small_tiff(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    folder = tmp_path_factory.mktemp("fuzz")
    return write_crop(ZION, folder / "crop.tif", Window(0, 0, 64, 48)).read_bytes()


@pytest.fixture(scope="module")
def bundle_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("fuzz") / "m.safetensors"
    tiny_bundle(tiny_meta(["blue", "green", "red", "nir"], 4, input_dtype="uint16")).save(path)
    return path.read_bytes()


def _mutate(data: bytes, changes: list[tuple[int, int]], span: int) -> bytes:
    out = bytearray(data)
    for offset, value in changes:
        out[offset % min(span, len(out))] = value
    return bytes(out)


@BUDGET
@given(changes=mutations)
def test_damaged_geotiff_headers_are_read_or_refused(small_tiff: bytes, changes: list, tmp_path: Path) -> None:
    path = tmp_path / "fuzzed.tif"
    path.write_bytes(_mutate(small_tiff, changes, span=1024))       # the header and the first IFD
    try:
        with open_raster(path) as dataset:
            describe(dataset)
            indexes = list(range(1, min(dataset.count, 4) + 1))
            read_tile(dataset, indexes, 0, 0, min(dataset.height, 64), min(dataset.width, 64))
    except InputError:
        pass


@BUDGET
@given(changes=mutations)
def test_damaged_model_headers_are_read_or_refused(bundle_bytes: bytes, changes: list, tmp_path: Path) -> None:
    header = 8 + struct.unpack("<Q", bundle_bytes[:8])[0]
    path = tmp_path / "fuzzed.safetensors"
    path.write_bytes(_mutate(bundle_bytes, changes, span=header))
    try:
        read_meta(path)
        load_model(path)
    except InputError:
        pass


def _values() -> st.SearchStrategy:
    return st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                     st.text(max_size=8), st.lists(st.integers(-5, 300), max_size=4),
                     st.dictionaries(st.text(max_size=6), st.integers(), max_size=2))


@pytest.fixture(scope="module")
def config_dict() -> dict:
    raw = yaml.safe_load((ROOT / "configs" / "zion_landcover.yaml").read_text())
    raw["scenes"] = [{"scene": str(ZION), "labels": str(ZION)}]
    return raw


@BUDGET
@given(data=st.data())
def test_damaged_configs_are_read_or_refused(config_dict: dict, data: st.DataObject, tmp_path: Path) -> None:
    raw = dict(config_dict)
    for _ in range(data.draw(st.integers(1, 4))):
        key = data.draw(st.sampled_from(sorted(raw)))
        section = raw[key]
        if isinstance(section, dict) and section and data.draw(st.booleans()):
            inner = data.draw(st.sampled_from(sorted(section)))
            raw[key] = {**section, inner: data.draw(_values())}
        elif data.draw(st.booleans()):
            raw.pop(key)
        else:
            raw[key] = data.draw(_values())
    path = tmp_path / "fuzzed.yaml"
    path.write_text(yaml.safe_dump(raw))
    try:
        load_config(path)
    except InputError:
        pass
