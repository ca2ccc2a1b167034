"""VectorizeConfig: every vectorize option is checked there, with one-line errors that name the parameter."""
from __future__ import annotations

from pathlib import Path

import pytest

import geoseg
from geoseg.errors import ParameterError
from geoseg.vector.config import VectorizeConfig
from geoseg.vector.vectorize import vectorize

CROP = Path(__file__).parents[1] / "data" / "zion_nlcd8_crop.tif"


def test_defaults_and_normalised_values():
    config = VectorizeConfig()
    assert (config.fmt, config.block_size, config.workers, config.min_area_unit) == (None, 2048, None, "map")
    assert VectorizeConfig(fmt=".GeoParquet").fmt == "parquet"
    assert VectorizeConfig(fmt="shapefile").fmt == "shp"
    assert VectorizeConfig(classes="water,forest").classes == ("water", "forest")
    assert VectorizeConfig(classes=["water", 3]).classes == ("water", 3)
    assert geoseg.VectorizeConfig is VectorizeConfig


@pytest.mark.parametrize(("options", "message"), [
    ({"fmt": "kml"}, "fmt kml: unknown polygon format; use one of gpkg, shp, geojson, parquet, fgb"),
    ({"min_area": -5}, "min_area -5.0: must be a number, 0 or more"),
    ({"min_area": float("nan")}, "min_area nan: must be a number"),
    ({"min_area_unit": "acres"}, "min_area_unit acres: should be 'map' or 'pixels'"),
    ({"simplify": -1}, "simplify -1.0: must be a number, 0 or more"),
    ({"classes": []}, r"classes \[\]: give at least one class"),
    ({"block_size": 1}, "block_size 1: must be at least 2 pixels"),
    ({"block_size": 2.5}, "block_size 2.5: should be a valid integer"),
    ({"block_size": "big"}, "block_size big: should be a valid integer"),
    ({"workers": 0}, r"workers 0: must be at least 1 \(none: one per core\)"),
    ({"dissolve": "maybe"}, "dissolve maybe: should be a valid boolean"),
    ({"layer": 3}, "layer 3: should be a valid string"),
    ({"tile": 3}, "tile 3: not a vectorize option"),
])
def test_bad_values_are_one_line_parameter_errors(options, message):
    with pytest.raises(ParameterError, match=f"^{message}") as caught:
        VectorizeConfig(**options)
    assert caught.value.parameter == next(iter(options))
    assert "\n" not in str(caught.value)


def test_messages_name_flags_for_the_command_line():
    with pytest.raises(ParameterError) as caught:
        VectorizeConfig(block_size=0)
    assert caught.value.render(lambda name: "--" + name.replace("_", "-")).startswith("--block-size 0:")


def test_vectorize_takes_a_config_or_keywords_not_both(tmp_path):
    config = VectorizeConfig(min_area=1800, block_size=100)
    by_config = vectorize(CROP, tmp_path / "a.gpkg", config=config)
    by_keywords = vectorize(CROP, tmp_path / "b.gpkg", min_area=1800, block_size=100)
    assert by_config.n_polygons == by_keywords.n_polygons and by_config.area_m2 == by_keywords.area_m2
    with pytest.raises(ParameterError, match="^config block_size,workers: give these options"):
        vectorize(CROP, tmp_path / "c.gpkg", config=config, block_size=64, workers=1)
    assert not (tmp_path / "c.gpkg").exists()


def test_vectorize_checks_its_keywords_through_the_config(tmp_path):
    with pytest.raises(ParameterError, match="^workers 0: must be at least 1"):
        vectorize(CROP, tmp_path / "w.gpkg", workers=0)
    assert list(tmp_path.iterdir()) == []
