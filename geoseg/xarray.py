"""The xarray face: a (rio)xarray DataArray in, a labelled class DataArray on the same coordinates out.

A NumPy-backed array goes through the very same streaming pipeline as a file (written to a temporary
GeoTIFF); a dask-backed one gives a lazy, dask-backed result (:mod:`geoseg.inference.lazy`: one task per
band of tile rows, no whole-scene file). Either way tiling, blending, nodata and the model's band checks
are those of a file, and so are the classes. Needs the ``xarray`` extra (xarray + rioxarray).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from geoseg.errors import InputError, InputFileError
from geoseg.inference.config import PREDICTOR_OPTIONS
from geoseg.inference.predictor import Predictor
from geoseg.model.loading import ModelLike


def predict_dataarray(data: Any, model: ModelLike | Predictor = None, **options: Any) -> Any:
    """Classes of ``data`` (dims ``band, y, x`` with a CRS set through rioxarray) as a uint8 DataArray.

    The result has the input's ``y``/``x`` coordinates and CRS, ``_FillValue`` = the nodata class, and
    attributes ``classes`` (id → name) and ``colors`` (id → hex). ``options`` go to :class:`Predictor`
    (config, device, precision, tile, overlap, batch_size, blend, backend) and :meth:`Predictor.predict`
    (bands, output_block). When ``model`` is a ready Predictor, its settings stand: an option that differs
    from them is refused (a ParameterError) rather than dropped.

    For dask-backed ``data`` the result is lazy: nothing is read or computed until it is (``.compute()``,
    ``.rio.to_raster``, a plot); each band of tile rows is one task. There the options of
    :meth:`Predictor.predict` that apply are ``bands`` and ``nodata``; the check of the values' range is
    left out, as it would compute the array.
    """
    try:
        import rioxarray
    except ImportError as err:
        raise InputError("the xarray face needs rioxarray: pip install 'geoseg[xarray]'") from err
    if getattr(data, "ndim", None) not in (2, 3):
        raise InputFileError("predict_dataarray: expected a DataArray with dims (band, y, x) or (y, x)")
    if data.ndim == 2:
        data = data.expand_dims("band")
    if data.rio.crs is None:
        raise InputFileError("predict_dataarray: the DataArray has no CRS; set one with data.rio.write_crs(...)")
    setup = {k: options.pop(k) for k in (*PREDICTOR_OPTIONS, "config") if k in options}
    if isinstance(model, Predictor):
        model.config.refuse_changes(**setup)
    predictor = model if isinstance(model, Predictor) else Predictor(model, **setup)
    if _is_dask(data):
        return _labelled(_lazy(predictor, data, options), data, predictor)
    with tempfile.TemporaryDirectory(prefix="geoseg-xr-") as tmp:
        scene, classes = Path(tmp) / "scene.tif", Path(tmp) / "classes.tif"
        data.rio.to_raster(scene, tiled=True, compress="deflate")
        predictor.predict(scene, classes, **options)
        with rioxarray.open_rasterio(classes, mask_and_scale=False) as result:
            out = result.squeeze("band", drop=True).load()
    return _labelled(out, data, predictor)


def _is_dask(data: Any) -> bool:
    return hasattr(data.data, "dask")


def _lazy(predictor: Predictor, data: Any, options: dict[str, Any]) -> Any:
    """The lazy classes, with the nodata and band names ``rio.to_raster`` would have written."""
    import xarray

    from geoseg.inference.lazy import lazy_classes

    unknown = sorted(set(options) - {"bands", "nodata", "output_block", "check_values"})
    if unknown:
        raise TypeError(f"predict_dataarray got unexpected options {unknown} for a dask-backed array")
    encoded = data.rio.encoded_nodata
    if encoded is not None:           # masked on read (NaN): back to the file's fill value and type
        data = data.fillna(encoded).astype(data.encoding.get("dtype", data.dtype))
    names = data.attrs.get("long_name")
    profile = {"crs": data.rio.crs, "transform": data.rio.transform(),
               "nodata": encoded if encoded is not None else data.rio.nodata,
               "descriptions": (names,) if isinstance(names, str) else names}
    classes = lazy_classes(predictor, data.data, profile, options.get("bands"), options.get("nodata"))
    return xarray.DataArray(classes, dims=("y", "x"), coords={"y": data.y, "x": data.x})


def _labelled(out: Any, data: Any, predictor: Predictor) -> Any:
    """The classes on the input's coordinates and CRS, with the legend as attributes."""
    scheme = predictor.meta.scheme
    out = out.assign_coords(y=data.y, x=data.x)
    out.name = "class"
    out.attrs = {"_FillValue": scheme.nodata_id, "classes": scheme.names(),
                 "colors": {c.id: c.color for c in scheme.classes}, "model": predictor.meta.name}
    return out.rio.write_crs(data.rio.crs)
