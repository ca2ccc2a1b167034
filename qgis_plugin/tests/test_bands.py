"""Natural colour from band names, without QGIS."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from geoseg_qgis.bands import band_names, natural_colour  # noqa: E402


def test_landsat_order_blue_green_red_nir_is_drawn_3_2_1() -> None:
    fit = {"band_names": ["blue", "green", "red", "nir"], "fits": {"band_indexes": [1, 2, 3, 4]}}
    assert natural_colour(band_names(fit, [])) == (3, 2, 1)


def test_names_come_from_the_model_where_the_file_has_none() -> None:
    fit = {"band_names": [None, None, None, None, None], "fits": {"band_indexes": [2, 3, 4, 5]}}
    assert natural_colour(band_names(fit, ["Blue", "Green", "Red", "NIR"])) == (4, 3, 2)


def test_the_files_own_names_win_and_aliases_count() -> None:
    fit = {"band_names": ["R", "G", "B", "nir"], "fits": {"band_indexes": [1, 2, 3, 4]}}
    assert natural_colour(band_names(fit, ["blue", "green", "red", "nir"])) == (1, 2, 3)


def test_no_natural_colour_without_all_three() -> None:
    assert natural_colour(band_names({"band_names": ["red", "nir", "swir"]}, [])) is None
    assert natural_colour(band_names(None, [])) is None
    assert natural_colour({1: "red edge", 2: "green", 3: "blue"}) is None
