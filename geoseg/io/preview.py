"""Previews people read: a scene in natural colour beside class maps, with titles, a legend and a scale bar.

One renderer (:func:`render_panels`) draws every preview: the quick look of a prediction
(:func:`write_preview`, the demo's ``preview.png``) and the evaluation report's scene / reference /
prediction figure. Panels are laid out in the grid whose page is closest to a landscape sheet, so a wide
scene stacks its panels and a tall one puts them side by side, and the maps fill the page instead of
leaving it white. Rasters are read decimated (GDAL uses their overviews), so a preview of a huge scene
costs little memory. Drawn with matplotlib, imported only here and only when a picture is drawn.
"""
from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import NodataShadowWarning

from geoseg.errors import InputError
from geoseg.io.legend import ClassScheme
from geoseg.io.outputs import atomic_output
from geoseg.io.rasters import ground_sample_distance, open_raster

RGB_NAMES = ("red", "green", "blue")
PREVIEW_MAX = 1024
#: Width of a preview page in inches (at ``DPI``: 1320 px), and the page shape the layout aims for.
PAGE_WIDTH = 12.0
PAGE_ASPECT = 1.5
DPI = 110
NODATA_RGB = (255, 255, 255)


@dataclass(frozen=True)
class Panel:
    """One picture of a preview: its title and its RGB pixels (h, w, 3) uint8."""

    title: str
    rgb: np.ndarray


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend, or a message saying how to install it."""
    try:
        import matplotlib
    except ImportError as err:
        raise InputError("previews and plots need matplotlib; pip install 'geoseg[train]'") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def preview_shape(height: int, width: int, limit: int = PREVIEW_MAX) -> tuple[int, int]:
    """(rows, cols) of a preview of a ``height`` x ``width`` raster, at most ``limit`` px a side."""
    scale = min(1.0, limit / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def natural_colour(dataset: rasterio.DatasetReader, shape: tuple[int, int]) -> np.ndarray:
    """(3, h, w) uint8: red/green/blue bands by name (else the first three), 2–98 % stretched."""
    names = [(d or "").lower() for d in dataset.descriptions]
    if all(n in names for n in RGB_NAMES):
        indexes = [names.index(n) + 1 for n in RGB_NAMES]
    else:
        indexes = [min(i, dataset.count) for i in (1, 2, 3)]
    with warnings.catch_warnings():     # nodata and alpha both set (NAIP): GDAL uses nodata, as valid_mask says
        warnings.simplefilter("ignore", NodataShadowWarning)
        data = dataset.read(indexes, out_shape=(3, *shape), resampling=Resampling.average, masked=True)
    data = data.astype("float32")
    out = np.zeros((3, *shape), np.uint8)
    for band in range(3):
        values = data[band].compressed()
        if values.size == 0:
            continue
        low, high = np.percentile(values, (2, 98))
        scaled = np.clip((data[band].filled(low) - low) / max(high - low, 1e-6), 0, 1)
        out[band] = (scaled * 255).astype(np.uint8)
    return out


def class_rgb(ids: np.ndarray, scheme: ClassScheme) -> np.ndarray:
    """Class ids (h, w) -> RGB (h, w, 3) uint8 in the scheme's colours; nodata and unknown ids white."""
    lut = np.full((256, 3), NODATA_RGB, np.uint8)
    for info in scheme.classes:
        lut[info.id] = info.rgb
    return lut[ids]


def layout(count: int, aspect: float) -> tuple[int, int]:
    """(rows, columns) for ``count`` panels of width/height ``aspect``: the grid whose page is closest
    to ``PAGE_ASPECT`` (wide scenes stack, tall ones sit side by side), fewest empty cells on ties."""
    grids = [(math.ceil(count / cols), cols) for cols in range(1, count + 1)]
    return min(grids, key=lambda g: (abs(math.log(g[1] * aspect / g[0] / PAGE_ASPECT)), g[0] * g[1] - count))


def scale_bar_length(metres_across: float) -> float:
    """A round length (1, 2 or 5 x 10^k m) close to a quarter of the width shown."""
    target = metres_across / 4
    power = 10 ** math.floor(math.log10(target))
    return max(step * power for step in (1, 2, 5) if step * power <= target)


def _distance_label(metres: float) -> str:
    return f"{metres / 1000:g} km" if metres >= 1000 else f"{metres:g} m"


def render_panels(panels: Sequence[Panel], scheme: ClassScheme, path: str | os.PathLike, *, title: str,
                  metres_per_pixel: float | None = None, shares: Mapping[int, float] | None = None,
                  show_nodata: bool = False, overwrite: bool = False) -> Path:
    """Draw ``panels`` (same extent and size) with a title, a legend of ``scheme`` and a scale bar.

    ``metres_per_pixel`` is the ground size of one preview pixel (no scale bar when unknown);
    ``shares`` (class id -> fraction of the map) adds each class's share to its legend entry;
    ``show_nodata`` adds the white "no data" entry (only when some panel has nodata pixels).
    """
    plt = pyplot()
    height, width = panels[0].rgb.shape[:2]
    rows, cols = layout(len(panels), width / height)
    # Inches. Cells are exactly the panels' size (no letterboxing); titles sit in the gaps above them.
    margin, column_gap, row_gap, top = 0.05, 0.15, 0.45, 0.7
    panel_w = (PAGE_WIDTH - 2 * margin - (cols - 1) * column_gap) / cols
    panel_h = panel_w * height / width
    entries = len(scheme.classes) + show_nodata
    legend_h = 0.25 + 0.28 * math.ceil(entries / min(entries, 5))
    page_h = top + rows * panel_h + (rows - 1) * row_gap + legend_h
    figure = plt.figure(figsize=(PAGE_WIDTH, page_h), dpi=DPI)
    grid = figure.add_gridspec(rows, cols, left=margin / PAGE_WIDTH, right=1 - margin / PAGE_WIDTH,
                               top=1 - top / page_h, bottom=legend_h / page_h, wspace=column_gap / panel_w,
                               hspace=row_gap / panel_h)
    for index, panel in enumerate(panels):
        axes = figure.add_subplot(grid[index // cols, index % cols])
        axes.imshow(panel.rgb, interpolation="nearest")
        axes.set_title(panel.title, fontsize=11)
        axes.set_axis_off()
        if metres_per_pixel:
            _scale_bar(axes, metres_per_pixel, width)
    figure.suptitle(title, fontsize=13, y=1 - 0.1 / page_h, va="top")
    _legend(figure, plt, scheme, shares, show_nodata)
    with atomic_output(path, overwrite) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI)
    plt.close(figure)
    return Path(path)


def _scale_bar(axes: Any, metres_per_pixel: float, width: int) -> None:
    from matplotlib.font_manager import FontProperties
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    length = scale_bar_length(metres_per_pixel * width)
    bar = AnchoredSizeBar(axes.transData, length / metres_per_pixel, _distance_label(length), "lower left",
                          pad=0.3, borderpad=0.6, sep=3, color="black", frameon=True,
                          size_vertical=max(1.0, width / 250), fontproperties=FontProperties(size=9))
    bar.patch.set(alpha=0.75, facecolor="white", edgecolor="none")
    axes.add_artist(bar)


def _legend(figure: Any, plt: Any, scheme: ClassScheme, shares: Mapping[int, float] | None,
            show_nodata: bool) -> None:
    def label(info: Any) -> str:
        return f"{info.name} ({100 * shares.get(info.id, 0.0):.1f} %)" if shares is not None else info.name

    handles = [plt.Rectangle((0, 0), 1, 1, facecolor=c.color, edgecolor="0.4", linewidth=0.5)
               for c in scheme.classes]
    labels = [label(c) for c in scheme.classes]
    if show_nodata:
        handles.append(plt.Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="0.4", linewidth=0.5))
        labels.append("no data")
    columns = min(len(handles), 5)
    order = row_major(len(handles), columns)
    figure.legend([handles[i] for i in order], [labels[i] for i in order], loc="lower center", ncol=columns,
                  fontsize=10, frameon=False, bbox_to_anchor=(0.5, 0.0), handlelength=1.4, columnspacing=1.6)


def row_major(count: int, columns: int) -> list[int]:
    """The order to hand entries to matplotlib (which fills a legend column by column) so that they read
    left to right, row by row, in class order."""
    rows = math.ceil(count / columns)
    return [r * columns + c for c in range(columns) for r in range(rows) if r * columns + c < count]


def write_preview(scene: str | os.PathLike, class_map: str | os.PathLike, png: str | os.PathLike,
                  max_side: int = PREVIEW_MAX, title: str | None = None, overwrite: bool = False) -> Path:
    """The scene in natural colour and its class map, with a legend (with class shares) and a scale bar."""
    with open_raster(scene) as src, open_raster(class_map) as classes:
        shape = preview_shape(src.height, src.width, max_side)
        scheme = ClassScheme.from_dataset(classes)
        if scheme is None:
            raise InputError(f"{class_map}: not a class map (no legend); pass a map written by geoseg")
        ids = classes.read(1, out_shape=shape, resampling=Resampling.nearest)
        gsd = ground_sample_distance(classes)
        panels = [Panel("scene (natural colour)", np.moveaxis(natural_colour(src, shape), 0, -1)),
                  Panel(f"land cover ({Path(class_map).name})", class_rgb(ids, scheme))]
        metres = gsd * classes.width / shape[1] if gsd else None
    counts = np.bincount(ids.ravel(), minlength=256)
    shares = {c.id: counts[c.id] / max(1, ids.size) for c in scheme.classes}
    return render_panels(panels, scheme, png, title=title or f"{Path(scene).name}: land cover",
                         metres_per_pixel=metres, shares=shares, show_nodata=bool(counts[scheme.nodata_id]),
                         overwrite=overwrite)
