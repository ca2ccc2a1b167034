"""Draw the figures of docs/instances.md from generated data with the real engine (nothing here may not ship).

    python scripts/instance_figures.py        # writes docs/instances_merge.png and docs/instances_report.png

``instances_merge.png``: objects painted on a scene, what each tile of the grid sees (pieces cut at tile
edges) and the merged result, from :class:`geoseg.inference.instances.ObjectMerger` fed by the stub
detector of the tests. ``instances_report.png``: the preview of an object evaluation (``bright-objects``
on a generated scene with bright buildings, dark ones it misses, and a bright yard it mistakes).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geoseg.inference.instances import ObjectMerger, tile_objects  # noqa: E402
from geoseg.inference.tiling import TileGrid  # noqa: E402
from geoseg.io.preview import pyplot  # noqa: E402
from tests.objects_stub import IdDetector, ORIGIN, id_meta  # noqa: E402

DOCS = ROOT / "docs"


def merge_figure(path: Path) -> None:
    rng = np.random.default_rng(4)
    ids = np.zeros((200, 260), np.int64)
    k = 1
    while k <= 22:
        h, w = (int(v) for v in rng.integers(8, 22, 2))
        y, x = int(rng.integers(0, 200 - h)), int(rng.integers(0, 260 - w))
        if ids[max(0, y - 2):y + h + 2, max(0, x - 2):x + w + 2].any():
            continue
        ids[y:y + h, x:x + w] = k
        k += 1
    grid = TileGrid(200, 260, 96, 24)
    detector = IdDetector(id_meta(96, 24))
    merger = ObjectMerger(grid)
    pieces, merged = [], []
    valid = np.ones((96, 96), bool)
    for tile in grid:
        window = ids[tile.slices].astype(np.float32)[None]
        found = detector.detect(window[None])[0]
        pieces += [(obj, cut) for obj, cut in tile_objects(tile, found, valid[:tile.height, :tile.width], grid, 0.0)]
        merged += merger.add(tile, found, valid[:tile.height, :tile.width])
    merged += merger.finish()
    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.9))
    for ax, title in zip(axes, (f"what the {len(grid)} tiles see: {len(pieces)} pieces ({sum(c for _, c in pieces)} "
                                "cut at a tile edge, dashed)", f"after the merge: {len(merged)} objects")):
        ax.imshow(np.where(ids > 0, 0.85, 1.0), cmap="gray", vmin=0, vmax=1, extent=(0, 260, 200, 0))
        for tile in grid:
            ax.add_patch(plt.Rectangle((tile.x, tile.y), tile.width, tile.height, fill=False, lw=0.8,
                                       ec="#1f77b4", alpha=0.7))
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    colours = plt.get_cmap("tab20")
    for i, (obj, cut) in enumerate(pieces):
        _outline(axes[0], obj, colours(i % 20), "--" if cut else "-")
    for i, obj in enumerate(merged):
        _outline(axes[1], obj, colours(i % 20), "-")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _outline(ax, obj, colour, style) -> None:  # noqa: ANN001
    y0, x0, y1, x1 = obj.bounds
    ax.add_patch(__import__("matplotlib").patches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=1.4,
                                                            ec=colour, ls=style))


def report_figure(path: Path) -> None:
    import geopandas as gpd
    import rasterio
    import shapely

    from geoseg.classic import BrightObjects
    from geoseg.evaluation.instances import evaluate_objects

    rng = np.random.default_rng(1)
    data = rng.normal(100, 6, (400, 400)).astype(np.float32)
    buildings = [(30, 40, 30, 22), (40, 200, 24, 36), (150, 90, 28, 28), (260, 300, 20, 44), (330, 60, 26, 30),
                 (200, 220, 34, 24), (100, 320, 22, 22)]
    for i, (y, x, h, w) in enumerate(buildings):
        data[y:y + h, x:x + w] += -60 if i in (3, 5) else 110          # two dark roofs: missed
    data[300:330, 180:215] += 100                                      # a bright yard: a false object
    with tempfile.TemporaryDirectory() as tmp:
        scene = Path(tmp) / "scene.tif"
        with rasterio.open(scene, "w", driver="GTiff", width=400, height=400, count=1, dtype="float32",
                           crs="EPSG:32633", transform=ORIGIN) as ds:
            ds.write(data, 1)
        footprints = Path(tmp) / "footprints.geojson"
        boxes = [shapely.box(*(ORIGIN @ (x, y + h)), *(ORIGIN @ (x + w, y))) for y, x, h, w in buildings]
        gpd.GeoDataFrame(geometry=boxes, crs="EPSG:32633").to_file(footprints)
        report = evaluate_objects(BrightObjects.for_scene(scene), scene, footprints, Path(tmp) / "report")
        path.write_bytes(report.files["preview.png"].read_bytes())


if __name__ == "__main__":
    merge_figure(DOCS / "instances_merge.png")
    report_figure(DOCS / "instances_report.png")
    print("wrote docs/instances_merge.png and docs/instances_report.png")
