"""Validation on held-out whole polygons: no polygon is ever on both sides, every class is validated."""
from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from shapely.geometry import box

from geoseg.errors import ConfigError
from geoseg.evaluation.metrics import IGNORE_INDEX
from geoseg.training import load_config, train
from geoseg.training.splits import held_out_groups, is_sparse, label_groups, polygon_split
from tests.conftest import ZION, tiny_config


@st.composite
def rectangles(draw: st.DrawFn) -> np.ndarray:
    """A 48 x 48 label raster of 1-12 rectangles of 1-3 classes (they may touch or overlap)."""
    labels = np.full((48, 48), IGNORE_INDEX, np.uint8)
    for _ in range(draw(st.integers(1, 12))):
        r, c = draw(st.integers(0, 44)), draw(st.integers(0, 44))
        h, w = draw(st.integers(1, 8)), draw(st.integers(1, 8))
        labels[r:r + h, c:c + w] = draw(st.integers(0, 2))
    return labels


@settings(max_examples=60, deadline=None)
@given(labels=rectangles(), share=st.floats(0.05, 0.9), buffer=st.integers(0, 3), seed=st.integers(0, 5))
def test_a_polygon_is_never_in_two_sets(labels: np.ndarray, share: float, buffer: int, seed: int) -> None:
    training, validation = polygon_split(labels, share, buffer, seed)
    assert not ((training != IGNORE_INDEX) & (validation != IGNORE_INDEX)).any()
    kept = (training != IGNORE_INDEX) | (validation != IGNORE_INDEX)
    assert (training[training != IGNORE_INDEX] == labels[training != IGNORE_INDEX]).all()
    assert (validation[validation != IGNORE_INDEX] == labels[validation != IGNORE_INDEX]).all()
    groups, group_class = label_groups(labels)
    for g in range(group_class.size):                    # each connected polygon: all validation, or no validation
        inside = groups == g
        assert (validation[inside] != IGNORE_INDEX).all() or not (validation[inside] != IGNORE_INDEX).any()
    # no training label within `buffer` px (8-connected steps) of a held-out pixel
    if buffer and (validation != IGNORE_INDEX).any():
        near = ndimage.binary_dilation(validation != IGNORE_INDEX, np.ones((3, 3), bool), iterations=buffer)
        assert not (near & (training != IGNORE_INDEX)).any()
    assert kept.sum() <= (labels != IGNORE_INDEX).sum()
    # every class with two or more polygons has one held out and one left to train on (before the buffer)
    held = held_out_groups(group_class, share, seed)
    for k in np.unique(group_class):
        members = held[group_class == k]
        if members.size >= 2:
            assert members.any() and not members.all()
    again = polygon_split(labels, share, buffer, seed)
    assert (again[0] == training).all() and (again[1] == validation).all()     # seeded


def test_touching_polygons_of_one_class_form_one_group() -> None:
    labels = np.full((10, 10), IGNORE_INDEX, np.uint8)
    labels[0:3, 0:3] = 1
    labels[3:5, 3:5] = 1          # touches the first diagonally
    labels[0:3, 3:6] = 0          # touches both, another class: its own group
    groups, group_class = label_groups(labels)
    assert sorted(group_class.tolist()) == [0, 1]
    assert len(np.unique(groups[labels == 1])) == 1


def test_sparse_rule() -> None:
    valid = np.ones((100, 100), bool)
    labels = np.full((100, 100), IGNORE_INDEX, np.uint8)
    labels[:20] = 1
    assert is_sparse(labels, valid)
    labels[:30] = 1
    assert not is_sparse(labels, valid)


def _polygons(tmp_path: Path, count: int) -> Path:
    """``count`` squares of each of classes 4 (forest) and 5 (shrubland) over the Zion sample's corner."""
    with __import__("rasterio").open(ZION) as src:
        t = src.transform
    shapes, classes = [], []
    for k in range(count):
        for cls, row in ((4, 10), (5, 60)):
            col = 10 + 40 * k
            x0, y0 = t @ (col, row)
            x1, y1 = t @ (col + 12, row + 12)
            shapes.append(box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
            classes.append(cls)
    path = tmp_path / "polygons.gpkg"
    gpd.GeoDataFrame({"class": classes}, geometry=shapes, crs="EPSG:32612").to_file(path)
    return path


@pytest.mark.slow
def test_training_validates_on_held_out_polygons(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, ZION, _polygons(tmp_path, 4), validation={"polygons": 0.25},
                         train={"epochs": 1, "iterations_per_epoch": 2, "batch_size": 4, "window": 32, "seed": 0,
                                "threads": 1})
    path = tmp_path / "sparse.yaml"
    path.write_text(yaml.safe_dump(config))
    result = train(load_config(path))
    # one of the four polygons of each class (144 px each), scored through the Predictor
    assert result.scores.pixels == 2 * 144
    assert "held-out polygons" in __import__("json").dumps(
        __import__("geoseg.model.loading", fromlist=["read_meta"]).read_meta(result.bundle).metrics)


def test_one_polygon_per_class_cannot_be_validated(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, ZION, _polygons(tmp_path, 1), validation={"polygons": 0.2})
    path = tmp_path / "sparse.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="at least two polygons"):
        train(load_config(path))


def test_polygon_validation_refuses_block_keys_and_a_test_block(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path, ZION, ZION, validation={"polygons": 0.2, "bufer": 2})))
    with pytest.raises(ConfigError, match="validation.bufer"):
        load_config(path)
    path.write_text(yaml.safe_dump(tiny_config(tmp_path, ZION, ZION, validation={"polygons": 0.2},
                                               test={"axis": "rows", "start": 100})))
    with pytest.raises(ConfigError, match="test block"):
        load_config(path)
