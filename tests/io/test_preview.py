"""Previews: a layout that fills the page, a round scale bar, a legend read in class order."""
from __future__ import annotations

from pathlib import Path

from matplotlib.image import imread
import pytest

from geoseg.classic import ClassicMethod
from geoseg.io.preview import DPI, PAGE_WIDTH, layout, row_major, scale_bar_length, write_preview
from tests.conftest import NAIP, ZION


@pytest.mark.parametrize(("count", "aspect", "expected"), [
    (2, 2.8, (2, 1)),      # the wide Zion sample: stacked, each panel the page's width
    (3, 2.8, (3, 1)),
    (2, 1.0, (1, 2)),      # square scenes side by side
    (3, 1.0, (2, 2)),
    (3, 0.4, (1, 3)),      # tall scenes in a row
])
def test_layout_puts_wide_scenes_in_rows_and_tall_ones_in_columns(count: int, aspect: float,
                                                                  expected: tuple[int, int]) -> None:
    assert layout(count, aspect) == expected


def test_scale_bar_is_a_round_quarter_of_the_width() -> None:
    assert scale_bar_length(33_840) == 5000           # the Zion sample, 1128 px of 30 m
    assert scale_bar_length(2_560) == 500             # the NAIP sample, 512 px of 5 m
    assert scale_bar_length(90) == 20


def test_legend_reads_row_by_row() -> None:
    # matplotlib fills 8 entries in 5 columns as columns of 2, 2, 2, 1, 1
    assert row_major(8, 5) == [0, 5, 1, 6, 2, 7, 3, 4]
    assert row_major(3, 5) == [0, 1, 2]


@pytest.mark.parametrize("scene", [ZION, NAIP])
def test_preview_is_mostly_map(scene: Path, tmp_path: Path) -> None:
    """The panels fill the page: little of the picture is white margin."""
    classes = tmp_path / "classes.tif"
    ClassicMethod("ndvi-otsu").predict(scene, classes, qml=False, stac=False)
    png = write_preview(scene, classes, tmp_path / "preview.png")
    pixels = imread(png)                              # (h, w, 4) floats in 0..1
    assert pixels.shape[1] == round(PAGE_WIDTH * DPI)
    white = (pixels[..., :3] >= 250 / 255).all(axis=-1).mean()
    assert white < 0.25, f"{white:.0%} of the preview is blank"
