"""Labels: ids or names, undeclared ids refused with a list (or ignored on purpose), checked before predicting."""
from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from shapely.geometry import box

from geoseg import evaluate
from geoseg.errors import InputFileError
from geoseg.evaluation.labels import LabelSource
from geoseg.evaluation.metrics import IGNORE_INDEX
from geoseg.io.legend import ClassInfo, ClassScheme
from tests.conftest import ZION, ZION_LABELS

SCHEME = ClassScheme(classes=[ClassInfo(id=1, name="water", color="#466b9f"),
                              ClassInfo(id=4, name="forest", color="#68ab5f")])


def _polygons(tmp_path: Path, values: list[object]) -> Path:
    with rasterio.open(ZION) as ds:
        left, top, res = ds.bounds.left, ds.bounds.top, ds.res[0]
        crs = ds.crs
    shapes = [box(left + 40 * i * res, top - 40 * res, left + (40 * i + 30) * res, top) for i in range(len(values))]
    path = tmp_path / "labels.gpkg"
    gpd.GeoDataFrame({"class": values}, geometry=shapes, crs=crs).to_file(path)
    return path


def _grid() -> tuple:
    with rasterio.open(ZION) as ds:
        return ds.crs, ds.transform, ds.height, ds.width


def test_class_names_in_a_string_column_are_read(tmp_path: Path) -> None:
    labels = LabelSource(_polygons(tmp_path, ["Water", "forest"]), SCHEME)
    indices = labels.read(*_grid())
    assert set(np.unique(indices)) == {0, 1, IGNORE_INDEX}


def test_undeclared_ids_are_an_error_listing_them_unless_ignored(tmp_path: Path) -> None:
    path = _polygons(tmp_path, [1, 4, 7, 7])
    with pytest.raises(InputFileError, match=r"label ids 7 \(2 features\) in column 'class' are not among the "
                                             r"classes \(1 water, 4 forest\).*ignore_ids"):
        LabelSource(path, SCHEME)
    indices = LabelSource(path, SCHEME, ignore_ids=[7]).read(*_grid())
    assert set(np.unique(indices)) == {0, 1, IGNORE_INDEX}


def test_undeclared_ids_in_a_label_raster_are_counted(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"label ids 2 \(\d+ pixels\), 3 \(\d+ pixels\)"):
        LabelSource(ZION_LABELS, SCHEME).read(*_grid())


def test_evaluate_checks_labels_before_predicting_and_leaves_nothing(tmp_path: Path) -> None:
    report = tmp_path / "report"
    bad = _polygons(tmp_path, [1, 99])
    with pytest.raises(InputFileError, match="label ids 99"):
        evaluate(None, ZION, bad, report)
    assert not report.exists()                            # the folder it created is gone again
    report.mkdir()
    (report / "notes.txt").write_text("mine")
    with pytest.raises(InputFileError, match="label ids 99"):
        evaluate(None, ZION, bad, report)
    assert [p.name for p in report.iterdir()] == ["notes.txt"]
    result = evaluate(None, ZION, bad, report, ignore_ids=[99])   # the corrected run works
    assert result.scores.pixels > 0 and (report / "prediction.tif").exists()


def _named_labels(tmp_path: Path, legend: ClassScheme) -> Path:
    """The Zion labels with only ids 1 and 4 kept, carrying ``legend`` as their geoseg legend."""
    with rasterio.open(ZION_LABELS) as src:
        data, profile = src.read(1), src.profile.copy()
    data = np.where(np.isin(data, [1, 4]), data, 255).astype(np.uint8)
    profile.update(nodata=255)
    path = tmp_path / "named.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
        dst.update_tags(**legend.to_tags())
    return path


def test_named_label_classes_are_matched_by_name_not_number(tmp_path: Path) -> None:
    swapped = ClassScheme(classes=[ClassInfo(id=1, name="forest", color="#68ab5f"),
                                   ClassInfo(id=4, name="water", color="#466b9f")])
    plain = LabelSource(_named_labels(tmp_path, SCHEME), SCHEME).read(*_grid())
    matched = LabelSource(_named_labels(tmp_path, swapped), SCHEME).read(*_grid())
    assert np.array_equal(matched == 0, plain == 1) and np.array_equal(matched == 1, plain == 0)


def test_label_classes_the_legend_lacks_are_refused_by_name(tmp_path: Path) -> None:
    other = ClassScheme(classes=[ClassInfo(id=1, name="developed", color="#d99282"),
                                 ClassInfo(id=4, name="forest", color="#68ab5f")])
    path = _named_labels(tmp_path, other)
    with pytest.raises(InputFileError, match=r"label classes 1 'developed' \(\d+ pixels\) have no class of that name"):
        LabelSource(path, SCHEME).read(*_grid())
    assert set(np.unique(LabelSource(path, SCHEME, ignore_ids=[1]).read(*_grid()))) == {1, IGNORE_INDEX}
