"""The xarray face: a (rio)xarray DataArray in, a labelled class DataArray on the same coordinates out.

The array goes through the very same streaming pipeline as a file (it is written to a temporary GeoTIFF,
chunk by chunk when dask-backed), so tiling, blending, nodata and the model's band checks are identical.
Needs the ``xarray`` extra (xarray + rioxarray).
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
    with tempfile.TemporaryDirectory(prefix="geoseg-xr-") as tmp:
        scene, classes = Path(tmp) / "scene.tif", Path(tmp) / "classes.tif"
        data.rio.to_raster(scene, tiled=True, compress="deflate")
        predictor.predict(scene, classes, **options)
        with rioxarray.open_rasterio(classes, mask_and_scale=False) as result:
            out = result.squeeze("band", drop=True).load()
    scheme = predictor.meta.scheme
    out = out.assign_coords(y=data.y, x=data.x)
    out.name = "class"
    out.attrs = {"_FillValue": scheme.nodata_id, "classes": scheme.names(),
                 "colors": {c.id: c.color for c in scheme.classes}, "model": predictor.meta.name}
    return out.rio.write_crs(data.rio.crs)
