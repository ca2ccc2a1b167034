"""Shared fixtures: small real scenes (shipped sample tiles and derivations of them) and tiny bundles."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rasterio.windows import Window

from geoseg.model.bundle import ModelBundle
from geoseg.model.meta import BandSpec, BundleMeta, ModelSpec
from geoseg.io.legend import ClassInfo, ClassScheme
from geoseg.model.networks import build_model

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_tiles"
TEST_DATA = ROOT / "tests" / "data"
ZION = SAMPLES / "zion_landsat8_b2345.tif"
ZION_LABELS = SAMPLES / "zion_nlcd8.tif"
NAIP = SAMPLES / "naip_2020_rgbn.tif"
LANDSAT7_FRAME = TEST_DATA / "landsat7_rgb_nodata_frame.tif"

NLCD = [("water", "#466b9f"), ("developed", "#d99282"), ("barren", "#b3ac9f"), ("forest", "#68ab5f"),
        ("shrubland", "#ccb879"), ("herbaceous", "#dfdfc2"), ("cultivated", "#ab6c28"), ("wetlands", "#b8d9eb")]


def tiny_meta(bands: list[str], num_classes: int = 3, *, architecture: str = "SimpleFCN", tile: int = 64,
              overlap: int = 32, gsd: float | None = None, mean: float = 0.0, std: float = 1.0,
              input_dtype: str = "float32") -> BundleMeta:
    scheme = ClassScheme(classes=[ClassInfo(id=i + 1, name=n, color=c) for i, (n, c) in enumerate(NLCD[:num_classes])])
    spec = (ModelSpec(architecture="SimpleFCN", encoder=None, hidden=[8, 8, 8]) if architecture == "SimpleFCN"
            else ModelSpec(architecture=architecture, encoder="resnet18", encoder_depth=3, decoder_channels=[32, 16, 8]))
    return BundleMeta(name=f"tiny-{architecture.lower()}", model=spec,
                      bands=[BandSpec(name=b, mean=mean, std=std) for b in bands], input_dtype=input_dtype,
                      scheme=scheme, tile_size=tile, overlap=overlap, gsd=gsd)


def tiny_bundle(meta: BundleMeta, seed: int = 0) -> ModelBundle:
    torch.manual_seed(seed)
    return ModelBundle.from_module(meta, build_model(meta))


@pytest.fixture
def zion_bundle_path(tmp_path: Path) -> Path:
    """A SimpleFCN bundle for the Zion sample (4 uint16 bands, 30 m), random but fixed weights."""
    meta = tiny_meta(["blue", "green", "red", "nir"], 4, gsd=30.0, mean=10000.0, std=2500.0, input_dtype="uint16")
    path = tmp_path / "zion_tiny.safetensors"
    tiny_bundle(meta).save(path)
    return path


def write_crop(src: Path, dst: Path, window: Window, **overrides: object) -> Path:
    """A real crop of a real raster, optionally with another transform/CRS/nodata."""
    with rasterio.open(src) as ds:
        profile = ds.profile.copy()
        profile.update(width=int(window.width), height=int(window.height), transform=ds.transform @ Affine.translation(window.col_off, window.row_off))
        profile.update(overrides)
        data = ds.read(window=window)
        with rasterio.open(dst, "w", **profile) as out:
            out.write(data)
            out.descriptions = ds.descriptions
    return dst


@pytest.fixture
def crop(tmp_path: Path) -> Callable[..., Path]:
    def make(src: Path, window: Window, name: str = "crop.tif", **overrides: object) -> Path:
        return write_crop(src, tmp_path / name, window, **overrides)

    return make


def read_band(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def tiny_config(tmp_path: Path, scene: Path, labels: Path, **overrides: object) -> dict:
    """A training config small enough for a test: SimpleFCN, a few 32 px steps, the Zion bands and classes."""
    config = {
        "name": "tiny", "scenes": [{"scene": str(scene), "labels": str(labels)}],
        "validation": {"axis": "rows", "start": 112, "buffer": 8},
        "band_names": ["blue", "green", "red", "nir"], "input_dtype": "uint16", "input_nodata": 65535,
        "classes": [{"id": i + 1, "name": n, "color": c} for i, (n, c) in enumerate(NLCD)],
        "model": {"architecture": "SimpleFCN", "encoder": None, "hidden": [16, 16]},
        "tile_size": 64, "overlap": 16,
        "optimiser": {"lr": 0.01, "schedule": "constant"},
        "train": {"epochs": 3, "iterations_per_epoch": 8, "batch_size": 8, "window": 32, "seed": 0, "threads": 2},
        "output_dir": str(tmp_path / "run"), "half": False,
        "compare_random_forest": False,          # tests/training/test_minimal_config.py covers it
    }
    config.update(overrides)
    return config


#: Data that may not ship (licence): reached only here, and tests that need it skip without it (CI has it).
SPACENET = ROOT.parent / "shared" / "data" / "spacenet_buildings"


@pytest.fixture
def spacenet() -> tuple[Path, Path]:
    """The 0.5 m SpaceNet panchromatic chip and its 43 building footprints (development and tests only)."""
    chip, footprints = SPACENET / "sample_geotiff.tif", SPACENET / "geotiff_labels.geojson"
    if not (chip.is_file() and footprints.is_file()):
        pytest.skip(f"needs {SPACENET} (SpaceNet, CC BY-SA 4.0, may not ship): present in CI and ../shared")
    return chip, footprints
