"""Block polygonization as Dask tasks on a real LocalCluster (2 worker processes): the same polygons,
attributes and order as the local run, with seams merged and regions sieved across block borders."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyogrio
import pytest
import shapely

from geoseg.vector.vectorize import vectorize
from tests.conftest import ZION_LABELS
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.mark.parametrize("options", [{}, {"min_area": 4, "min_area_unit": "pixels", "dissolve": True}])
def test_dask_blocks_give_the_local_polygons(tmp_path: Path, client: object, options: dict) -> None:
    local = vectorize(ZION_LABELS, tmp_path / "local.gpkg", block_size=96, workers=1, **options)
    on_dask = vectorize(ZION_LABELS, tmp_path / "dask.gpkg", block_size=96, scheduler=client, **options)
    assert on_dask.n_polygons == local.n_polygons >= 8           # 8 classes: 8 when dissolved
    assert on_dask.area_m2_per_class == local.area_m2_per_class
    mine, theirs = (pyogrio.read_dataframe(tmp_path / f"{name}.gpkg") for name in ("dask", "local"))
    assert list(mine.columns) == list(theirs.columns)
    assert mine.drop(columns="geometry").equals(theirs.drop(columns="geometry"))
    assert shapely.to_wkb(mine.geometry.values).tolist() == shapely.to_wkb(theirs.geometry.values).tolist()
