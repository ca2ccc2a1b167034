"""Evaluate an object detector (an instance model or the classic ``bright-objects``) against reference
footprints on a scene, the way users run it: ``geoseg evaluate MODEL SCENE footprints.geojson -o report/``.

The objects are found by the real engine (:class:`~geoseg.vector.objects.ObjectPredictor`) into
``objects.gpkg``; the footprints are read in the scene's CRS and clipped to the scene; the scores are
those of :mod:`geoseg.evaluation.instance_metrics` (F1@0.5 by the SpaceNet rule, COCO AP50 and AP, by size).
Writes ``objects.gpkg``, ``metrics.json``, ``report.md`` and ``preview.png`` (matched, missed and false
objects over the scene).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import shapely

from geoseg.classic import OBJECT_METHODS, BrightObjects
from geoseg.errors import InputFileError, ParameterError
from geoseg.evaluation.evaluate import report_folder, write_text
from geoseg.evaluation.instance_metrics import SIZES, ObjectScores, score_objects
from geoseg.io.preview import natural_colour, preview_shape, pyplot
from geoseg.io.outputs import atomic_output
from geoseg.io.rasters import open_raster
from geoseg.progress import Reporter
from geoseg.vector.objects import MetaDetector, ObjectPredictor

OUTPUTS = ("objects.gpkg", "metrics.json", "report.md", "preview.png")
#: Preview colours: found objects, false objects, missed references.
MATCHED, FALSE, MISSED = "#1a9850", "#fdae61", "#d73027"


@dataclass
class ObjectEvaluation:
    """Scores and the files written."""

    scores: ObjectScores
    files: dict[str, Path] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def object_detector(model: MetaDetector | str | os.PathLike, scene: str | os.PathLike, *,
                    bands: list[int] | None = None, threshold: float | None = None, device: str = "auto",
                    score_threshold: float | None = None, fill: float | None = None) -> MetaDetector:
    """A detector from a loaded one, a classic object method's name, or an instance bundle's path.

    A model's own score cut is lowered to ``score_threshold`` when that is given (the engine applies it).
    """
    if hasattr(model, "detect"):
        return model  # type: ignore[return-value]
    if str(model) in OBJECT_METHODS:
        return BrightObjects.for_scene(scene, bands, threshold, fill)
    if threshold is not None:
        raise ParameterError("threshold", threshold, "sets a classic method's threshold; use {score_threshold} "
                             "with a model", parameters=("score_threshold",))
    from geoseg.inference.device import plan_execution
    from geoseg.model.instance_net import load_instance_detector

    return load_instance_detector(model, device=plan_execution(device, "fp32").device,
                                  score_threshold=score_threshold)


def evaluate_objects(model: MetaDetector | str | os.PathLike, scene: str | os.PathLike,
                     footprints: str | os.PathLike, output_dir: str | os.PathLike, *, bands: list[int] | None = None,
                     threshold: float | None = None, device: str = "auto", overwrite: bool = False,
                     reporter: Reporter | None = None, **options: Any) -> ObjectEvaluation:
    """Find the objects of ``scene`` with ``model`` and score them against the polygons in ``footprints``.

    ``options`` go to :class:`ObjectPredictor` (tile, overlap, batch_size, score_threshold) and its
    ``predict`` (nodata, check_values, repeat_bands). Objects are matched whatever their class (one kind of object per
    evaluation: buildings, tree crowns...). The footprints are checked before anything is predicted.
    """
    t0 = time.perf_counter()
    footprints = Path(footprints)
    setup = {k: options.pop(k) for k in ("tile", "overlap", "batch_size", "score_threshold") if k in options}
    with report_folder(output_dir, OUTPUTS, overwrite, (scene, footprints)) as files:
        reference, pixel_area = _reference(footprints, scene)
        detector = object_detector(model, scene, bands=bands, threshold=threshold, device=device,
                                   score_threshold=setup.get("score_threshold"), fill=options.get("nodata"))
        predictor = ObjectPredictor(detector, **setup)
        summary = predictor.predict(scene, files["objects.gpkg"], bands=bands, overwrite=overwrite,
                                    reporter=reporter, **options)
        found = pyogrio.read_dataframe(files["objects.gpkg"])
        predicted = np.array(found.geometry.values, dtype=object)
        scores = score_objects(predicted, found["score"].to_numpy(float), reference, pixel_area)
        name = predictor.meta.name
        info = {"model": name, "model_file": None if str(model) in OBJECT_METHODS or hasattr(model, "detect")
                else Path(model).name, "scene": Path(scene).name, "footprints": footprints.name,
                "tile": predictor.tile, "overlap": predictor.overlap,
                "score_threshold": predictor.score_threshold, "prediction_seconds": summary.elapsed_s,
                "seconds": round(time.perf_counter() - t0, 2)}
        write_text(files["metrics.json"], json.dumps({**info, **scores.to_json_dict()}, indent=1))
        write_text(files["report.md"], markdown_report(scores, info))
        preview_png(scene, predicted, reference, scores, files["preview.png"], f"{name} on {Path(scene).name}")
    return ObjectEvaluation(scores, files, info)


def _reference(footprints: Path, scene: str | os.PathLike) -> tuple[np.ndarray, float]:
    """The footprints in the scene's CRS, clipped to the scene, and the scene's pixel area (map units²)."""
    import geopandas as gpd

    with open_raster(scene) as dataset:
        crs, bounds, transform = dataset.crs, dataset.bounds, dataset.transform
    try:
        frame = gpd.read_file(footprints)
    except Exception as err:
        raise InputFileError(f"{footprints}: cannot read the footprints ({err}); pass a polygon file "
                             "(GeoJSON, GeoPackage, Shapefile...)") from err
    if crs is None or frame.crs is None:
        raise InputFileError(f"{footprints}: the footprints or {scene} have no CRS; both need one to be compared")
    geoms = shapely.make_valid(np.array(frame.to_crs(crs).geometry.values, dtype=object))
    polygonal = np.array([g is not None and g.geom_type in ("Polygon", "MultiPolygon") and not g.is_empty
                          for g in geoms])
    clipped = shapely.intersection(geoms[polygonal], shapely.box(*bounds)) if polygonal.any() else geoms[:0]
    clipped = clipped[shapely.area(clipped) > 0] if len(clipped) else clipped
    if not len(clipped):
        raise InputFileError(f"{footprints}: no footprint polygon falls on {scene}; check the CRS and the extent")
    return clipped, abs(transform.determinant)


def markdown_report(scores: ObjectScores, info: dict[str, Any]) -> str:
    """The headline object scores, the per-size table and the preview."""
    def fmt(value: Any) -> str:
        return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.3f}"

    model = info["model"] + (f" (`{info['model_file']}`)" if info.get("model_file") else "")
    lines = [f"# Object evaluation of {model}", "",
             f"- scene: `{info['scene']}`", f"- footprints: `{info['footprints']}`",
             f"- tiles of {info['tile']} px, overlap {info['overlap']} px, score threshold {info['score_threshold']}",
             f"- {scores.references} reference objects, {scores.predictions} predicted, "
             f"{scores.true_positives} matched at IoU >= 0.5", "",
             "| F1@0.5 | precision | recall | AP50 | AP75 | AP@[.5:.95] |", "|---|---|---|---|---|---|",
             f"| {fmt(scores.f1)} | {fmt(scores.precision)} | {fmt(scores.recall)} | {fmt(scores.ap50)} | "
             f"{fmt(scores.ap75)} | {fmt(scores.ap)} |", "",
             "| size (px) | reference | found | predicted | recall | AP50 | AP |", "|---|---|---|---|---|---|---|"]
    for (name, low, high), values in zip(SIZES, scores.per_size.values()):
        span = f"< {high:.0f}" if low == 0 else (f">= {low:.0f}" if high > 1e9 else f"{low:.0f}–{high:.0f}")
        lines.append(f"| {name} ({span}) | {values['references']} | {values['found']} | {values['predictions']} | "
                     f"{fmt(values['recall'])} | {fmt(values['ap50'])} | {fmt(values['ap'])} |")
    lines += ["", "F1, precision and recall match objects one to one at IoU >= 0.5 (the SpaceNet rule); AP is "
              "COCO's (101-point, IoU 0.50 to 0.95), with no cap on detections. – marks a score without "
              "objects to compute it on.", "",
              "![found (green), false (orange) and missed (red) objects](preview.png)", ""]
    return "\n".join(lines)


def preview_png(scene: str | os.PathLike, predicted: np.ndarray, reference: np.ndarray, scores: ObjectScores,
                path: Path, title: str) -> Path:
    """The scene with matched predictions (green), false ones (orange) and missed references (red)."""
    plt = pyplot()
    with open_raster(scene) as dataset:
        shape = preview_shape(dataset.height, dataset.width)
        rgb = np.moveaxis(natural_colour(dataset, shape), 0, -1)
        left, bottom, right, top = dataset.bounds
    matched_p = {p for p, _ in scores.matches}
    matched_r = {r for _, r in scores.matches}
    figure, axes = plt.subplots(figsize=(8, 8 * shape[0] / shape[1] + 0.6))
    axes.imshow(rgb, extent=(left, right, bottom, top), interpolation="nearest")
    groups = ((reference, lambda i: i not in matched_r, MISSED, f"missed ({len(reference) - len(matched_r)})"),
              (predicted, lambda i: i in matched_p, MATCHED, f"found ({len(matched_p)})"),
              (predicted, lambda i: i not in matched_p, FALSE, f"false ({len(predicted) - len(matched_p)})"))
    for geoms, pick, colour, label in groups:
        first = True
        for i, geom in enumerate(geoms):
            if not pick(i):
                continue
            for part in getattr(geom, "geoms", [geom]):
                if part.geom_type != "Polygon":
                    continue
                x, y = part.exterior.xy
                axes.plot(x, y, color=colour, linewidth=1.2, label=label if first else None)
                first = False
    axes.set_xlim(left, right)
    axes.set_ylim(bottom, top)
    axes.set_axis_off()
    axes.set_title(f"{title}\nF1@0.5 {scores.f1:.3f}, AP50 {scores.ap50:.3f}, AP {scores.ap:.3f}", fontsize=11)
    axes.legend(loc="lower center", bbox_to_anchor=(0.5, -0.08), ncol=3, frameon=False, fontsize=10)
    with atomic_output(path, overwrite=True) as tmp:
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path
