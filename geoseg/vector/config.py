"""VectorizeConfig: the one place where every option of :func:`geoseg.vector.vectorize.vectorize` is checked.

Raster Vision's pairing: the config validates, ``vectorize`` does the work and trusts it. A bad value is
refused with a one-line :class:`~geoseg.errors.ParameterError` that names the parameter as ``{min_area}``,
so Python callers read ``min_area`` and the command line reads ``--min-area``. What can only be judged
against the class map (class names, a CRS for GeoJSON) is checked by ``vectorize`` when it opens it.
"""
from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import (BaseModel, ConfigDict, ValidationError, ValidationInfo, ValidatorFunctionWrapHandler,
                      field_validator, model_validator)

from geoseg.errors import ParameterError
from geoseg.vector.formats import FORMATS, format_name


class VectorizeConfig(BaseModel):
    """How to vectorize a class map; :func:`~geoseg.vector.vectorize.vectorize` documents each option."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fmt: str | None = None
    layer: str | None = None
    min_area: float | None = None
    min_area_unit: Literal["map", "pixels"] = "map"
    simplify: float | None = None
    dissolve: bool = False
    classes: tuple[str | int, ...] | None = None
    block_size: int = 2048          # processing block side in px (memory, parallel work), not an output setting
    workers: int | None = None
    nodata: int | None = None      # a class value not to vectorize that the map does not declare

    @model_validator(mode="wrap")
    @classmethod
    def _as_parameter_error(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> VectorizeConfig:
        """pydantic's type errors become the same one-line ParameterError as our own checks."""
        try:
            return handler(data)
        except ValidationError as err:
            first = err.errors()[0]
            name = str(first["loc"][0]) if first["loc"] else "config"
            value = data[name] if isinstance(data, dict) and name in data else first["input"]
            problem = first["msg"].replace("Input should", "should", 1).replace("Extra inputs are not permitted",
                                                                                "not a vectorize option")
            raise ParameterError(name, value, problem) from None

    @field_validator("fmt")
    @classmethod
    def _known_format(cls, fmt: str | None) -> str | None:
        if fmt is None:
            return None
        key = format_name(fmt)
        if key is None:
            raise ParameterError("fmt", fmt, f"unknown polygon format; use one of {', '.join(FORMATS)}")
        return key

    @field_validator("min_area", "simplify")
    @classmethod
    def _not_negative(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise ParameterError(info.field_name, value, "must be a number, 0 or more (0 or none: off)")
        return value

    @field_validator("classes", mode="before")
    @classmethod
    def _class_list(cls, classes: Any) -> Any:
        """A string is a comma-separated list (as on the command line), not a sequence of letters."""
        return classes.split(",") if isinstance(classes, str) else classes

    @field_validator("classes")
    @classmethod
    def _some_classes(cls, classes: tuple[str | int, ...] | None) -> tuple[str | int, ...] | None:
        if classes is not None and not classes:
            raise ParameterError("classes", "[]", "give at least one class name or id (none: every class)")
        return classes

    @field_validator("block_size")
    @classmethod
    def _block_size(cls, block_size: int) -> int:
        if block_size < 2:
            raise ParameterError("block_size", block_size, "must be at least 2 pixels")
        return block_size

    @field_validator("workers")
    @classmethod
    def _workers(cls, workers: int | None) -> int | None:
        if workers is not None and workers < 1:
            raise ParameterError("workers", workers, "must be at least 1 (none: one per core)")
        return workers


__all__ = ["VectorizeConfig"]
