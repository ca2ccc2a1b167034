"""Does this scene fit this model? Bands (by name, colour or number), value type, value range and resolution.

A scene on another value scale (8-bit, reflectance, another sensor's numbers) used to run through a
DN-trained model and come back as a confident one-class map; the value check samples the scene and
refuses it when its values lie far outside the range the model was trained on (recorded in the bundle
as each band's clip range), unless the caller turns the check off.

Problems refuse the scene with a message that says what was expected (:meth:`FitReport.refusal`, a
:class:`~geoseg.errors.ModelMismatchError`); tolerable mismatches are warnings. Problems mark the
parameters they name as ``{bands}``, like every error message, so each face spells them its own way.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import rasterio
from pydantic import BaseModel
from rasterio.enums import ColorInterp

from geoseg.errors import ModelMismatchError, python_name
from geoseg.io.rasters import ground_sample_distance, read_tile, sample_windows
from geoseg.model.meta import BundleMeta


class FitReport(BaseModel):
    """Whether a model can run on a scene: problems refuse it, warnings are printed."""

    ok: bool
    band_indexes: list[int]
    problems: list[str]
    warnings: list[str]

    def refusal(self, where: str) -> ModelMismatchError:
        """The error that refuses the scene; ``where`` names the scene and the model (and the action)."""
        return ModelMismatchError(f"{where}: {'; '.join(self.problems)}", parameters=FIT_PARAMETERS)

    def spelled(self, spell: Callable[[str], str] = python_name) -> "FitReport":
        """This report with the parameters its problems name spelled by ``spell`` (e.g. as CLI flags)."""
        problems = [ModelMismatchError(p, parameters=FIT_PARAMETERS).render(spell) for p in self.problems]
        return self.model_copy(update={"problems": problems})


#: The parameters that fit problems name (as ``{bands}``).
FIT_PARAMETERS = ("bands", "check_values", "repeat_bands")
#: A band is off the model's scale when more than this share of its pixels lies beyond one end of the
#: training range (the bundle's 0.5-99.5 percentile clip range clips 1 % of the training scene).
MAX_CLIPPED = 0.6
#: A band is constant for a scene-normalised model when its sampled values between this share and one
#: minus it are all one value (an empty or saturated band: nothing to standardise).
MAX_CONSTANT = 0.02


def check_fit(dataset: rasterio.DatasetReader, meta: BundleMeta, bands: Sequence[int] | None = None,
              check_values: bool = True, *, fill: float | None = None, repeat_bands: bool = False) -> FitReport:
    """Match scene bands to the bundle's (explicit 1-based ``bands``, band names or colours, or all in
    order) and check value type, value range (``check_values``; pixels with the declared ``fill`` value are
    not looked at) and resolution. A scene band may feed several model bands only with ``repeat_bands``
    (a panchromatic scene into an RGB model, say): by mistake, it is a map of nothing."""
    problems: list[str] = []
    warnings: list[str] = []
    wanted = [b.name for b in meta.bands]
    indexes = list(bands) if bands else _bands_by_name(dataset, wanted)
    if indexes is None:
        if dataset.count == len(wanted):
            indexes = list(range(1, dataset.count + 1))
        else:
            indexes = []
            problems.append(f"the scene has {dataset.count} bands, the model expects {len(wanted)} "
                            f"({', '.join(wanted)}); pass {{bands}} with {len(wanted)} band numbers")
    if indexes:
        problems += _band_problems(dataset, indexes, wanted, repeat_bands)
    if np.dtype(dataset.dtypes[0]).kind == "c":
        problems.append(f"the scene holds complex values ({dataset.dtypes[0]}); write the amplitude (or the "
                        "band the model was trained on) as a real-valued raster first")
    elif dataset.dtypes[0] != meta.input_dtype and meta.input_dtype != "float32" and meta.normalisation == "fixed":
        warnings.append(f"scene is {dataset.dtypes[0]}, the model was trained on {meta.input_dtype}: "
                        "values must be on the same scale")
    if check_values and indexes and not problems:
        problems += _value_problems(dataset, indexes, meta, fill)
    gsd = ground_sample_distance(dataset)
    if meta.gsd and gsd:
        ratio = gsd / meta.gsd
        if ratio > 4 or ratio < 0.25:
            problems.append(f"scene resolution {gsd:.2f} m is far from the model's {meta.gsd:.2f} m; "
                            "resample the scene or use a model trained at this resolution")
        elif ratio > 1.5 or ratio < 1 / 1.5:
            warnings.append(f"scene resolution {gsd:.2f} m differs from the model's {meta.gsd:.2f} m")
    if dataset.crs is None:
        warnings.append("the scene has no CRS: the output will not be georeferenced")
    return FitReport(ok=not problems, band_indexes=indexes, problems=problems, warnings=warnings)


def _band_problems(dataset: rasterio.DatasetReader, indexes: list[int], wanted: list[str], repeat_bands: bool
                   ) -> list[str]:
    """Wrong count, numbers outside the file, a band used twice, an alpha band fed as data."""
    if len(indexes) != len(wanted):
        return [f"{{bands}} names {len(indexes)} bands, the model expects {len(wanted)} ({', '.join(wanted)})"]
    bad = [i for i in indexes if not 1 <= i <= dataset.count]
    if bad:
        return [f"band numbers {bad} are outside 1..{dataset.count}"]
    repeated = sorted({i for i in indexes if indexes.count(i) > 1})
    if repeated and not repeat_bands:
        return [f"{{bands}} repeats band {', '.join(map(str, repeated))}; each of the model's bands "
                f"({', '.join(wanted)}) needs its own scene band, or pass {{repeat_bands}} to feed one scene band "
                "to several of them on purpose"]
    alpha = [(i, name) for i, name in zip(indexes, wanted) if dataset.colorinterp[i - 1] == ColorInterp.alpha
             and (dataset.descriptions[i - 1] or "").lower() != name.lower()]   # named so: the name wins
    if alpha:
        i, name = alpha[0]
        return [f"band {i} is the scene's alpha (transparency) band, not {name}; pass {{bands}} with the "
                "bands that hold the model's data"]
    return []


def _value_problems(dataset: rasterio.DatasetReader, indexes: list[int], meta: BundleMeta, fill: float | None
                    ) -> list[str]:
    """Bands whose sampled values mostly fall outside the model's training range on one side.

    The model clips every band to its training range (the bundle's clip range) before normalising, so a
    band whose values lie mostly beyond it reaches the network as one constant: the map that comes back
    is confident and meaningless. Another date or place of the same sensor clips a few percent.
    A scene-normalised model takes any value scale, but not a constant band: standardising has nothing to
    scale, and the band reaches the network as zeros.
    """
    if meta.normalisation == "scene":
        return _constant_bands(dataset, indexes, meta, fill)
    ranges = [(b.name, b.clip_low, b.clip_high) for b in meta.bands]
    if any(low is None or high is None for _, low, high in ranges):
        return []                                    # the bundle does not record its training range
    sample = _sample(dataset, indexes, meta.input_nodata, fill)
    if sample is None:
        return []
    outside = []
    for (name, low, high), values in zip(ranges, sample):
        clipped = max(float(np.mean(values < low)), float(np.mean(values > high)))
        if clipped > MAX_CLIPPED:
            p2, p98 = np.percentile(values, [2, 98])
            outside.append(f"{name} {_number(p2)}..{_number(p98)} (model: {_number(low)}..{_number(high)})")
    if len(outside) * 2 < len(ranges):
        return []
    return [f"the scene's values are not on the model's scale: {'; '.join(outside)}; convert the scene to "
            "the units the model was trained on, or pass {check_values} to run anyway"]


def _constant_bands(dataset: rasterio.DatasetReader, indexes: list[int], meta: BundleMeta, fill: float | None
                    ) -> list[str]:
    """Bands of a scene-normalised model's input whose sampled valid pixels hold (nearly) one value."""
    sample = _sample(dataset, indexes, meta.input_nodata, fill)
    if sample is None:
        return []
    constant = []
    for index, band, values in zip(indexes, meta.bands, sample):
        low, high = np.percentile(values, [100 * MAX_CONSTANT, 100 * (1 - MAX_CONSTANT)])
        if low == high:
            constant.append(f"{band.name} (band {index}: {_number(float(low))})")
    if not constant:
        return []
    return [f"band values are constant over most of the scene: {', '.join(constant)}; the model standardises "
            "each band by its spread, so pass {bands} with the bands that hold the data"]


def _sample(dataset: rasterio.DatasetReader, indexes: list[int], nodata: float | None, fill: float | None
            ) -> list[np.ndarray] | None:
    """Valid pixels of each band in :func:`~geoseg.io.rasters.sample_windows` (None if none valid)."""
    pixels: list[np.ndarray] = []
    for w in sample_windows(dataset.height, dataset.width):
        data, valid = read_tile(dataset, indexes, w.row_off, w.col_off, w.height, w.width, nodata, fill)
        pixels.append(data[:, valid])
    values = np.concatenate(pixels, axis=1)
    return list(values) if values.shape[1] else None


def _number(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def _bands_by_name(dataset: rasterio.DatasetReader, wanted: list[str]) -> list[int] | None:
    """The model's bands found by the scene's band descriptions, else by its colour interpretation."""
    for names in ([(d or "").lower() for d in dataset.descriptions],
                  [c.name.lower() for c in dataset.colorinterp]):
        if all(w.lower() in names for w in wanted):
            return [names.index(w.lower()) + 1 for w in wanted]
    return None
