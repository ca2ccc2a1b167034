"""Evaluate a model (or a classic method) against reference labels on a scene, the way users run it.

The prediction is made by the real pipeline (:class:`~geoseg.inference.predictor.Predictor`, or
:class:`~geoseg.classic.ClassicMethod`) into ``prediction.tif``; the confusion matrix is then accumulated
block by block against the labels warped or rasterised onto the scene grid, so memory stays bounded.
Pixels without a reference label, and pixels the prediction marks as nodata, are left out.

Writes ``metrics.json``, ``report.md``, ``confusion.png``, ``per_class.png`` and ``preview.png``.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine

from geoseg.model.bundle import ModelBundle
from geoseg.io.legend import ClassInfo, ClassScheme
from geoseg.errors import InputError, InputFileError, OutputError, ParameterError
from geoseg.inference.tiling import row_windows
from geoseg.io.rasters import gdal_env, open_raster
from geoseg.evaluation.labels import LabelSource, ids_to_indices, is_vector
from geoseg.evaluation.metrics import IGNORE_INDEX, ConfusionMatrix, Scores
from geoseg.io.outputs import atomic_output, check_writable
from geoseg.progress import Reporter

OUTPUTS = ("prediction.tif", "metrics.json", "report.md", "confusion.png", "per_class.png", "preview.png")
BLOCK_ROWS = 512


@dataclass
class EvaluationResult:
    """Scores, the matrix they came from (to add up over scenes), and the files written."""

    scores: Scores
    confusion: ConfusionMatrix
    files: dict[str, Path] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def _label_scheme(labels: Path) -> ClassScheme | None:
    if is_vector(labels):
        return None
    with open_raster(labels) as dataset:
        return ClassScheme.from_dataset(dataset)


def _classic(method: str, labels: Path, method_classes: tuple[int, int] | None, legend: ClassScheme | None
             ):  # noqa: ANN202
    """The classic method and the scheme to score it in (the labels' legend plus the method's classes)."""
    from geoseg.classic import ClassicMethod, default_scheme

    legend = legend or _label_scheme(labels)
    known = {c.id: c for c in legend.classes} if legend else {}
    if method_classes is None:
        above, below = default_scheme(method).classes
    else:
        defaults = default_scheme(method).classes
        above, below = (known.get(i) or ClassInfo(id=i, name=d.name, color=d.color)
                        for i, d in zip(method_classes, defaults))
    merged = dict(known)
    for info in (above, below):
        merged.setdefault(info.id, info)
    nodata = legend.nodata_id if legend else 255
    scheme = ClassScheme(classes=[merged[i] for i in sorted(merged)], nodata_id=nodata)
    return ClassicMethod(method, above, below), scheme


def _forest(training: tuple[str | os.PathLike | None, str], labels: Path, legend: ClassScheme | None,
            method_classes: tuple[int, int] | None):  # noqa: ANN202
    """The RandomForest method, fitted later from the training labels (never the reference ``labels``)."""
    from geoseg.evaluation.forest import METHOD, RandomForestMethod

    path, column = training
    if path is None:
        raise InputError(f"the {METHOD} method learns from labels: pass {{training_labels}} (other labels than the "
                         "ones it is scored on)", parameters=("training_labels",))
    if Path(path).resolve() == labels.resolve():
        raise ParameterError("training_labels", path, "are the reference labels: a forest scored on its own "
                             "training pixels looks far better than it is; pass other labels")
    if method_classes is not None:
        raise ParameterError("method_classes", method_classes, f"is for the index methods; {METHOD} predicts its "
                             "training labels' classes")
    return RandomForestMethod(path, class_column=column, legend=legend)


def evaluate(model: ModelBundle | str | os.PathLike | None, scene: str | os.PathLike, labels: str | os.PathLike,
             output_dir: str | os.PathLike, *, class_column: str = "class", bands: list[int] | None = None,
             method_classes: tuple[int, int] | None = None, legend: ClassScheme | None = None,
             ignore_ids: Sequence[int] = (), nodata: float | None = None, repeat_bands: bool = False,
             overwrite: bool = False, reporter: Reporter | None = None,
             training_labels: str | os.PathLike | None = None, label_column: str = "class",
             **predictor_options: Any) -> EvaluationResult:
    """Predict ``scene`` with ``model`` and score it against ``labels`` (class raster or polygons).

    ``model`` is a bundle, a bundle path, None (the embedded default model) or a classic method name
    (``ndwi-otsu``, ``ndvi-otsu``, ``ndwi-grow``, ``random-forest``); for an index method, ``method_classes``
    says which label ids its two outputs stand for (above threshold, below threshold) and ``legend`` names
    the label ids (default: the label raster's own legend). ``random-forest`` learns from
    ``training_labels`` (raster or polygons with ``label_column``; never the labels it is scored on) in
    their classes, or ``legend``'s. Label ids outside the scheme are an error unless listed in
    ``ignore_ids``. ``nodata`` and ``repeat_bands`` are :meth:`~geoseg.inference.predictor.Predictor.predict`'s.
    The labels are checked before predicting, and a failed run leaves no file behind.
    """
    labels = Path(labels)
    with report_folder(output_dir, OUTPUTS, overwrite, (scene, labels)) as files:
        return _evaluate(model, scene, labels, files, class_column=class_column, bands=bands,
                         method_classes=method_classes, legend=legend, ignore_ids=ignore_ids, overwrite=overwrite,
                         reporter=reporter, fill=nodata, repeat_bands=repeat_bands,
                         training=(training_labels, label_column), predictor_options=predictor_options)


@contextlib.contextmanager
def report_folder(output_dir: str | os.PathLike, names: Sequence[str], overwrite: bool, inputs: Sequence[object]
                  ) -> Iterator[dict[str, Path]]:
    """The report's files in ``output_dir`` (created if missing), each checked writable before any work.

    A failed run leaves nothing behind (the corrected re-run must work): the files it created are removed,
    and the folder too if it created it and it is empty.
    """
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder; pass a folder for the report")
    files = {name: out / name for name in names}
    for path in files.values():
        if out.is_dir():
            check_writable(path, overwrite, inputs=inputs)
    created_folder = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    fresh = [path for path in files.values() if not path.exists()]
    try:
        yield files
    except BaseException:
        for path in fresh:
            path.unlink(missing_ok=True)
        if created_folder and not any(out.iterdir()):
            out.rmdir()
        raise


def _evaluate(model: Any, scene: str | os.PathLike, labels: Path, files: dict[str, Path], *, class_column: str,
              bands: list[int] | None, method_classes: tuple[int, int] | None, legend: ClassScheme | None,
              ignore_ids: Sequence[int], overwrite: bool, reporter: Reporter | None, fill: float | None,
              repeat_bands: bool, training: tuple[str | os.PathLike | None, str], predictor_options: dict[str, Any]
              ) -> EvaluationResult:
    """The evaluation proper; the labels are checked on the scene's grid before anything is predicted."""
    from geoseg.classic import METHODS
    from geoseg.evaluation.forest import METHOD as FOREST

    t0 = time.perf_counter()
    if training[0] is not None and model != FOREST:
        raise ParameterError("training_labels", training[0], f"trains the {FOREST} method; use it with that method")
    if repeat_bands and isinstance(model, str) and (model == FOREST or model in METHODS):
        raise ParameterError("repeat_bands", True, "is for models; a classic method reads each scene band once")
    if model == FOREST:
        runner = _forest(training, labels, legend, method_classes)
        scheme = runner.scheme
        source = _checked_labels(labels, scheme, class_column, ignore_ids, scene)
        summary = runner.predict(scene, files["prediction.tif"], bands=bands, overwrite=overwrite, reporter=reporter,
                                 nodata=fill)
        described = f"{FOREST} ({Path(training[0]).name})"       # type: ignore[arg-type]
        model_file = None
    elif isinstance(model, str) and model in METHODS:
        runner, scheme = _classic(model, labels, method_classes, legend)
        source = _checked_labels(labels, scheme, class_column, ignore_ids, scene)
        summary = runner.predict(scene, files["prediction.tif"], bands=bands, overwrite=overwrite, reporter=reporter,
                                 nodata=fill)
        described = model
        model_file = None
    else:
        from geoseg.inference.predictor import Predictor

        predictor = Predictor(model, **predictor_options)
        scheme = predictor.meta.scheme
        source = _checked_labels(labels, scheme, class_column, ignore_ids, scene)
        summary = predictor.predict(scene, files["prediction.tif"], bands=bands, overwrite=overwrite,
                                    reporter=reporter, nodata=fill, repeat_bands=repeat_bands)
        described = predictor.meta.name
        model_file = Path(predictor.bundle.path).name if predictor.bundle.path else None
    confusion, unpredicted = _accumulate(files["prediction.tif"], source, scheme)
    names = [c.name for c in scheme.classes]
    scores = confusion.scores(names)
    if scores.pixels == 0:
        raise InputFileError(f"{labels}: no labelled pixel of the scheme ({', '.join(names)}) falls on {scene}; check "
                         "the CRS, the extent and the class ids")
    # File names, not paths: the report is read on other machines and moved with its folder
    info = {"model": described, "model_file": model_file, "scene": Path(scene).name, "labels": labels.name,
            "classes": [c.model_dump() for c in scheme.classes],
            "labelled_pixels_without_prediction": unpredicted, "prediction_seconds": summary.elapsed_s,
            "seconds": round(time.perf_counter() - t0, 2)}
    write_text(files["metrics.json"], json.dumps({**info, **scores.to_json_dict()}, indent=1))
    write_text(files["report.md"], markdown_report(scores, info))
    from geoseg.evaluation.plots import confusion_png, per_class_png, preview_png

    confusion_png(scores, files["confusion.png"], overwrite=True)
    per_class_png(scores, files["per_class.png"], overwrite=True)
    with rasterio.open(files["prediction.tif"]) as dataset:
        shape = (dataset.height, dataset.width)
        reference = _reference_ids(source, scheme, dataset, shape)
    preview_png(scene, [(f"reference ({labels.name})", reference), (f"prediction ({described})",
                                                                      files["prediction.tif"])],
                scheme, files["preview.png"], title=f"{described} on {Path(scene).name}", overwrite=True)
    return EvaluationResult(scores, confusion, files, info)


def write_text(path: Path, text: str) -> None:
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(text)


def _accumulate(prediction: Path, source: LabelSource, scheme: ClassScheme) -> tuple[ConfusionMatrix, int]:
    """Confusion matrix of a class-map file against the labels, in row blocks."""
    matrix = ConfusionMatrix(len(scheme.classes))
    unpredicted = 0
    with gdal_env(), rasterio.open(prediction) as dataset:
        for window in row_windows(dataset.height, dataset.width, BLOCK_ROWS):
            predicted = ids_to_indices(dataset.read(1, window=window), scheme)
            transform = dataset.transform @ Affine.translation(0, window.row_off)
            reference = source.read(dataset.crs, transform, int(window.height), dataset.width)
            labelled = reference != IGNORE_INDEX
            unpredicted += int((labelled & (predicted == IGNORE_INDEX)).sum())
            matrix.update(reference, predicted, predicted != IGNORE_INDEX)
    return matrix, unpredicted


def _reference_ids(source: LabelSource, scheme: ClassScheme, dataset: rasterio.DatasetReader,
                   shape: tuple[int, int]) -> np.ndarray:
    """Reference class ids for the preview (decimated to at most the preview size)."""
    from geoseg.io.preview import preview_shape

    small = preview_shape(*shape)
    transform = dataset.transform @ dataset.transform.scale(shape[1] / small[1], shape[0] / small[0])
    indices = source.read(dataset.crs, transform, *small)
    lut = np.full(256, scheme.nodata_id, np.uint8)
    lut[:len(scheme.classes)] = [c.id for c in scheme.classes]
    return lut[indices]


def markdown_report(scores: Scores, info: dict[str, Any]) -> str:
    """A short Markdown report: what was compared, the headline numbers, a per-class table."""
    def fmt(value: float) -> str:
        return "–" if value is None or np.isnan(value) else f"{value:.3f}"

    model = info["model"] + (f" (`{info['model_file']}`)" if info.get("model_file") else "")
    lines = [f"# Evaluation of {model}", "",
             f"- scene: `{info['scene']}`", f"- labels: `{info['labels']}`",
             f"- labelled pixels compared: {scores.pixels}"
             f" (labelled pixels without a prediction, left out: {info['labelled_pixels_without_prediction']})", "",
             "| overall accuracy | mean IoU | frequency-weighted IoU | mean F1 |", "|---|---|---|---|",
             f"| {fmt(scores.overall_accuracy)} | {fmt(scores.mean_iou)} | {fmt(scores.frequency_weighted_iou)} | "
             f"{fmt(scores.mean_dice)} |", "",
             "| class | reference px | predicted px | IoU | F1 | precision | recall |", "|---|---|---|---|---|---|---|"]
    for c in scores.per_class:
        lines.append(f"| {c.name} | {c.support} | {c.predicted} | {fmt(c.iou)} | {fmt(c.dice)} | "
                     f"{fmt(c.precision)} | {fmt(c.recall)} |")
    lines += ["", undefined_note(scores), "", "![scene, reference and prediction](preview.png)", "",
              "![confusion matrix](confusion.png)", "", "![per-class scores](per_class.png)", ""]
    return "\n".join(lines)



def _checked_labels(labels: Path, scheme: ClassScheme, class_column: str, ignore_ids: Sequence[int],
                    scene: str | os.PathLike) -> LabelSource:
    """The labels, read once on the scene's grid before predicting: undeclared ids and labels that miss
    the scene fail in seconds, not after the prediction."""
    source = LabelSource(labels, scheme, class_column, ignore_ids)
    labelled = 0
    with open_raster(scene) as dataset:
        for window in row_windows(dataset.height, dataset.width, BLOCK_ROWS):
            transform = dataset.transform @ Affine.translation(0, window.row_off)
            indices = source.read(dataset.crs, transform, int(window.height), int(window.width))
            labelled += int(np.count_nonzero(indices != IGNORE_INDEX))
    if labelled == 0:
        names = ", ".join(c.name for c in scheme.classes)
        raise InputFileError(f"{labels}: no labelled pixel of the scheme ({names}) falls on {scene}; check the "
                             "CRS, the extent and the class ids")
    return source
def undefined_note(scores: Scores) -> str:
    """What "–" means in the table, naming the classes it applies to here.

    A score is undefined when its denominator is zero: precision for a class never predicted, recall for
    a class without reference pixels, IoU and F1 only for a class absent from both. A class with
    reference pixels that is never predicted (wetlands in the Zion sample) has IoU 0 and precision "–".
    """
    def which(pick: Any) -> str:
        names = [c.name for c in scores.per_class if pick(c)]
        return f" ({', '.join(names)})" if names else ""

    return ("– marks an undefined score, left out of the means: precision of a class that is never predicted"
            f"{which(lambda c: c.predicted == 0)}, recall of a class without reference pixels"
            f"{which(lambda c: c.support == 0)}, IoU and F1 of a class absent from both"
            f"{which(lambda c: c.predicted == 0 and c.support == 0)}.")

