"""Pictures for people: confusion matrix, per-class scores, and a preview of the scene and its maps.

matplotlib (the ``train`` extra) is imported only when a picture is drawn. Previews are drawn by
:mod:`geoseg.io.preview` (titles, legend, scale bar, page-filling layout), which reads decimated
overviews of the rasters, so a preview of a huge scene costs little memory.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling

from geoseg.evaluation.metrics import Scores
from geoseg.io.legend import ClassScheme
from geoseg.io.outputs import atomic_output
from geoseg.io.preview import Panel, class_rgb, natural_colour, preview_shape, render_panels
from geoseg.io.preview import pyplot as _pyplot
from geoseg.io.rasters import ground_sample_distance


def _save(figure, path: str | os.PathLike, overwrite: bool) -> Path:  # noqa: ANN001
    with atomic_output(path, overwrite) as tmp:
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    figure.clf()
    _pyplot().close(figure)
    return Path(path)


def confusion_png(scores: Scores, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Row-normalised confusion matrix (recall per true class) with the pixel counts written in."""
    plt = _pyplot()
    matrix = np.array(scores.confusion_matrix, np.float64)
    names = [c.name for c in scores.per_class]
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    size = 1.2 + 0.7 * len(names)
    figure, axes = plt.subplots(figsize=(size + 1.5, size))
    image = axes.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (t, p), count in np.ndenumerate(matrix):
        axes.text(p, t, f"{int(count)}", ha="center", va="center", fontsize=7,
                  color="white" if share[t, p] > 0.5 else "black")
    axes.set_xticks(range(len(names)), names, rotation=45, ha="right")
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("reference")
    axes.set_title(f"confusion (OA {scores.overall_accuracy:.3f}, mIoU {scores.mean_iou:.3f})")
    figure.colorbar(image, ax=axes, fraction=0.046, label="share of the reference class")
    return _save(figure, path, overwrite)


def per_class_png(scores: Scores, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Grouped bars of IoU, F1, precision and recall per class (missing bars: undefined, class absent)."""
    plt = _pyplot()
    names = [c.name for c in scores.per_class]
    metrics = ("iou", "dice", "precision", "recall")
    width = 0.2
    figure, axes = plt.subplots(figsize=(max(6, 1.1 * len(names)), 3.8))
    x = np.arange(len(names))
    for i, metric in enumerate(metrics):
        values = [getattr(c, metric) for c in scores.per_class]
        axes.bar(x + (i - 1.5) * width, np.nan_to_num(values), width, label="F1" if metric == "dice" else metric)
    axes.set_xticks(x, [f"{n}\n({c.support} px)" for n, c in zip(names, scores.per_class)], fontsize=8)
    axes.set_ylim(0, 1)
    axes.legend(ncol=4, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, 1.15))
    axes.grid(axis="y", alpha=0.3)
    return _save(figure, path, overwrite)


def preview_png(scene: str | os.PathLike, maps: list[tuple[str, np.ndarray | str | os.PathLike]],
                scheme: ClassScheme, path: str | os.PathLike, title: str | None = None,
                overwrite: bool = False) -> Path:
    """Scene and class maps (id arrays or class-map files) with titles, a legend and a scale bar, laid out
    to fill the page (:func:`geoseg.io.preview.render_panels`)."""
    with rasterio.open(scene) as dataset:
        shape = preview_shape(dataset.height, dataset.width)
        panels = [Panel("scene (natural colour)", np.moveaxis(natural_colour(dataset, shape), 0, -1))]
        gsd = ground_sample_distance(dataset)
        metres = gsd * dataset.width / shape[1] if gsd else None
    nodata = False
    for title_of_map, source in maps:
        if isinstance(source, np.ndarray):
            step_r, step_c = max(1, source.shape[0] // shape[0]), max(1, source.shape[1] // shape[1])
            ids = source[::step_r, ::step_c][:shape[0], :shape[1]]
        else:
            with rasterio.open(source) as dataset:
                ids = dataset.read(1, out_shape=shape, resampling=Resampling.nearest)
        nodata |= bool((ids == scheme.nodata_id).any())
        panels.append(Panel(title_of_map, class_rgb(ids, scheme)))
    return render_panels(panels, scheme, path, title=title or Path(scene).name, metres_per_pixel=metres,
                         show_nodata=nodata, overwrite=overwrite)
