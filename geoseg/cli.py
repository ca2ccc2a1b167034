"""The ``geoseg`` command line: parse, call the library, report. No logic of its own lives here.

Exit codes: 0 success, 2 bad input or usage (one line on stderr naming the file and the fix), 1 a bug.
"""
from __future__ import annotations

import functools
import json
import sys
import traceback
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer
from rich.console import Console

from geoseg.errors import InputError

app = typer.Typer(help="Segment satellite and aerial scenes into land-cover maps and polygons.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


class ProgressChoice(str, Enum):
    rich = "rich"
    json = "json"
    none = "none"


class BlendChoice(str, Enum):
    hann = "hann"
    gaussian = "gaussian"
    none = "none"


ProgressOpt = Annotated[ProgressChoice, typer.Option("--progress", help="rich bar on stderr, JSON lines on stdout, or none")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="print nothing but errors")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="replace existing outputs")]
MinAreaOpt = Annotated[Optional[float], typer.Option("--min-area", help="minimum mapping unit in map units² (m²): smaller regions merge into a neighbour")]
SimplifyOpt = Annotated[Optional[float], typer.Option("--simplify", help="topology-preserving simplification tolerance in map units")]


def reports_errors(command: F) -> F:
    """Map InputError to exit 2 with one line, anything else to exit 1 with the traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        json_mode = kwargs.get("progress") == ProgressChoice.json or kwargs.get("as_json")
        try:
            return command(*args, **kwargs)
        except InputError as err:
            _fail(str(err), 2, json_mode)
        except KeyboardInterrupt:
            _fail("interrupted; no output was written", 130, json_mode)
        except Exception as err:  # a bug: say so, keep the traceback for the report
            traceback.print_exc()
            _fail(f"internal error ({type(err).__name__}: {err}); please report it with the traceback above", 1,
                  json_mode)

    return wrapper  # type: ignore[return-value]


def _fail(message: str, code: int, json_mode: Any) -> None:
    err_console.print(f"geoseg: error: {message}", markup=False, highlight=False, soft_wrap=True)
    if json_mode:
        print(json.dumps({"event": "error", "message": message, "exit_code": code}), flush=True)
    raise typer.Exit(code)


def _reporter(progress: ProgressChoice, quiet: bool, task: str):  # noqa: ANN202
    from geoseg.progress import make_reporter

    return make_reporter(None if quiet and progress == ProgressChoice.rich else progress.value, task)


def _parse_bands(bands: Optional[str]) -> Optional[list[int]]:
    if not bands:
        return None
    try:
        return [int(b) for b in bands.split(",")]
    except ValueError:
        raise InputError(f"--bands {bands}: expected comma-separated band numbers such as 2,3,4,5") from None


@app.command()
@reports_errors
def predict(
    scene: Annotated[Path, typer.Argument(help="input raster (GeoTIFF or any GDAL raster)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="class map GeoTIFF (COG) to write")],
    model: Annotated[Optional[Path], typer.Option("--model", "-m", help="model bundle (.safetensors); default: the embedded model")] = None,
    tile: Annotated[Optional[int], typer.Option(help="tile size in px (default: the model's)")] = None,
    overlap: Annotated[Optional[int], typer.Option(help="overlap between tiles in px (default: the model's)")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="tiles per forward pass (default: 1 on CPU, 8 on GPU)")] = None,
    block_size: Annotated[int, typer.Option("--block-size", help="output GeoTIFF block size in px")] = 512,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N")] = "auto",
    precision: Annotated[str, typer.Option(help="auto, fp32, fp16 (GPU) or bf16")] = "auto",
    blend: Annotated[BlendChoice, typer.Option(help="tile blending window")] = BlendChoice.hann,
    bands: Annotated[Optional[str], typer.Option(help="1-based scene bands to feed the model, in its order, e.g. 2,3,4,5")] = None,
    probabilities: Annotated[Optional[Path], typer.Option("--probabilities", help="also write per-class probabilities (uint8 0-255)")] = None,
    polygons: Annotated[Optional[Path], typer.Option("--polygons", help="also vectorize the class map into this file (.gpkg, .shp, .geojson, .parquet, .fgb)")] = None,
    min_area: MinAreaOpt = None,
    simplify: SimplifyOpt = None,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = ProgressChoice.rich,
    quiet: QuietOpt = False,
) -> None:
    """Segment a scene into a georeferenced class map (and optionally polygons)."""
    from geoseg.outputs import check_writable
    from geoseg.predict import Predictor

    if polygons is not None:
        check_writable(polygons, overwrite)  # refuse before the long prediction, not after
    predictor = Predictor(model, device=device, precision=precision, tile=tile, overlap=overlap,
                          batch_size=batch_size, blend=blend.value)
    summary = predictor.predict(scene, output, probabilities=probabilities, bands=_parse_bands(bands),
                                block_size=block_size, overwrite=overwrite,
                                reporter=_reporter(progress, quiet, "predict"))
    if progress == ProgressChoice.rich and not quiet:
        err_console.print(f"wrote {summary.output} ({summary.width}x{summary.height}, {summary.tiles_run} tiles run, "
                          f"{summary.tiles_skipped} skipped as nodata) in {summary.elapsed_s:.1f} s, "
                          f"{summary.megapixels_per_s:.2f} MP/s on {summary.device} {summary.precision}", soft_wrap=True)
    if polygons is not None:
        _vectorize(output, polygons, min_area=min_area, simplify=simplify, overwrite=overwrite,
                   progress=progress, quiet=quiet)


@app.command()
@reports_errors
def vectorize(
    class_map: Annotated[Path, typer.Argument(help="single-band class raster (geoseg output or any label raster)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="polygon file to write")],
    fmt: Annotated[Optional[str], typer.Option("--format", help="gpkg, shp, geojson, parquet or fgb (default: from the suffix)")] = None,
    min_area: MinAreaOpt = None,
    min_area_pixels: Annotated[bool, typer.Option("--min-area-pixels", help="read --min-area as a pixel count")] = False,
    simplify: SimplifyOpt = None,
    dissolve: Annotated[bool, typer.Option("--dissolve", help="one multipolygon per class")] = False,
    classes: Annotated[Optional[str], typer.Option("--classes", help="only these classes, names or ids, e.g. water,forest")] = None,
    layer: Annotated[Optional[str], typer.Option("--layer", help="layer name (GeoPackage)")] = None,
    block_size: Annotated[int, typer.Option("--block-size", help="pixels per block side")] = 2048,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = ProgressChoice.rich,
    quiet: QuietOpt = False,
) -> None:
    """Turn a class map into polygons with class_id, class_name and area_m2."""
    _vectorize(class_map, output, fmt=fmt, min_area=min_area, min_area_unit="pixels" if min_area_pixels else "map",
               simplify=simplify, dissolve=dissolve, classes=classes.split(",") if classes else None, layer=layer,
               block_size=block_size, overwrite=overwrite, progress=progress, quiet=quiet)


def _vectorize(class_map: Path, output: Path, *, progress: ProgressChoice, quiet: bool, **options: Any) -> None:
    from geoseg.vectorize import vectorize as run_vectorize

    summary = run_vectorize(class_map, output, reporter=_reporter(progress, quiet, "vectorize"), **options)
    if progress == ProgressChoice.rich and not quiet:
        areas = ", ".join(f"{name} {area / 1e6:.2f} km²" for name, area in summary.area_m2.items())
        err_console.print(f"wrote {summary.n_polygons} polygons to {summary.path} ({summary.format}): {areas}",
                          soft_wrap=True)


@app.command()
@reports_errors
def info(
    path: Annotated[Optional[Path], typer.Argument(help="a model bundle (.safetensors) or a raster; none: this installation")] = None,
    model: Annotated[Optional[Path], typer.Option("--model", "-m", help="with a raster: check whether this model fits it (default: the embedded model)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Describe a model bundle, a scene (and whether a model fits it), or this installation."""
    from geoseg import describe

    if path is None:
        data = describe.installation()
    elif path.suffix == ".safetensors":
        data = describe.bundle(path)
    else:
        data = describe.scene(path, model)
    if as_json:
        print(json.dumps(data, indent=2, default=str))
    else:
        describe.print_human(data, Console())


def main() -> None:
    app(prog_name="geoseg")


if __name__ == "__main__":
    main()
