"""Does this scene fit this model? Bands (by name, number or order), value type and ground sample distance.

Problems refuse the scene with a message that says what was expected (:meth:`FitReport.refusal`, a
:class:`~geoseg.errors.ModelMismatchError`); tolerable mismatches are warnings. Problems mark the
parameters they name as ``{bands}``, like every error message, so each face spells them its own way.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import rasterio
from pydantic import BaseModel

from geoseg.errors import ModelMismatchError, python_name
from geoseg.io.rasters import ground_sample_distance
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
FIT_PARAMETERS = ("bands",)


def check_fit(dataset: rasterio.DatasetReader, meta: BundleMeta, bands: Sequence[int] | None = None) -> FitReport:
    """Match scene bands to the bundle's (explicit 1-based ``bands``, band names, or all in order)."""
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
        if len(indexes) != len(wanted):
            problems.append(f"{{bands}} names {len(indexes)} bands, the model expects {len(wanted)} "
                            f"({', '.join(wanted)})")
        bad = [i for i in indexes if not 1 <= i <= dataset.count]
        if bad:
            problems.append(f"band numbers {bad} are outside 1..{dataset.count}")
    if dataset.dtypes[0] != meta.input_dtype and meta.input_dtype != "float32":
        warnings.append(f"scene is {dataset.dtypes[0]}, the model was trained on {meta.input_dtype}: "
                        "values must be on the same scale")
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


def _bands_by_name(dataset: rasterio.DatasetReader, wanted: list[str]) -> list[int] | None:
    names = [(d or "").lower() for d in dataset.descriptions]
    if all(w.lower() in names for w in wanted):
        return [names.index(w.lower()) + 1 for w in wanted]
    return None
