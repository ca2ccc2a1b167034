"""Test-time augmentation: the 8 views map back exactly, and the class map does not depend on blocks or batches."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from geoseg.inference.predictor import Predictor
from geoseg.inference.tta import VIEWS, dihedral_mean
from tests.conftest import ZION, write_crop


def test_views_are_the_eight_symmetries_of_the_square() -> None:
    square = np.arange(16.0).reshape(1, 1, 4, 4)
    seen = {np.rot90(square, t, axes=(2, 3))[..., ::-1].tobytes() if m else np.rot90(square, t, axes=(2, 3)).tobytes()
            for t, m in VIEWS}
    assert len(VIEWS) == 8 and len(seen) == 8


def test_an_orientation_blind_model_is_unchanged_and_a_biased_one_is_averaged() -> None:
    rng = np.random.default_rng(0)
    batch = rng.normal(size=(2, 3, 8, 8)).astype(np.float32)
    per_pixel = lambda x: np.repeat(np.tanh(x[:, :1]), 2, axis=1)       # noqa: E731 - sees no orientation
    np.testing.assert_allclose(dihedral_mean(per_pixel, batch), per_pixel(batch), rtol=1e-6)
    # a model that reads its left neighbour: TTA averages the 4 neighbours' directions
    shifted = lambda x: np.roll(x[:, :1], 1, axis=3)                     # noqa: E731
    mean = dihedral_mean(shifted, batch)
    centre = batch[:, :1, 3:5, 3:5]
    neighbours = [np.roll(batch[:, :1], s, axis=a)[:, :, 3:5, 3:5] for s in (1, -1) for a in (2, 3)]
    np.testing.assert_allclose(mean[:, :, 3:5, 3:5], np.mean(neighbours, axis=0), rtol=1e-5)
    assert not np.allclose(mean[:, :, 3:5, 3:5], centre)


def _map(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def test_tta_map_is_identical_whatever_the_block_and_batch(tmp_path: Path, zion_bundle_path: Path) -> None:
    scene = write_crop(ZION, tmp_path / "crop.tif", Window(0, 0, 200, 150))
    plain = Predictor(zion_bundle_path, device="cpu", tile=64, overlap=16)
    tta = Predictor(zion_bundle_path, device="cpu", tile=64, overlap=16, tta=True)
    tta.predict(scene, tmp_path / "a.tif", output_block=64, qml=False, stac=False, probabilities=tmp_path / "pa.tif")
    Predictor(zion_bundle_path, device="cpu", tile=64, overlap=16, tta=True, batch_size=3).predict(
        scene, tmp_path / "b.tif", output_block=128, qml=False, stac=False, pipelined=False,
        probabilities=tmp_path / "pb.tif")
    plain.predict(scene, tmp_path / "c.tif", output_block=64, qml=False, stac=False, probabilities=tmp_path / "pc.tif")
    assert (_map(tmp_path / "a.tif") == _map(tmp_path / "b.tif")).all()
    assert (_map(tmp_path / "pa.tif") == _map(tmp_path / "pb.tif")).all()
    assert not (_map(tmp_path / "pa.tif") == _map(tmp_path / "pc.tif")).all()    # it does change the output


@pytest.mark.parametrize("args", [["--tta", "--method", "ndwi-otsu"]])
def test_tta_is_refused_for_a_classic_method(tmp_path: Path, args: list[str]) -> None:
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "geoseg", "predict", str(ZION), "-o", str(tmp_path / "m.tif"), *args],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "--tta" in run.stderr
