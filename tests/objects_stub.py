"""A detector that knows the answer, for testing the object engine on real files.

The scene's single band holds object ids (0: background). :class:`IdDetector` "sees" every object whose
id appears in the tile it is given, exactly as far as the tile shows it (cut at the tile's edge), so the
engine's merge can be checked against the layout the scene was painted from.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

from geoseg.io.legend import ClassInfo, ClassScheme
from geoseg.model.instances import TileInstances
from geoseg.model.meta import BandSpec, BundleMeta, ModelSpec

ORIGIN = Affine(0.5, 0, 500000, 0, -0.5, 4100000)     # 0.5 m pixels in UTM 33N


def id_meta(tile: int = 64, overlap: int = 16) -> BundleMeta:
    scheme = ClassScheme(classes=[ClassInfo(id=1, name="building", color="#d62728"),
                                  ClassInfo(id=2, name="tree", color="#2ca02c")])
    return BundleMeta(name="id-stub", task="instance", model=ModelSpec(architecture="MaskRCNN", encoder=None),
                      bands=[BandSpec(name="ids")], input_dtype="uint32", scheme=scheme, tile_size=tile,
                      overlap=overlap, gsd=0.5)


def score_of(object_id: int) -> float:
    return 0.5 + (object_id * 7919 % 500) / 1000


def class_of(object_id: int) -> int:
    return 1 + object_id % 2


class IdDetector:
    """Every id in a tile is one object; its score and class follow from the id."""

    def __init__(self, meta: BundleMeta):
        self.meta = meta
        self.calls = 0

    def detect(self, tiles: np.ndarray) -> list[TileInstances]:
        self.calls += 1
        out = []
        for tile in tiles:
            ids = np.rint(tile[0]).astype(np.int64)
            present = np.unique(ids[ids > 0])
            masks = ids[None] == present[:, None, None]
            out.append(TileInstances(masks, np.array([score_of(i) for i in present], np.float32),
                                     np.array([class_of(i) for i in present], np.int32)))
        return out


def write_ids(path: Path, ids: np.ndarray, nodata: float | None = None) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=ids.shape[1], height=ids.shape[0], count=1,
                       dtype="uint32", crs="EPSG:32633", transform=ORIGIN, nodata=nodata, tiled=True,
                       blockxsize=16, blockysize=16) as ds:
        ds.write(ids.astype(np.uint32), 1)
    return path


def expected_objects(ids: np.ndarray) -> set[tuple]:
    """(y, x, mask bytes, shape, class, score) of each painted object, as the engine should return it."""
    out = set()
    for i in np.unique(ids[ids > 0]):
        mask = ids == i
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        crop = mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        out.add((int(rows[0]), int(cols[0]), crop.tobytes(), crop.shape, class_of(int(i)),
                 round(score_of(int(i)), 5)))
    return out


def as_set(objects) -> set[tuple]:  # noqa: ANN001
    return {(o.y, o.x, o.mask.tobytes(), o.mask.shape, o.class_id, round(o.score, 5)) for o in objects}
