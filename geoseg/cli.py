"""The ``geoseg`` command line: parse, call the library, report. No logic of its own lives here.

Exit codes: 0 success, 2 bad input or usage (one line on stderr naming the file and the fix), 1 a bug.
"""
from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer
from rich.console import Console

from geoseg.errors import InputError, ModelError, ParameterError, innermost_reason
from geoseg.interrupts import (exit_code, exit_interrupted, ignore_signals_while_exiting, interrupt_message,
                               raise_on_signals, received_interrupt)

app = typer.Typer(help="Segment satellite and aerial scenes into land-cover maps and polygons.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


class ProgressChoice(str, Enum):
    rich = "rich"
    json = "json"
    none = "none"


class BackendChoice(str, Enum):
    auto = "auto"
    torch = "torch"
    onnx = "onnx"


class BlendChoice(str, Enum):
    hann = "hann"
    gaussian = "gaussian"
    none = "none"


ProgressOpt = Annotated[ProgressChoice, typer.Option("--progress", help="rich bar on stderr, JSON lines on stdout, or none")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="print nothing but errors")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="replace existing outputs")]
TtaOpt = Annotated[bool, typer.Option("--tta", help="average each tile over its 8 flips and rotations (test-time augmentation; 8x the model time)")]
MinAreaOpt = Annotated[Optional[float], typer.Option("--min-area", help="minimum mapping unit in map units² (m²): smaller regions merge into a neighbour")]
LocalWorkersOpt = Annotated[Optional[int], typer.Option("--local-workers", help="run on a local Dask cluster of N worker processes (needs geoseg[distributed])")]
SchedulerOpt = Annotated[Optional[str], typer.Option("--scheduler", help="run on this Dask scheduler, e.g. tcp://host:8786 (needs geoseg[distributed])")]
SimplifyOpt = Annotated[Optional[float], typer.Option("--simplify", help="topology-preserving simplification tolerance in map units")]


def reports_errors(command: F) -> F:
    """Map InputError to exit 2 with one line, anything else to exit 1 with the traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        json_mode = kwargs.get("progress") == ProgressChoice.json or kwargs.get("as_json")
        json_task = command.__name__ if json_mode else None
        try:
            return command(*args, **kwargs)
        except typer.Exit:          # a command's own exit code (click's Exit is a RuntimeError)
            raise
        except InputError as err:
            _fail(err.render(flag_for), 2, json_task)
        except KeyboardInterrupt as err:
            _fail(interrupt_message(err), exit_code(err), json_task)
        except BrokenPipeError:  # `geoseg info --json | head`: the reader left, nothing to say to it
            _quiet_stdout()
            raise typer.Exit(141) from None
        except MemoryError:
            _fail("out of memory; lower --tile or --batch-size (or --block-size for vectorize), or free memory",
                  2, json_task)
        except Exception as err:
            interrupt = received_interrupt()
            if interrupt is not None:       # the signal landed in code that turned it into another error
                _fail(interrupt_message(interrupt), exit_code(interrupt), json_task)
            if _is_gdal_data_error(err):    # damaged or truncated raster data: GDAL's message names the file
                _fail(f"cannot read or write raster data ({innermost_reason(err)}); the file may be damaged or "
                      "truncated: check it with gdalinfo -checksum", 2, json_task)
            # a bug: say so, keep the traceback for the report
            traceback.print_exc()
            _fail(f"internal error ({type(err).__name__}: {err}); please report it with the traceback above", 1,
                  json_task)

    return wrapper  # type: ignore[return-value]


def _is_gdal_data_error(err: Exception) -> bool:
    """rasterio's I/O and GDAL's CPLE errors (module rasterio._err / rasterio.errors), without importing it."""
    return any(cls.__module__.startswith("rasterio") and ("IO" in cls.__name__ or cls.__name__.startswith("CPLE"))
               for cls in type(err).__mro__)


#: Library parameters whose flag is not ``--`` plus the parameter with dashes.
FLAGS = {"fmt": "--format", "min_area_unit": "--min-area-pixels", "check_values": "--no-value-check",
         "max_tiles": "--calibration-tiles", "training_labels": "--labels"}


def flag_for(parameter: str) -> str:
    """The command-line spelling of a library parameter named in an error message."""
    return FLAGS.get(parameter, "--" + parameter.replace("_", "-"))


def _fail(message: str, code: int, json_task: str | None) -> None:
    """One line on stderr; with JSON output also an error event for ``json_task`` (the command's name)."""
    err_console.print(f"geoseg: error: {message}", markup=False, highlight=False, soft_wrap=True)
    if json_task:
        from geoseg.events import ErrorEvent, write_event

        write_event(ErrorEvent(task=json_task, message=message, exit_code=code))
    raise typer.Exit(code)


def _reporter(progress: ProgressChoice, quiet: bool, task: str):  # noqa: ANN202
    from geoseg.progress import make_reporter

    return make_reporter(None if quiet and progress == ProgressChoice.rich else progress.value, task)


def _parse_numbers(text: Optional[str], parameter: str = "bands") -> Optional[list[int]]:
    """Comma-separated integers: band numbers, or label ids (``--method-classes``, ``--ignore-ids``)."""
    if not text:
        return None
    try:
        return [int(b) for b in text.split(",")]
    except ValueError:
        raise ParameterError(parameter, text, "expected comma-separated numbers such as 2,3,4,5") from None


@app.command()
@reports_errors
def predict(
    scene: Annotated[str, typer.Argument(help="input raster: a GeoTIFF or any GDAL raster, /vsizip/ and /vsicurl/ paths included")],
    output: Annotated[Path, typer.Option("--output", "-o", help="class map GeoTIFF (COG) to write; for an instance model or an object method, polygons (.gpkg, .shp, .geojson, .parquet, .fgb)")],
    model: Annotated[Optional[Path], typer.Option("--model", "-m", help="model bundle (.safetensors) or ONNX model (.onnx); default: the embedded model")] = None,
    backend: Annotated[BackendChoice, typer.Option(help="torch, onnx (onnxruntime) or auto: onnx for .onnx models, torch otherwise")] = BackendChoice.auto,
    tile: Annotated[Optional[int], typer.Option(help="tile size in px (default: the model's)")] = None,
    overlap: Annotated[Optional[int], typer.Option(help="overlap between tiles in px (default: the model's)")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="tiles per forward pass (default: 1 on CPU, 8 on GPU)")] = None,
    output_block: Annotated[Optional[int], typer.Option("--output-block", help="block side of the output GeoTIFFs in px (default 512); it does not bound memory")] = None,
    block_size: Annotated[Optional[int], typer.Option("--block-size", hidden=True, help="deprecated name of --output-block")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N")] = "auto",
    precision: Annotated[str, typer.Option(help="auto, fp32, fp16 (GPU) or bf16")] = "auto",
    blend: Annotated[BlendChoice, typer.Option(help="tile blending window")] = BlendChoice.hann,
    tta: TtaOpt = False,
    bands: Annotated[Optional[str], typer.Option(help="1-based scene bands to feed the model, in its order, e.g. 2,3,4,5")] = None,
    no_value_check: Annotated[bool, typer.Option("--no-value-check", help="run even when the scene's values lie far outside the model's training range")] = False,
    repeat_bands: Annotated[bool, typer.Option("--repeat-bands", help="let --bands name one scene band for several model bands (e.g. a panchromatic scene into an RGB model)")] = False,
    nodata: Annotated[Optional[float], typer.Option("--nodata", help="a fill value the scene does not declare (e.g. 0 for a black frame, nan): pixels with it in any band get the nodata class")] = None,
    probabilities: Annotated[Optional[Path], typer.Option("--probabilities", help="also write per-class probabilities (uint8 0-255)")] = None,
    qml: Annotated[bool, typer.Option("--qml/--no-qml", help="write a QGIS style (.qml) beside the class map")] = True,
    stac: Annotated[bool, typer.Option("--stac/--no-stac", help="write a STAC Item (.stac.json) beside the class map")] = True,
    polygons: Annotated[Optional[Path], typer.Option("--polygons", help="also vectorize the class map into this file (.gpkg, .shp, .geojson, .parquet, .fgb)")] = None,
    min_area: MinAreaOpt = None,
    simplify: SimplifyOpt = None,
    method: Annotated[Optional[str], typer.Option("--method", help="a classic method instead of a model: ndwi-otsu, ndvi-otsu or ndwi-grow (--bands then means green,red,nir), random-forest (trained from --labels), or bright-objects (objects as polygons)")] = None,
    threshold: Annotated[Optional[float], typer.Option("--threshold", help="with --method: this index threshold (bright-objects: contrast) instead of Otsu's")] = None,
    labels: Annotated[Optional[Path], typer.Option("--labels", help="--method random-forest: the labels it learns from, a class raster (any grid) or polygons (.gpkg, .geojson, .shp)")] = None,
    label_column: Annotated[str, typer.Option("--label-column", help="polygon attribute of --labels with class ids or names")] = "class",
    score_threshold: Annotated[Optional[float], typer.Option("--score-threshold", help="instance models: drop objects scoring below this (default: the model's)")] = None,
    instances_raster: Annotated[Optional[Path], typer.Option("--instances-raster", help="instance models: also write a uint32 GeoTIFF (COG) of object ids (0: none)")] = None,
    local_workers: LocalWorkersOpt = None,
    scheduler: SchedulerOpt = None,
    partitions: Annotated[Optional[int], typer.Option("--partitions", help="one scene on Dask: cut it into N bands of tile rows, one task each (default 16 with --scheduler or --local-workers and a .tif output)")] = None,
    resources: Annotated[Optional[str], typer.Option("--resources", help="Dask worker resources each task needs, e.g. GPU=1 (workers started with --resources GPU=1)")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="on Dask: skip scenes (or partitions) a previous run with the same settings finished")] = False,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = ProgressChoice.rich,
    quiet: QuietOpt = False,
) -> None:
    """Segment a scene into a georeferenced class map (and optionally polygons).

    SCENE may also name many scenes: a glob ('scenes/*.tif') or a .txt list of paths/URLs, one a line; then
    -o is a folder, each scene becomes <stem>.tif there with a run manifest (geoseg-run.json), and the scenes
    run as Dask tasks (--local-workers, --scheduler; --resume continues a run). One scene with a .tif
    output and --partitions (or --scheduler/--local-workers) is cut into bands of tile rows computed as
    Dask tasks and assembled into the same COG as in-process (--resume reuses finished bands).
    """
    from geoseg.io.outputs import check_writable
    from geoseg.inference.distributed import is_scene_list

    on_dask = local_workers is not None or scheduler is not None or resume or resources is not None
    if partitions is not None or (on_dask and not is_scene_list(scene) and _names_a_geotiff(output)):
        if is_scene_list(scene):
            raise ParameterError("partitions", partitions, "cuts one scene; many scenes run one task each without "
                                 "it")
        if method is not None:
            raise ParameterError("method", method, "a classic method runs in-process; drop {partitions}, "
                                 "{scheduler} and {local_workers}", parameters=("partitions", "scheduler", "local_workers"))
        if polygons is not None:
            check_writable(polygons, overwrite, inputs=[scene, output])
        options = dict(device=device, precision=precision, tile=tile, overlap=overlap, batch_size=batch_size,
                       blend=blend.value, backend=backend.value, bands=_parse_numbers(bands),
                       output_block=_output_block(output_block, block_size, _reporter(progress, True, "predict")),
                       check_values=not no_value_check, qml=qml, stac=stac, nodata=nodata,
                       repeat_bands=repeat_bands)
        _predict_partitioned(scene, output, model, options, partitions=partitions, probabilities=probabilities,
                             local_workers=local_workers, scheduler=scheduler, resources=_parse_resources(resources),
                             resume=resume, overwrite=overwrite, progress=progress, quiet=quiet)
        if polygons is not None:
            _vectorize(output, polygons, min_area=min_area, simplify=simplify, overwrite=overwrite,
                       progress=progress, quiet=quiet)
        return
    if is_scene_list(scene) or on_dask:
        if method is not None or probabilities is not None or polygons is not None:
            raise InputError(f"{scene}: a run of many scenes writes class maps only; run {{method}}, {{probabilities}} "
                             "or {polygons} scene by scene", parameters=("method", "probabilities", "polygons"))
        options = dict(device=device, precision=precision, tile=tile, overlap=overlap, batch_size=batch_size,
                       blend=blend.value, backend=backend.value, tta=tta, bands=_parse_numbers(bands),
                       output_block=_output_block(output_block, block_size, _reporter(progress, True, "predict")),
                       check_values=not no_value_check, qml=qml, stac=stac, nodata=nodata,
                       repeat_bands=repeat_bands)
        _predict_many(scene, output, model, options, local_workers=local_workers, scheduler=scheduler,
                      resources=_parse_resources(resources), resume=resume, overwrite=overwrite,
                      progress=progress, quiet=quiet)
        return

    from geoseg.classic import finds_objects

    if finds_objects(model, method):
        if method is not None and model is not None:
            raise ParameterError("method", method, "a classic method takes no {model}", parameters=("model",))
        if probabilities is not None or polygons is not None or min_area is not None or simplify is not None:
            raise ParameterError("model" if method is None else "method", method or model,
                                 "finds objects, written as polygons to {output}; it takes no {probabilities}, "
                                 "{polygons}, {min_area} or {simplify}",
                                 parameters=("output", "probabilities", "polygons", "min_area", "simplify"))
        _detect(scene, output, model, method, tile=tile, overlap=overlap, batch_size=batch_size, device=device,
                score_threshold=score_threshold, threshold=threshold, instances_raster=instances_raster,
                bands=_parse_numbers(bands), nodata=nodata, check_values=not no_value_check, overwrite=overwrite,
                repeat_bands=repeat_bands, progress=progress, quiet=quiet)
        return
    if score_threshold is not None or instances_raster is not None:
        raise ParameterError("score_threshold" if score_threshold is not None else "instances_raster",
                             score_threshold if score_threshold is not None else instances_raster,
                             "applies to instance models (objects); this model labels pixels")
    if polygons is not None:
        check_writable(polygons, overwrite, inputs=[scene, output])  # before the long prediction
    reporter = _reporter(progress, quiet, "predict")
    output_block = _output_block(output_block, block_size, reporter)
    from geoseg.evaluation.forest import METHOD as FOREST

    if labels is not None and method != FOREST:
        raise ParameterError("training_labels", labels, f"only {{method}} {FOREST} learns from labels",
                             parameters=("method",))
    if method == FOREST and labels is None:
        raise ParameterError("method", method, "learns from labels: pass {training_labels}",
                             parameters=("training_labels",))
    if method == FOREST:
        from geoseg.evaluation.forest import RandomForestMethod

        if model is not None or probabilities is not None or threshold is not None:
            raise ParameterError("method", method, f"{FOREST} takes no {{model}} or {{threshold}} and writes no "
                                 "{probabilities}", parameters=("model", "threshold", "probabilities"))
        summary = RandomForestMethod(labels, class_column=label_column).predict(  # type: ignore[arg-type]
            scene, output, bands=_parse_numbers(bands), output_block=output_block, overwrite=overwrite,
            reporter=reporter, qml=qml, stac=stac)
    elif method is not None:
        from geoseg.classic import ClassicMethod

        if model is not None or probabilities is not None:
            raise ParameterError("method", method, "a classic method takes no {model} and writes no {probabilities}",
                                 parameters=("model", "probabilities"))
        if tta:
            raise ParameterError("tta", tta, "applies to models; a classic method has nothing to augment")
        runner = ClassicMethod(method)
        summary = runner.predict(scene, output, bands=_parse_numbers(bands), output_block=output_block,
                                 overwrite=overwrite, reporter=reporter, qml=qml, stac=stac, threshold=threshold,
                                 nodata=nodata)
    else:
        from geoseg.inference.predictor import Predictor

        if threshold is not None:
            raise ParameterError("threshold", threshold, "sets a classic method's index threshold; use it with "
                                 "{method}", parameters=("method",))

        predictor = Predictor(model, device=device, precision=precision, tile=tile, overlap=overlap,
                              batch_size=batch_size, blend=blend.value, backend=backend.value, tta=tta)
        summary = predictor.predict(scene, output, probabilities=probabilities, bands=_parse_numbers(bands),
                                    output_block=output_block, overwrite=overwrite, reporter=reporter,
                                    check_values=not no_value_check, qml=qml, stac=stac, nodata=nodata,
                                    repeat_bands=repeat_bands)
    if progress == ProgressChoice.rich and not quiet:
        err_console.print(f"wrote {summary.output} ({summary.width}x{summary.height}, {summary.tiles_run} tiles run, "
                          f"{summary.tiles_skipped} skipped as nodata) in {summary.elapsed_s:.1f} s, "
                          f"{summary.megapixels_per_s:.2f} MP/s on {summary.device} {summary.precision}", soft_wrap=True)
    if polygons is not None:
        _vectorize(output, polygons, min_area=min_area, simplify=simplify, overwrite=overwrite,
                   progress=progress, quiet=quiet)


def _detect(scene: str, output: Path, model: Optional[Path], method: Optional[str], *, tile: Optional[int],
            overlap: Optional[int], batch_size: Optional[int], device: str, score_threshold: Optional[float],
            threshold: Optional[float], instances_raster: Optional[Path], bands: Optional[list[int]],
            nodata: Optional[float], check_values: bool, overwrite: bool, repeat_bands: bool,
            progress: ProgressChoice, quiet: bool) -> None:
    """Objects of ``scene`` (an instance model or an object method) as polygons in ``output``."""
    from geoseg.evaluation.instances import object_detector
    from geoseg.vector.objects import ObjectPredictor

    detector = object_detector(method or model, scene, bands=bands, threshold=threshold, device=device,  # type: ignore[arg-type]
                               score_threshold=score_threshold, fill=nodata)
    predictor = ObjectPredictor(detector, tile=tile, overlap=overlap, batch_size=batch_size,
                                score_threshold=score_threshold)
    summary = predictor.predict(scene, output, instances_raster=instances_raster, bands=bands,
                                nodata=nodata, check_values=check_values, overwrite=overwrite,
                                repeat_bands=repeat_bands, reporter=_reporter(progress, quiet, "detect"))
    if progress == ProgressChoice.rich and not quiet:
        counts = ", ".join(f"{name}: {n}" for name, n in summary.objects_per_class.items()) or "none"
        err_console.print(f"wrote {summary.n_objects} objects ({counts}) to {summary.output}"
                          + (f" and their ids to {summary.instances_raster}" if summary.instances_raster else "")
                          + f" in {summary.elapsed_s:.1f} s ({summary.tiles_run} tiles run, {summary.tiles_skipped} "
                          "skipped as nodata)", soft_wrap=True)


def _names_a_geotiff(output: Path) -> bool:
    """An output that is one class map (one scene on Dask), not a folder of many."""
    return output.suffix.lower() in (".tif", ".tiff") and not output.is_dir()


def _parse_resources(text: Optional[str]) -> Optional[dict[str, float]]:
    """``GPU=1,MEMORY=8e9`` -> {"GPU": 1.0, "MEMORY": 8e9}, as ``dask worker --resources`` spells them."""
    if text is None:
        return None
    resources: dict[str, float] = {}
    for item in text.split(","):
        name, _, amount = item.partition("=")
        try:
            resources[name.strip()] = float(amount)
        except ValueError:
            raise ParameterError("resources", text, "write NAME=AMOUNT pairs separated by commas, e.g. GPU=1") \
                from None
        if not name.strip():
            raise ParameterError("resources", text, "write NAME=AMOUNT pairs separated by commas, e.g. GPU=1")
    return resources


def _predict_partitioned(scene: str, output: Path, model: Optional[Path], options: dict[str, Any], *,
                         partitions: Optional[int], probabilities: Optional[Path], local_workers: Optional[int],
                         scheduler: Optional[str], resources: Optional[dict[str, float]], resume: bool,
                         overwrite: bool, progress: ProgressChoice, quiet: bool) -> None:
    """One scene cut into partitions on Dask; progress counts partitions, then the summary as in-process."""
    from geoseg.inference.partitioned import DEFAULT_PARTITIONS, predict_partitioned

    reporter = _reporter(progress, quiet, "predict")
    try:
        summary = predict_partitioned(scene, output, model, partitions=DEFAULT_PARTITIONS if partitions is None else partitions,
                                      probabilities=probabilities, scheduler=scheduler, local_workers=local_workers,
                                      resources=resources, resume=resume, overwrite=overwrite, reporter=reporter,
                                      **options)
    except BaseException:
        if progress == ProgressChoice.rich and not quiet:
            reporter.done()                              # stops the bar
        raise
    reporter.done(**summary.model_dump())
    if progress == ProgressChoice.rich and not quiet:
        err_console.print(f"wrote {summary.output} ({summary.width}x{summary.height}, {summary.tiles_run} tiles run, "
                          f"{summary.tiles_skipped} skipped as nodata) in {summary.elapsed_s:.1f} s, "
                          f"{summary.megapixels_per_s:.2f} MP/s on Dask ({summary.device} {summary.precision})",
                          soft_wrap=True)


def _predict_many(scene: str, output: Path, model: Optional[Path], options: dict[str, Any], *,
                  local_workers: Optional[int], scheduler: Optional[str], resources: Optional[dict[str, float]],
                  resume: bool, overwrite: bool, progress: ProgressChoice, quiet: bool) -> None:
    """Many scenes into the folder ``output``; exit 2 when some failed on bad input, 1 when one hit a bug.

    Progress counts scenes (start and progress events with ``--progress json``; the run's summary is the
    manifest, so there is no done event)."""
    from geoseg.inference.distributed import predict_many, scene_list

    if output.exists() and not output.is_dir():
        raise ParameterError("output", output, "many scenes need a folder for {output}; this is a file")
    if not output.exists() and output.suffix.lower() in (".tif", ".tiff"):
        raise ParameterError("output", output, "many scenes go into a folder, and this looks like a file name; "
                             "pass a folder for {output} (it is created)")
    output.mkdir(exist_ok=True)
    reporter = _reporter(progress, quiet, "predict")
    try:
        manifest = predict_many(scene_list(scene), output, model, scheduler=scheduler, local_workers=local_workers,
                                resources=resources, resume=resume, overwrite=overwrite, reporter=reporter, **options)
    finally:
        if progress == ProgressChoice.rich and not quiet:
            reporter.done()                              # stops the bar; a JSON done event needs a scene summary
    quiet = quiet or progress != ProgressChoice.rich
    for record in manifest.failed:
        err_console.print(f"geoseg: failed: {record.scene}: {record.error}", markup=False, highlight=False,
                          soft_wrap=True)
    if manifest.failed or not quiet:
        err_console.print(f"{len(manifest.done)} of {len(manifest.scenes)} scenes done; manifest: {manifest.path}",
                          markup=False, highlight=False, soft_wrap=True)
    if manifest.failed:
        raise typer.Exit(2 if all(r.input_error for r in manifest.failed) else 1)


def _output_block(output_block: Optional[int], block_size: Optional[int], reporter: Any) -> int:
    """--output-block, or the deprecated --block-size that meant the same (with a warning), or 512."""
    from geoseg.io.cog import DEFAULT_OUTPUT_BLOCK

    if block_size is None:
        return output_block or DEFAULT_OUTPUT_BLOCK
    if output_block is not None:
        raise ParameterError("block_size", block_size, "is the old name of {output_block}; give only {output_block}",
                             parameters=("output_block",))
    reporter.warn("--block-size is deprecated for predict: it is the output GeoTIFF's block size; "
                  "use --output-block")
    return block_size


@app.command()
@reports_errors
def vectorize(
    class_map: Annotated[str, typer.Argument(help="single-band class raster (geoseg output or any label raster; GDAL paths too)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="polygon file to write")],
    fmt: Annotated[Optional[str], typer.Option("--format", help="gpkg, shp, geojson, parquet or fgb (default: from the suffix)")] = None,
    min_area: MinAreaOpt = None,
    min_area_pixels: Annotated[bool, typer.Option("--min-area-pixels", help="read --min-area as a pixel count")] = False,
    simplify: SimplifyOpt = None,
    dissolve: Annotated[bool, typer.Option("--dissolve", help="one multipolygon per class")] = False,
    classes: Annotated[Optional[str], typer.Option("--classes", help="only these classes, names or ids, e.g. water,forest")] = None,
    layer: Annotated[Optional[str], typer.Option("--layer", help="layer name (GeoPackage)")] = None,
    block_size: Annotated[int, typer.Option("--block-size", help="processing block side in px: sets memory use and parallel work, not an output setting")] = 2048,
    nodata: Annotated[Optional[int], typer.Option("--nodata", help="a class value not to vectorize, when the map does not declare its nodata")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="processes polygonizing blocks (default: one per core)")] = None,
    local_workers: LocalWorkersOpt = None,
    scheduler: SchedulerOpt = None,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = ProgressChoice.rich,
    quiet: QuietOpt = False,
) -> None:
    """Turn a class map into polygons with class_id, class_name and area_m2.

    With --scheduler or --local-workers the blocks are polygonized as Dask tasks; this process merges
    the seams and writes, so the polygons are those of a local run.
    """
    _vectorize(class_map, output, fmt=fmt, min_area=min_area, min_area_unit="pixels" if min_area_pixels else "map",
               simplify=simplify, dissolve=dissolve, classes=classes.split(",") if classes else None, layer=layer,
               block_size=block_size, workers=workers, nodata=nodata, overwrite=overwrite, progress=progress,
               quiet=quiet, scheduler=scheduler, local_workers=local_workers)


def _vectorize(class_map: Path, output: Path, *, progress: ProgressChoice, quiet: bool, **options: Any) -> None:
    from geoseg.vector.vectorize import vectorize as run_vectorize

    summary = run_vectorize(class_map, output, reporter=_reporter(progress, quiet, "vectorize"), **options)
    if progress == ProgressChoice.rich and not quiet:
        areas = ", ".join(f"{name} {area / 1e6:.2f} km²" for name, area in summary.area_m2_per_class.items())
        err_console.print(f"wrote {summary.n_polygons} polygons to {summary.output} ({summary.format}): {areas}",
                          soft_wrap=True)


@app.command()
@reports_errors
def train(
    config: Annotated[Path, typer.Argument(help="training config YAML (see configs/zion_landcover.yaml)")],
    resume: Annotated[bool, typer.Option("--resume", help="continue from the run's last checkpoint")] = False,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="override train.epochs")] = None,
    device: Annotated[Optional[str], typer.Option(help="override train.device: auto, cpu, cuda or cuda:N")] = None,
    output_dir: Annotated[Optional[Path], typer.Option("--output-dir", help="override output_dir")] = None,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = ProgressChoice.rich,
    quiet: QuietOpt = False,
) -> None:
    """Train a model from a YAML config; writes a bundle, logs and a validation report."""
    from geoseg.training import load_config
    from geoseg.training import train as run_train

    settings = load_config(config, require_data=True).with_overrides(epochs=epochs, device=device, output_dir=output_dir)

    def on_epoch(row: dict[str, Any]) -> None:
        if progress == ProgressChoice.json:
            from geoseg.events import EpochEvent, write_event

            write_event(EpochEvent(**row))
        elif progress == ProgressChoice.rich and not quiet:
            scores = (f"val F1@0.5 {row['val_f1']:.4f}, mask IoU {row['val_mask_iou']:.4f}" if "val_f1" in row
                      else f"val mIoU {row['val_mean_iou']:.4f}, OA {row['val_overall_accuracy']:.4f}")
            err_console.print(f"epoch {row['epoch']}: loss {row['train_loss']:.4f}, {scores}"
                              f"{' (best)' if row['best'] else ''}", soft_wrap=True)

    result = run_train(settings, resume=resume, overwrite=overwrite, reporter=_reporter(progress, quiet, "train"),
                       on_epoch=on_epoch)
    if progress == ProgressChoice.rich and not quiet:
        done = result.summary()
        shown = {k: "n/a" if v is None else f"{v:.4f}" for k, v in done.model_dump().items() if isinstance(v, float)
                 or v is None}
        scores = (f"F1@0.5 {shown['f1']} (precision {shown['precision']}, recall {shown['recall']})"
                  if settings.task == "instance" else f"mIoU {shown['mean_iou']}, OA {shown['overall_accuracy']}")
        where = f"; report in {result.report_dir}" if settings.task == "semantic" else ""
        err_console.print(f"wrote {result.bundle} (best epoch {result.best_epoch} of {result.epochs_run}, "
                          f"{result.elapsed_s:.0f} s): {result.scored_on} {scores}{where}", soft_wrap=True)
        if result.forest_scores is not None:
            forest = result.forest_scores
            err_console.print(f"a RandomForest trained on the same pixels: mIoU {forest.mean_iou:.4f}, OA "
                              f"{forest.overall_accuracy:.4f} (comparison.md in the report)", soft_wrap=True)


@app.command()
@reports_errors
def evaluate(
    model: Annotated[str, typer.Argument(help="model bundle (.safetensors; an instance model is scored on objects), 'default' for the embedded model, or a classic method: ndwi-otsu, ndvi-otsu, ndwi-grow, random-forest (trained from --labels), bright-objects")],
    scene: Annotated[str, typer.Argument(help="scene raster (any GDAL raster)")],
    labels: Annotated[Path, typer.Argument(help="reference labels: a class raster (any grid) or polygons (.gpkg, .geojson, .shp); for objects, one footprint polygon per object")],
    output_dir: Annotated[Path, typer.Option("--output", "-o", help="report folder (created)")],
    class_column: Annotated[str, typer.Option("--class-column", help="polygon attribute with class ids or names")] = "class",
    nodata: Annotated[Optional[float], typer.Option("--nodata", help="a fill value the scene does not declare (pixels with it in any band are not scored)")] = None,
    ignore_ids: Annotated[Optional[str], typer.Option("--ignore-ids", help="label ids to leave unlabelled, e.g. 0,9 (any other id outside the classes is an error)")] = None,
    bands: Annotated[Optional[str], typer.Option(help="1-based scene bands (model order; green,red,nir for a method)")] = None,
    repeat_bands: Annotated[bool, typer.Option("--repeat-bands", help="let --bands name one scene band for several model bands (e.g. a panchromatic scene into an RGB model)")] = False,
    method_classes: Annotated[Optional[str], typer.Option("--method-classes", help="method only: label ids for its above,below classes, e.g. 1,4")] = None,
    legend: Annotated[Optional[Path], typer.Option("--legend", help="method only: a bundle or config naming the label classes")] = None,
    training_labels: Annotated[Optional[Path], typer.Option("--labels", help="random-forest only: the labels it learns from (not the reference labels it is scored on)")] = None,
    label_column: Annotated[str, typer.Option("--label-column", help="polygon attribute of --labels with class ids or names")] = "class",
    tta: TtaOpt = False,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = ProgressChoice.rich,
    quiet: QuietOpt = False,
) -> None:
    """Score a model or a classic method against reference labels: metrics.json, report.md, PNG plots."""
    from geoseg.classic import METHODS, finds_objects
    from geoseg.evaluation.evaluate import evaluate as run_evaluate
    from geoseg.evaluation.forest import METHOD as FOREST
    from geoseg.training.config import load_legend

    if finds_objects(None if model in METHODS or model == "default" else model):
        unused = {"ignore_ids": ignore_ids, "method_classes": method_classes, "legend": legend}
        for name, value in unused.items():
            if value is not None:
                raise ParameterError(name, value, "scores pixel labels; objects are scored against footprints, "
                                     "one polygon each, whatever their class")
        _evaluate_objects(model, scene, labels, output_dir, bands=_parse_numbers(bands), nodata=nodata,
                          repeat_bands=repeat_bands, overwrite=overwrite, progress=progress, quiet=quiet)
        return

    pair = _parse_numbers(method_classes, "method_classes")
    if pair is not None and (len(pair) != 2 or model not in METHODS):
        raise ParameterError("method_classes", method_classes, "give two label ids (above,below) with a classic method")
    target: Any = None if model == "default" else (model if model in (*METHODS, FOREST) else Path(model))
    if tta and model in (*METHODS, FOREST):
        raise ParameterError("tta", tta, "applies to models; a classic method has nothing to augment")
    result = run_evaluate(target, scene, labels, output_dir, class_column=class_column, bands=_parse_numbers(bands),
                          ignore_ids=_parse_numbers(ignore_ids, "ignore_ids") or [], nodata=nodata,
                          method_classes=tuple(pair) if pair else None,
                          legend=load_legend(legend) if legend else None, overwrite=overwrite,
                          reporter=_reporter(progress, quiet, "evaluate"), repeat_bands=repeat_bands,
                          training_labels=training_labels, label_column=label_column, **({"tta": True} if tta else {}))
    scores = result.scores
    if progress == ProgressChoice.json:
        from geoseg.events import MetricsEvent, write_event

        write_event(MetricsEvent(output=str(output_dir), **scores.summary()))
    elif not quiet:
        err_console.print(f"OA {scores.overall_accuracy:.4f}, mIoU {scores.mean_iou:.4f}, fwIoU "
                          f"{scores.frequency_weighted_iou:.4f} over {scores.pixels} labelled pixels; report in "
                          f"{output_dir}", soft_wrap=True)


def _evaluate_objects(model: str, scene: str, footprints: Path, output_dir: Path, *, bands: Optional[list[int]],
                      nodata: Optional[float], repeat_bands: bool, overwrite: bool, progress: ProgressChoice,
                      quiet: bool) -> None:
    """Score an instance model or an object method against footprints: F1@0.5, AP50, AP and a report."""
    from geoseg.evaluation.instances import evaluate_objects

    result = evaluate_objects(model, scene, footprints, output_dir, bands=bands, nodata=nodata, overwrite=overwrite,
                              repeat_bands=repeat_bands, reporter=_reporter(progress, quiet, "detect"))
    scores = result.scores
    if progress == ProgressChoice.json:
        from geoseg.events import MetricsEvent, write_event

        write_event(MetricsEvent(output=str(output_dir), **scores.summary()))
    elif not quiet:
        err_console.print(f"F1@0.5 {scores.f1:.4f} (precision {scores.precision:.4f}, recall {scores.recall:.4f}), "
                          f"AP50 {scores.ap50:.4f}, AP {scores.ap:.4f} over {scores.references} reference objects; "
                          f"report in {output_dir}", soft_wrap=True)


@app.command()
@reports_errors
def info(
    path: Annotated[Optional[str], typer.Argument(help="a model (.safetensors bundle or .onnx) or a raster; none: this installation")] = None,
    model: Annotated[Optional[Path], typer.Option("--model", "-m", help="with a raster: check whether this model fits it (default: the embedded model)")] = None,
    nodata: Annotated[Optional[float], typer.Option("--nodata", help="with a raster: a fill value it does not declare (e.g. 0, nan), left out of the band values and the fit check")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Describe a model bundle, a scene (its band values, and whether a model fits it), or this installation."""
    from geoseg import info as describe

    if path is None:
        data = describe.installation()
    elif Path(path).suffix.lower() in (".safetensors", ".onnx"):
        data = describe.bundle(Path(path))
    else:
        data = describe.scene(path, model, spell=flag_for, fill=nodata)
    if as_json:
        print(json.dumps(data, indent=2, default=str))
    else:
        describe.print_human(data, Console())


@app.command()
@reports_errors
def export(
    model: Annotated[Path, typer.Argument(help="model bundle (.safetensors)")],
    onnx: Annotated[Path, typer.Option("--onnx", help="ONNX file to write; the bundle metadata goes into its metadata_props")],
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Export a model bundle to ONNX (dynamic batch, height and width) for onnxruntime and other runtimes."""
    from geoseg.model.onnx import OnnxBundle, export_onnx
    from geoseg.model.loading import load_model

    bundle = load_model(model, task=None)           # export_onnx says which tasks it exports
    if isinstance(bundle, OnnxBundle):
        raise ModelError(f"{model}: already an ONNX model; pass the .safetensors bundle to export")
    path = export_onnx(bundle, onnx, overwrite=overwrite)
    if not quiet:
        err_console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)", soft_wrap=True)


@app.command()
@reports_errors
def quantize(
    model: Annotated[Path, typer.Argument(help="model bundle (.safetensors)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="int8 ONNX model to write (.onnx)")],
    calibration: Annotated[Optional[list[Path]], typer.Option("--calibration", help="scene(s) whose tiles calibrate static int8 (repeatable); none: dynamic int8")] = None,
    calibration_tiles: Annotated[int, typer.Option("--calibration-tiles", help="most tiles to calibrate on")] = 32,
    bands: Annotated[Optional[str], typer.Option(help="1-based bands of the calibration scenes, in the model's order")] = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Quantise a model to int8 (onnxruntime): static with --calibration scenes, dynamic without."""
    from geoseg.compress import quantize as run_quantize

    summary = run_quantize(model, output, calibration or (), bands=_parse_numbers(bands), max_tiles=calibration_tiles,
                           overwrite=overwrite)
    if not quiet:
        tiles = f", calibrated on {summary.calibration_tiles} tiles" if summary.calibration_tiles else ""
        err_console.print(f"wrote {summary.output} ({summary.method}{tiles}, {_sizes(summary)}) "
                          f"in {summary.elapsed_s:.1f} s", soft_wrap=True)


@app.command()
@reports_errors
def prune(
    model: Annotated[Path, typer.Argument(help="model bundle (.safetensors)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="pruned bundle to write (.safetensors)")],
    amount: Annotated[float, typer.Option("--amount", help="fraction of channels to remove from every prunable layer")] = 0.3,
    fine_tune: Annotated[Optional[Path], typer.Option("--fine-tune", help="training config (YAML) to fine-tune the pruned model with")] = None,
    half: Annotated[Optional[bool], typer.Option("--half/--fp32", help="store the weights as fp16 or fp32 (default: as the source model stores them)")] = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Remove the weakest channels (L1 norm) of every prunable layer, optionally fine-tune, write a bundle."""
    from geoseg.compress import prune as run_prune

    summary = run_prune(model, output, amount, fine_tune=fine_tune, half=half, overwrite=overwrite)
    if not quiet:
        err_console.print(f"wrote {summary.output} ({summary.method}, {summary.parameters:,} parameters instead "
                          f"of {summary.source_parameters:,}, {_sizes(summary)}) in {summary.elapsed_s:.1f} s",
                          soft_wrap=True)


def _sizes(summary: Any) -> str:
    source = f" from {summary.source_size_bytes / 1e6:.1f} MB" if summary.source_size_bytes else ""
    return f"{summary.size_bytes / 1e6:.1f} MB{source}"


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail on the closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def main() -> None:
    raise_on_signals()
    try:
        app(prog_name="geoseg")
    except SystemExit as done:
        interrupt = _interrupt_behind(done)
        if interrupt is None:
            raise
        exit_interrupted(interrupt)
    finally:
        ignore_signals_while_exiting()


def _interrupt_behind(done: SystemExit) -> KeyboardInterrupt | None:
    """The interrupt that typer turned into a silent exit 130: one that came before or after the command
    itself (while parsing, importing), where :func:`reports_errors` could not see it."""
    exit_ = done.__context__
    cause = exit_.__cause__ if isinstance(exit_, typer.Exit) else None
    return cause if isinstance(cause, KeyboardInterrupt) else None



if __name__ == "__main__":
    main()
