"""Derived index channels: formulas, band recognition, one computation for training and inference, bundle round trip."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import yaml
from pydantic import ValidationError
from safetensors import safe_open
from safetensors.torch import save_file

from geoseg.inference.source import TileSource
from geoseg.inference.tiling import TileGrid
from geoseg.model.bundle import ModelBundle, load_bundle
from geoseg.model.indices import compute_indices, usable_indices
from geoseg.model.meta import METADATA_KEY, BundleMeta
from geoseg.model.normalise import Normaliser
from geoseg.training import load_config
from geoseg.training.loop import Trainer
from tests.conftest import ZION, ZION_LABELS, tiny_bundle, tiny_config, tiny_meta


def test_normalised_differences_by_hand() -> None:
    raw = np.array([[[100.0, 0.0]], [[300.0, 0.0]], [[200.0, 0.0]], [[600.0, 0.0]]], np.float32)  # b, g, r, nir
    ndvi, ndwi = compute_indices(raw, ["blue", "green", "red", "nir"], ["ndvi", "ndwi"])
    assert ndvi[0, 0] == pytest.approx((600 - 200) / 800) and ndwi[0, 0] == pytest.approx((300 - 600) / 900)
    assert ndvi[0, 1] == 0.0                     # 0 / 0 -> 0, not NaN
    signed = compute_indices(np.array([[[-5.0]], [[0.0]], [[6.0]], [[-7.0]]], np.float32),
                             ["blue", "green", "red", "nir"], ["ndvi"])
    assert signed[0, 0, 0] == 1.0                # -13 / -1, clipped to [-1, 1]


@pytest.mark.parametrize(("names", "expected"), [
    (["blue", "green", "red", "nir"], ["ndvi", "ndwi"]),
    (["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"], ["ndvi", "ndwi", "mndwi", "ndbi"]),
    (["B2", "B3", "B4", "B5"], []),                       # Landsat ids are ambiguous: not guessed
    (["red", "green", "blue"], []),
    (["Red", "NIR08", "swir16", "green"], ["ndvi", "ndwi", "mndwi", "ndbi"]),
])
def test_indices_follow_the_band_names(names: list[str], expected: list[str]) -> None:
    assert usable_indices(names) == expected


def test_bundle_refuses_an_index_its_bands_cannot_make() -> None:
    meta = tiny_meta(["red", "green", "blue"])
    with pytest.raises(ValidationError, match="needs bands nir"):
        BundleMeta.model_validate({**meta.model_dump(), "derived": [{"name": "ndvi"}]})


def test_derived_channels_identical_in_training_and_inference(tmp_path: Path) -> None:
    """The trainer's normalised scene and the predictor's tiles hold the same bands + indices, to the bit."""
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path, ZION, ZION_LABELS)))
    trainer = Trainer(load_config(path))
    assert [d.name for d in trainer.meta.derived] == ["ndvi", "ndwi"] and trainer.meta.in_channels == 6
    assert all(abs(d.mean) < 1 and 0 < d.std < 1 for d in trainer.meta.derived)
    bundle_path = tmp_path / "b.safetensors"
    ModelBundle.from_module(trainer.meta, trainer.module).save(bundle_path)
    loaded = load_bundle(bundle_path)
    assert loaded.meta.derived == trainer.meta.derived                        # round trip through the bundle
    assert loaded.build()(torch.zeros(1, 6, 32, 32)).shape == (1, 8, 32, 32)
    with rasterio.open(ZION) as dataset:
        source = TileSource(dataset, [1, 2, 3, 4], loaded.meta, 64)
        for tile in list(TileGrid(dataset.height, dataset.width, 64, 16))[:5]:
            data, _ = source.read(tile)
            expected = trainer.scenes[0].image[(slice(None), *tile.slices)]
            np.testing.assert_array_equal(data[:, :tile.height, :tile.width], expected)


def test_format_1_bundle_reads_with_no_derived_channels(tmp_path: Path) -> None:
    bundle = tiny_bundle(tiny_meta(["blue", "green", "red", "nir"]))
    path = tmp_path / "v1.safetensors"
    bundle.save(path)
    with safe_open(str(path), "pt") as handle:
        raw = json.loads(handle.metadata()[METADATA_KEY])
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    raw["format_version"] = 1
    raw.pop("derived")
    old = tmp_path / "old.safetensors"
    save_file(tensors, str(old), metadata={METADATA_KEY: json.dumps(raw)})
    meta = load_bundle(old).meta
    assert meta.derived == [] and meta.in_channels == 4 and meta.format_version == 2
    data = np.ones((4, 3, 3), np.float32)
    assert Normaliser(meta)(data, np.ones((3, 3), bool)).shape == (4, 3, 3)
