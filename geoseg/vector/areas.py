"""Pixel-space polygons to map coordinates, and their true area in square metres.

Projected CRSs: planar area in the CRS, converted to m² with its linear unit. Geographic CRSs: the area on
the CRS's ellipsoid, computed exactly by mapping longitude/latitude to the cylindrical equal-area
projection of that ellipsoid (parallels and meridians stay straight lines there, so raster pixel edges,
which follow them, keep their exact ellipsoidal area). Vectorised: no per-polygon Python loop.
"""
from __future__ import annotations

import numpy as np
import pyproj
import shapely
from affine import Affine
from rasterio.crs import CRS

from geoseg.vector.flat import FlatPolygons


def to_map(coords_px: np.ndarray, transform: Affine) -> np.ndarray:
    """Apply the raster's affine transform to (column, row) pixel coordinates, shape (n, 2)."""
    a, b, c, d, e, f = transform[:6]
    return np.column_stack((a * coords_px[:, 0] + b * coords_px[:, 1] + c,
                            d * coords_px[:, 0] + e * coords_px[:, 1] + f))


def area_m2(polys_px: FlatPolygons, polys_map: FlatPolygons, transform: Affine, crs: CRS | None) -> np.ndarray:
    """True area in m² (planar CRS area for projected CRSs, ellipsoidal area for geographic ones).

    Without a CRS the area is in squared map units, the best that can be said.
    """
    if crs is None or not crs.is_geographic:
        factor = crs.linear_units_factor[1] if crs is not None else 1.0
        return polys_px.areas() * abs(transform.determinant) * factor ** 2
    return polys_map.with_coords(lambda lonlat: _equal_area(lonlat, crs)).areas()


def pixel_area_m2(transform: Affine, crs: CRS | None, height: int, width: int) -> float:
    """Area of the scene's centre pixel in m² (converts a minimum area to a pixel count)."""
    px = FlatPolygons.from_geometries(np.array([shapely.box(width // 2, height // 2, width // 2 + 1,
                                                            height // 2 + 1)]))
    return float(area_m2(px, px.with_coords(lambda xy: to_map(xy, transform)), transform, crs)[0])


def _equal_area(lonlat: np.ndarray, crs: CRS) -> np.ndarray:
    geod = pyproj.CRS.from_wkt(crs.to_wkt())
    radians_per_unit = geod.axis_info[0].unit_conversion_factor
    ell = geod.ellipsoid
    a = ell.semi_major_metre
    e2 = 0.0 if not ell.inverse_flattening else (2 - 1 / ell.inverse_flattening) / ell.inverse_flattening
    e = np.sqrt(e2)
    lam = lonlat[:, 0] * radians_per_unit
    s = np.sin(lonlat[:, 1] * radians_per_unit)
    if e == 0:
        q = 2 * s
    else:
        q = (1 - e2) * (s / (1 - e2 * s * s) - np.log((1 - e * s) / (1 + e * s)) / (2 * e))
    return np.column_stack((a * lam, a * q / 2))


def to_wgs84(coords_map: np.ndarray, crs: CRS) -> np.ndarray:
    """Reproject map coordinates, shape (n, 2), to longitude/latitude WGS84 (RFC 7946 GeoJSON)."""
    tr = pyproj.Transformer.from_crs(pyproj.CRS.from_wkt(crs.to_wkt()), "EPSG:4326", always_xy=True)
    return np.column_stack(tr.transform(coords_map[:, 0], coords_map[:, 1]))
