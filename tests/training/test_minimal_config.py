"""The README's minimal config (a scene, polygons and their class column) trains, and the report puts a
RandomForest trained on the same pixels beside the model."""
from __future__ import annotations

import json
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.features import shapes
from shapely.geometry import shape

from geoseg.errors import ConfigError
from geoseg.model.loading import read_meta
from geoseg.training import baseline, load_config, train
from geoseg.training.config import DEFAULT_TIME_LIMIT_MINUTES, default_validation
from tests.conftest import NLCD, ROOT, ZION, ZION_LABELS


def _readme_config() -> str:
    """The YAML block of the README's "Your own model from a few polygons"."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.search(r"```yaml\n(# my_polygons\.yaml.*?)```", text, re.S).group(1)


def _polygons(out: Path) -> Path:
    """Every fourth region of the real Zion sample labels, named (e.g. 'Shrubland') in column 'cover'."""
    with rasterio.open(ZION_LABELS) as ds:
        data, transform, crs = ds.read(1), ds.transform, ds.crs
    regions = sorted(((shape(g), int(v)) for g, v in shapes(data, transform=transform) if v != 255),
                     key=lambda r: -r[0].area)[::4]
    gpd.GeoDataFrame({"cover": [NLCD[v - 1][0].title() for _, v in regions]}, geometry=[g for g, _ in regions],
                     crs=crs).to_file(out)
    return out


@pytest.mark.slow
def test_the_readme_minimal_config_trains_and_reports_the_random_forest(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    _polygons(tmp_path / "polygons.gpkg")
    (tmp_path / "scene.tif").symlink_to(ZION)
    (tmp_path / "my_polygons.yaml").write_text(_readme_config())
    monkeypatch.setattr(baseline, "FOREST_PIXELS", 5000)                # seconds, not a minute
    config = load_config(tmp_path / "my_polygons.yaml", require_data=True).with_overrides(epochs=1)
    config = config.model_copy(update={"train": config.train.model_copy(update={"iterations_per_epoch": 4})})
    done = config.completed()
    assert done.name == "my_polygons" and done.band_names == ["blue", "green", "red", "nir"]
    names = [c.name for c in done.classes]
    assert names == sorted(names) and {"Forest", "Shrubland", "Water"} <= set(names)
    assert done.validation.axis == "rows" and 200 < done.validation.start < 404

    result = train(config)
    meta = read_meta(result.bundle)
    forest = meta.metrics["random_forest"]
    assert 0 < forest["overall_accuracy"] <= 1 and forest["features"][-2:] == ["NDVI", "NDWI"]
    assert 4000 < forest["training_pixels"] < 6000
    assert meta.provenance["training"]["validation_block"]["random_forest"]["mean_iou"] == forest["mean_iou"]
    summary = result.summary()
    assert summary.random_forest_mean_iou == pytest.approx(forest["mean_iou"], abs=1e-6)
    comparison = (result.report_dir / "comparison.md").read_text()
    assert "| geoseg model |" in comparison and "| RandomForest |" in comparison
    json.dumps(summary.model_dump())                                  # strict JSON for the done event


def test_a_config_without_a_budget_trains_for_the_default_time(tmp_path: Path) -> None:
    _polygons(tmp_path / "polygons.gpkg")
    (tmp_path / "scene.tif").symlink_to(ZION)
    (tmp_path / "my_polygons.yaml").write_text(_readme_config())
    config = load_config(tmp_path / "my_polygons.yaml", require_data=True)
    assert config.completed().train.time_limit_minutes == DEFAULT_TIME_LIMIT_MINUTES
    # a device from the command line is not a budget; epochs are
    assert config.with_overrides(device="cpu").completed().train.time_limit_minutes == DEFAULT_TIME_LIMIT_MINUTES
    assert config.with_overrides(epochs=3).completed().train.time_limit_minutes is None
    (tmp_path / "budget.yaml").write_text(_readme_config() + "train: {iterations_per_epoch: 5, seed: 1}\n")
    budgeted = load_config(tmp_path / "budget.yaml", require_data=True).completed().train
    assert budgeted.time_limit_minutes is None and budgeted.seed == 1


def test_default_validation_holds_out_a_fifth_of_the_labels_below_the_training_rows() -> None:
    labelled = np.zeros((400, 50), bool)
    labelled[::4] = True                                        # labels spread evenly over the rows
    split = default_validation(labelled, "x.gpkg")
    held_out = labelled[split.start:].sum() / labelled.sum()
    assert 0.2 <= held_out < 0.22 and split.buffer == 32
    clustered = np.zeros((400, 50), bool)
    clustered[390:] = True                                      # every label in ten rows
    with pytest.raises(ConfigError, match="x.gpkg: the labels lie in too few rows"):
        default_validation(clustered, "x.gpkg")
