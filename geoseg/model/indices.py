"""Spectral indices as derived input channels (NDVI, NDWI, MNDWI, NDBI), found from the bands' names.

A per-pixel RandomForest owes much of its strength to the normalised differences an analyst adds to its
features; a small network trained from a few polygons learns them only approximately, so a bundle can
ask for them as extra channels. They are computed from the *raw* band values (before normalisation) by
this one function, which :class:`~geoseg.model.normalise.Normaliser` calls, so training, validation,
prediction, calibration and every face compute them identically; the bundle records only their names
(with their own mean/std), the formulas live here.

Bands are recognised by common name (``blue``, ``green``, ``red``, ``nir``, ``swir1``, ``swir2``, and the
STAC ``eo:common_name`` spellings) or, when the names are Sentinel-2 band ids (a ``B8A`` or ``B11`` among
them), by id. Landsat ids (``B5`` is NIR on Landsat 8 but red-edge on Sentinel-2) are ambiguous and not
guessed: name such bands by their common names.
"""
from __future__ import annotations

import numpy as np

#: index name -> (a, b) common band names of ``(a - b) / (a + b)``.
INDICES: dict[str, tuple[str, str]] = {
    "ndvi": ("nir", "red"),         # vegetation
    "ndwi": ("green", "nir"),       # open water (McFeeters)
    "mndwi": ("green", "swir1"),    # water against built-up and soil (Xu)
    "ndbi": ("swir1", "nir"),       # built-up and bare soil
}

_COMMON = {"blue": "blue", "green": "green", "red": "red", "nir": "nir", "nir08": "nir", "near-infrared": "nir",
           "swir1": "swir1", "swir16": "swir1", "swir2": "swir2", "swir22": "swir2"}
_SENTINEL2 = {"b2": "blue", "b02": "blue", "b3": "green", "b03": "green", "b4": "red", "b04": "red",
              "b8": "nir", "b08": "nir", "b11": "swir1", "b12": "swir2"}


def common_names(band_names: list[str]) -> dict[str, int]:
    """Common band name -> position in ``band_names``, for the bands recognised."""
    lowered = [name.strip().lower() for name in band_names]
    sentinel2 = "b8a" in lowered or "b11" in lowered
    found: dict[str, int] = {}
    for position, name in enumerate(lowered):
        common = _COMMON.get(name) or (_SENTINEL2.get(name) if sentinel2 else None)
        if common is not None and common not in found:
            found[common] = position
    return found


def usable_indices(band_names: list[str]) -> list[str]:
    """The indices whose two bands are all present, in :data:`INDICES` order."""
    present = common_names(band_names)
    return [name for name, (a, b) in INDICES.items() if a in present and b in present]


def check_indices(indices: list[str], band_names: list[str]) -> None:
    """Refuse (ValueError, for pydantic) an unknown index or one whose bands are missing from ``band_names``."""
    present = common_names(band_names)
    for name in indices:
        if name not in INDICES:
            raise ValueError(f"unknown index {name!r}; known: {', '.join(INDICES)}")
        missing = [band for band in INDICES[name] if band not in present]
        if missing:
            raise ValueError(f"index {name!r} needs bands {' and '.join(missing)}, not among {band_names}; "
                             "name the bands by their common names (blue, green, red, nir, swir1, swir2)")


def compute_indices(raw: np.ndarray, band_names: list[str], indices: list[str]) -> np.ndarray:
    """``(len(indices), h, w)`` float32 normalised differences of the raw bands ``raw`` (bands, h, w).

    Where ``a + b`` is 0 the index is 0; values are clipped to [-1, 1].
    """
    present = common_names(band_names)
    out = np.empty((len(indices), *raw.shape[1:]), np.float32)
    for k, name in enumerate(indices):
        first, second = INDICES[name]
        a = raw[present[first]].astype(np.float32, copy=False)
        b = raw[present[second]].astype(np.float32, copy=False)
        total = a + b
        np.divide(a - b, total, out=out[k], where=total != 0)
        out[k][total == 0] = 0.0
    # signed inputs (offsets, int16 noise) can push a ratio far out of [-1, 1] where a + b is near 0
    return np.clip(out, -1.0, 1.0, out=out)
