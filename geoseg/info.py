"""What ``geoseg info`` reports about a bundle, a scene or the installation, as plain JSON-able dicts."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from geoseg.model.loading import DEFAULT_MODEL_PATH, read_meta
from geoseg.errors import InputError, python_name


def bundle(path: Path) -> dict[str, Any]:
    meta = read_meta(path)
    data = meta.model_dump()
    data["kind"] = "model"
    data["path"] = str(path)
    data["classes"] = [c.model_dump() for c in meta.scheme.classes]
    data["nodata_id"] = meta.scheme.nodata_id
    data["size_bytes"] = path.stat().st_size
    return data


def scene(path: str | Path, model: Path | None = None, spell: Callable[[str], str] = python_name,
          fill: float | None = None) -> dict[str, Any]:
    """The scene, its sampled band values, and whether ``model`` fits it (problems name parameters as
    ``spell`` writes them); ``fill`` is a fill value the file does not declare, as ``--nodata`` on predict."""
    from geoseg.io.rasters import describe, fill_hints, gdal_env, open_raster, sampled_band_values
    from geoseg.model.fit import check_fit

    model_path = model or (DEFAULT_MODEL_PATH if DEFAULT_MODEL_PATH.is_file() else None)
    with gdal_env(), open_raster(path) as dataset:
        data: dict[str, Any] = describe(dataset).model_dump()
        data["kind"] = "scene"
        data["declared_fill"] = fill
        data["band_values"] = sampled_band_values(dataset, fill)
        data["hints"] = fill_hints(dataset, fill)
        if model_path is not None:
            fit = check_fit(dataset, read_meta(model_path), fill=fill).spelled(spell)
            data["fits"] = {"model": str(model_path), **fit.model_dump()}
    return data


def installation() -> dict[str, Any]:
    import rasterio
    import torch

    from geoseg import __version__
    from geoseg.inference.device import available_devices

    default = None
    if DEFAULT_MODEL_PATH.is_file():
        try:
            default = bundle(DEFAULT_MODEL_PATH)
        except InputError as err:
            default = {"path": str(DEFAULT_MODEL_PATH), "error": str(err)}
    return {"kind": "installation", "geoseg_version": __version__, "torch_version": torch.__version__,
            "gdal_version": rasterio.__gdal_version__, "devices": available_devices(), "default_model": default}


def network(spec: dict[str, Any]) -> str:
    """``Unet/resnet18``, or just the architecture for networks without an encoder (``ContextFCN``)."""
    return spec["architecture"] + (f"/{spec['encoder']}" if spec.get("encoder") else "")


def format_value(value: Any) -> str:
    """A metric as people read it: numbers to 4 places, mappings as ``key value`` pairs, lists joined."""
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {format_value(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "; ".join(format_value(v) for v in value)
    return "-" if value is None else str(value)


def print_human(data: dict[str, Any], console: Console) -> None:
    """A readable rendering of any of the three dicts.

    On a terminal the table wraps to its width; piped or redirected (no width to respect), every row is
    printed whole, where rich would otherwise cut the table at 80 columns.
    """
    table = _table(data)
    if not console.is_terminal:
        needed = console.measure(table, options=console.options.update_width(100_000)).maximum
        if needed > console.width:                   # rich never prints wider than its console
            console = Console(file=console.file, width=needed, no_color=console.no_color)
    console.print(table)


def _table(data: dict[str, Any]) -> Table:
    kind = data.get("kind")
    table = Table(show_header=False, box=None)
    if kind == "model":
        table.add_row("model", f"{data['name']} ({network(data['model'])})")
        table.add_row("task", f"instance (objects scoring >= {data['score_threshold']}, masks at "
                              f"{data['mask_threshold']})" if data["task"] == "instance" else "semantic (a class per pixel)")
        table.add_row("file", f"{data['path']} ({data['size_bytes'] / 1e6:.1f} MB, format {data['format_version']})")
        if data["normalisation"] == "scene":
            table.add_row("bands", ", ".join(b["name"] for b in data["bands"]) + ", each scene standardised by its "
                          "own statistics (any value scale)")
        else:
            table.add_row("bands", ", ".join(f"{b['name']} (mean {b['mean']:.4g}, std {b['std']:.4g})"
                                             for b in data["bands"]))
        if data.get("derived"):
            table.add_row("derived", ", ".join(f"{b['name']} (mean {b['mean']:.4g}, std {b['std']:.4g})"
                                               for b in data["derived"]))
        table.add_row("input", f"{data['input_dtype']}, nodata {data['input_nodata']}")
        table.add_row("classes", ", ".join(f"{c['id']} {c['name']} {c['color']}" for c in data["classes"]))
        table.add_row("nodata class", str(data["nodata_id"]))
        table.add_row("resolution", f"{data['gsd']} m" if data["gsd"] else "unknown")
        table.add_row("tile / overlap", f"{data['tile_size']} / {data['overlap']} px")
        for key, value in (data.get("metrics") or {}).items():
            table.add_row(f"metric {key}", format_value(value))
        compression = (data.get("provenance") or {}).get("compression")
        if compression:
            table.add_row("compression", f"{compression.get('method')} of {compression.get('source')}")
        table.add_row("created", f"{data['created']} by geoseg {data['geoseg_version']}")
    elif kind == "scene":
        table.add_row("scene", data["path"])
        table.add_row("size", f"{data['width']} x {data['height']} px, {data['count']} bands, {data['dtype']}")
        table.add_row("crs", str(data["crs"]))
        gsd = f" (~{data['gsd_m']:.2f} m)" if data["gsd_m"] else ""
        table.add_row("resolution", f"{data['res'][0]:.6g} x {data['res'][1]:.6g}{gsd}")
        declared = data.get("declared_fill")
        table.add_row("nodata", str(data["nodata"]) + (f" (and {declared:g}, declared)" if declared is not None else ""))
        table.add_row("band names", ", ".join(str(n) for n in data["band_names"]))
        for band in data.get("band_values", []):
            values = (f"{band['p2']:.6g}..{band['p98']:.6g} (2-98 %)" if band["p2"] is not None else "no valid value")
            table.add_row(f"band {band['band']}", f"{band['name'] or ''} {values}, {band['valid_share']:.1%} "
                          "valid (sampled)".lstrip())
        for hint in data.get("hints", []):
            table.add_row("check", hint)
        fits = data.get("fits")
        if fits:
            verdict = "yes" if fits["ok"] else "NO: " + "; ".join(fits["problems"])
            table.add_row("model fits", f"{verdict} ({fits['model']})")
            for warning in fits["warnings"]:
                table.add_row("warning", warning)
    else:
        table.add_row("geoseg", data["geoseg_version"])
        table.add_row("torch / GDAL", f"{data['torch_version']} / {data['gdal_version']}")
        table.add_row("devices", ", ".join(str(d["name"]) for d in data["devices"]))
        default = data["default_model"]
        if not default:
            table.add_row("default model", "none installed")
        elif "error" in default:
            table.add_row("default model", f"{default['path']}: {default['error']}")
        else:
            table.add_row("default model", f"{default['name']} ({network(default['model'])}, "
                          f"{len(default['classes'])} classes) in {default['path']}")
    return table
