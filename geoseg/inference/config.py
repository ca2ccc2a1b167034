"""PredictorConfig: what a :class:`~geoseg.inference.predictor.Predictor` is asked to do, validated in one place.

A config and its implementation come in pairs (as in Raster Vision): this config checks every setting a
user can give a predictor — tile, overlap, batch size, blending, precision, backend, device — and fills
in the defaults that depend on the model (tile and overlap from its bundle) and on the device (a batch
of 8 tiles on CUDA, 1 elsewhere). The Predictor only runs what the config says. Errors are
:class:`~geoseg.errors.ParameterError` naming the parameter, so each face spells it its own way.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from geoseg.errors import ParameterError
from geoseg.inference.device import check_precision, parse_device
from geoseg.inference.tiling import BlendMode
from geoseg.model.bundle import ModelBundle
from geoseg.model.meta import check_tiling
from geoseg.model.networks import size_multiple
from geoseg.model.onnx import OnnxBundle

BLENDS: tuple[str, ...] = get_args(BlendMode)
BACKENDS = ("auto", "torch", "onnx")
#: Batch size when none is given: GPUs need several tiles per pass to be busy, CPUs do not.
DEFAULT_BATCH = {"cuda": 8}
#: No model sees anything in a tile smaller than this.
MIN_TILE = 16
#: Full-resolution float32 feature maps a network holds per pixel, for the memory estimate (a U-Net's
#: first stage: 64 channels, in and out).
ACTIVATION_CHANNELS = 128


class PredictorConfig(BaseModel):
    """A predictor's settings; None means the model's (tile, overlap) or the device's (batch_size) default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tile: int | None = None
    overlap: int | None = None
    batch_size: int | None = None
    blend: str = "hann"
    precision: str = "auto"
    backend: str = "auto"
    device: str = "auto"
    #: Average the probabilities over the 8 flips/rotations of each tile (geoseg.inference.tta): 8x the compute.
    tta: bool = False

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as err:          # a wrong type: still a parameter error, not a traceback
            raise _parameter_error(err) from None

    @field_validator("batch_size")
    @classmethod
    def _batch(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ParameterError("batch_size", value, "must be at least 1")
        return value

    @field_validator("blend")
    @classmethod
    def _blend(cls, value: str) -> str:
        if value not in BLENDS:
            raise ParameterError("blend", value, f"unknown; use {', '.join(BLENDS)}")
        return value

    @field_validator("precision")
    @classmethod
    def _precision(cls, value: str) -> str:
        return check_precision(value)

    @field_validator("backend")
    @classmethod
    def _backend(cls, value: str) -> str:
        if value not in BACKENDS:
            raise ParameterError("backend", value, f"unknown; use {', '.join(BACKENDS)}")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        parse_device(value)
        return value

    @model_validator(mode="after")
    def _tiling(self) -> "PredictorConfig":
        """Both given: check them now; otherwise :meth:`for_model` checks them with the bundle's defaults."""
        if self.tile is not None and self.overlap is not None:
            check_tiling(self.tile, self.overlap)
        return self

    def updated(self, **options: Any) -> "PredictorConfig":
        """This config with the options that are not None replacing its values (validated again)."""
        given = {name: value for name, value in options.items() if value is not None}
        return self if not given else PredictorConfig(**{**self.model_dump(), **given})

    def for_model(self, model: ModelBundle | OnnxBundle) -> "PredictorConfig":
        """Tile and overlap filled in from the bundle, and every setting checked against this model."""
        meta = model.meta
        tile = meta.tile_size if self.tile is None else self.tile
        overlap = meta.overlap if self.overlap is None else self.overlap
        multiple = size_multiple(meta)
        smallest = max(multiple, MIN_TILE)
        if tile < smallest:
            raise ParameterError("tile", tile, f"must be at least {smallest} px for {meta.model.architecture} "
                                 f"(the model was made for {meta.tile_size} px tiles)")
        if tile % multiple:
            raise ParameterError("tile", tile, f"must be a multiple of {multiple} for {meta.model.architecture}; "
                                 f"try {tile // multiple * multiple or multiple}")
        if self.overlap is None and 2 * overlap > tile:
            raise ParameterError("tile", tile, f"is smaller than twice the model's overlap of {overlap} px; "
                                 "give {overlap} as well, at most half the tile", parameters=("overlap",))
        check_tiling(tile, overlap)
        _check_memory(tile, self.batch_size or 1, meta.in_channels, meta.num_classes)
        self._check_backend(model)
        return self.model_copy(update={"tile": tile, "overlap": overlap})

    def for_device(self, device_type: str) -> "PredictorConfig":
        """The batch size filled in for the device the backend runs on."""
        if self.batch_size is not None:
            return self
        return self.model_copy(update={"batch_size": DEFAULT_BATCH.get(device_type, 1)})

    def refuse_changes(self, config: "PredictorConfig | None" = None, **options: Any) -> None:
        """Refuse settings (those set in ``config``, and ``options``) that differ from this config's.

        A face handed a ready Predictor cannot apply them without building another network; dropping
        them silently would run other settings than the caller asked for.
        """
        asked = {**(config.model_dump(exclude_unset=True) if config is not None else {}),
                 **{name: value for name, value in options.items() if value is not None}}
        wanted = PredictorConfig(**asked)
        for name in asked:
            if getattr(wanted, name) != getattr(self, name):
                raise ParameterError(name, getattr(wanted, name),
                                     f"the Predictor given was made with {getattr(self, name)}; create it with "
                                     "this setting, or pass the model instead of a Predictor")

    def _check_backend(self, model: ModelBundle | OnnxBundle) -> None:
        """ONNX models run only on onnxruntime, and onnxruntime only at the model's own precision."""
        if isinstance(model, OnnxBundle) and self.backend == "torch":
            raise ParameterError("backend", self.backend, f"{model.path or model.meta.name} is an ONNX model, "
                                 "which runs only with {backend} onnx (or auto); pass the .safetensors bundle "
                                 "to use torch")
        onnx = isinstance(model, OnnxBundle) or self.backend == "onnx"
        if onnx and self.precision not in ("auto", "fp32"):
            raise ParameterError("precision", self.precision, "the onnx backend runs the model's own precision; "
                                 "use {precision} auto or fp32 (or {backend} torch)", parameters=("backend",))


def _check_memory(tile: int, batch: int, bands: int, classes: int) -> None:
    """Refuse a tile that cannot fit in memory before allocating it (a 32768 px tile was a 16 GiB
    MemoryError traceback). The estimate is deliberately rough: inputs, probabilities and blending
    buffers, plus :data:`ACTIVATION_CHANNELS` float32 feature maps at full resolution for the network."""
    bytes_per_pixel = 4 * (bands + 3 * classes + ACTIVATION_CHANNELS)
    needed = tile * tile * batch * bytes_per_pixel
    available = available_memory()
    if available is not None and needed > available:
        largest = int((available / (batch * bytes_per_pixel)) ** 0.5) // 256 * 256
        raise ParameterError("tile", tile, f"needs about {needed / 2**30:.0f} GiB of memory for {batch} tile(s) "
                             f"per pass, more than the {available / 2**30:.0f} GiB available; use a tile of at "
                             f"most {max(largest, MIN_TILE)} px")


def available_memory() -> int | None:
    """Bytes of memory available to this process now (Linux: MemAvailable), None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


#: The settings a Predictor takes, by name (the rest of a ``predict`` call's options go to ``Predictor.predict``).
PREDICTOR_OPTIONS: tuple[str, ...] = tuple(PredictorConfig.model_fields)


def _parameter_error(err: ValidationError) -> Exception:
    """pydantic's first complaint as a ParameterError (an unknown option is a TypeError, as for any call)."""
    first = err.errors()[0]
    name = str(first["loc"][0]) if first["loc"] else "config"
    if first["type"] == "extra_forbidden":
        return TypeError(f"PredictorConfig got an unexpected option {name!r}; use {', '.join(PREDICTOR_OPTIONS)}")
    message = first["msg"]
    return ParameterError(name, first.get("input"), message[:1].lower() + message[1:])
