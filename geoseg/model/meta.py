"""What a model is, apart from its weights: :class:`BundleMeta`, its JSON form and its format upgraders.

The same metadata JSON travels in a ``.safetensors`` header (:mod:`geoseg.model.bundle`) and in ONNX
``metadata_props`` (:mod:`geoseg.model.onnx`); both read it through :func:`parse_meta`, which upgrades older
format versions and refuses newer ones with a message that says to upgrade geoseg.
"""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, ValidationError, model_validator

from geoseg.errors import ModelError, ParameterError
from geoseg.io.legend import ClassScheme
from geoseg.model.indices import check_indices
from geoseg.versioning import Upgrader, upgrade

FORMAT_VERSION = 2
METADATA_KEY = "geoseg"
#: Architectures that find objects (``task: instance``); every other one labels pixels (``task: semantic``).
INSTANCE_ARCHITECTURES = ("MaskRCNN",)
#: How a bundle turns scene values into model input: ``fixed``, each band's recorded clip range, mean and
#: std (one value scale: the training scene's); ``scene``, each scene standardised by its own sampled
#: statistics (:func:`geoseg.model.normalise.scene_statistics`), so DN, reflectance and 8-bit versions of
#: one sensor's scene reach the network alike.
Normalisation = Literal["fixed", "scene"]


def check_tiling(tile: int, overlap: int) -> None:
    """The one rule for a tile grid's ``tile`` and ``overlap`` (px), wherever they come from.

    Tiles need a side; the overlap may be at most half the tile, so that the blending ramps of opposite
    sides of a tile never meet and a pixel lies in at most two tiles along each axis (the stride stays
    positive too). :class:`~geoseg.inference.config.PredictorConfig` applies it to a predictor's settings,
    :class:`~geoseg.inference.tiling.TileGrid` to the grid it builds, :class:`BundleMeta` to the tile size
    and overlap a bundle records; it lives here, the lowest of those layers, so all three can call it.
    """
    if tile < 1:
        raise ParameterError("tile", tile, "must be at least 1 px")
    if not 0 <= 2 * overlap <= tile:
        raise ParameterError("overlap", overlap, f"must be between 0 and half of {{tile}} {tile}", parameters=("tile",))


class BandSpec(BaseModel):
    """One input band the model expects, in order, with its normalisation: ``(clip(x) - mean) / std``.

    The numbers serve the ``fixed`` normalisation only; a ``scene``-normalised bundle keeps the defaults."""

    name: str
    mean: float = 0.0
    std: float = Field(default=1.0, gt=0)
    clip_low: float | None = None
    clip_high: float | None = None


class ModelSpec(BaseModel):
    """What network to build. ``architecture`` is an smp architecture name, ``SimpleFCN``, ``ContextFCN`` or
    ``MaskRCNN`` (instance segmentation, :mod:`geoseg.model.maskrcnn`).

    ContextFCN reads ``hidden[0]`` as its width and ``encoder_depth`` as its number of context levels.
    MaskRCNN reads ``encoder`` as its torchvision ResNet backbone, ``decoder_channels[0]`` as its FPN width
    and ``anchor_sizes`` as the anchor side (px) of each of its five FPN levels.
    """

    architecture: str = "Unet"
    encoder: str | None = "resnet18"
    encoder_depth: int | None = None
    decoder_channels: list[int] | None = None
    #: SimpleFCN only: hidden widths of its 3x3 convolutions (receptive field 2·len+1 px).
    hidden: list[int] | None = None
    #: Structured pruning (geoseg.model.channels): output channels kept by each pruned convolution, by module name.
    #: Empty for unpruned nets, so bundles written before pruning existed read unchanged.
    pruned: dict[str, int] = Field(default_factory=dict)
    #: MaskRCNN only: anchor side in px per FPN level (finest first); None: geoseg.model.maskrcnn's defaults.
    anchor_sizes: list[int] | None = Field(default=None, min_length=5, max_length=5)


class BundleMeta(BaseModel):
    """Everything about a model except its weights.

    ``task`` says what the model's output means: ``semantic`` a class per pixel, ``instance`` objects
    (masks with a class and a score each; their class ids are never 0, the background). ``score_threshold``
    and ``mask_threshold`` are an instance model's defaults: objects scoring below the first are dropped, and
    an object's mask holds the pixels whose mask probability reaches the second.
    """

    format_version: int = FORMAT_VERSION
    name: str
    description: str = ""
    task: Literal["semantic", "instance"] = "semantic"
    model: ModelSpec
    bands: list[BandSpec]
    normalisation: Normalisation = "fixed"
    #: Spectral indices computed from the raw bands (geoseg.model.indices) and fed as extra channels after
    #: the bands, each with its own normalisation; the name says the formula.
    derived: list[BandSpec] = Field(default_factory=list)
    input_dtype: str = "float32"
    input_nodata: float | None = None
    scheme: ClassScheme
    gsd: float | None = Field(default=None, gt=0, description="ground sample distance in metres")
    crs_hint: str | None = None
    tile_size: int = Field(default=256, ge=16)
    overlap: int = Field(default=32, ge=0)
    created: str = Field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    geoseg_version: str = ""
    metrics: dict[str, Any] = Field(default_factory=dict)
    provenance: dict[str, Any] = Field(default_factory=dict)
    score_threshold: float = Field(default=0.5, ge=0, le=1)
    mask_threshold: float = Field(default=0.5, gt=0, lt=1)

    @model_validator(mode="after")
    def _fits(self) -> "BundleMeta":
        if not self.bands:
            raise ValueError("a bundle needs at least one band")
        finds_objects = self.model.architecture in INSTANCE_ARCHITECTURES
        if finds_objects != (self.task == "instance"):
            raise ValueError(f"task {self.task!r} does not fit architecture {self.model.architecture!r} "
                             f"(instance models: {', '.join(INSTANCE_ARCHITECTURES)})")
        if self.task == "instance" and any(c.id == 0 for c in self.scheme.classes):
            raise ValueError("an instance model's class ids start at 1 (0 is the background)")
        check_indices([d.name for d in self.derived], [b.name for b in self.bands])
        try:
            check_tiling(self.tile_size, self.overlap)
        except ParameterError as err:           # pydantic reports ValueErrors, in the bundle's field names
            raise ValueError(err.render(lambda name: "tile_size" if name == "tile" else name)) from None
        return self

    @property
    def in_channels(self) -> int:
        return len(self.bands) + len(self.derived)

    @property
    def num_classes(self) -> int:
        return len(self.scheme.classes)

    def class_ids(self) -> np.ndarray:
        """Model output channel ``i`` means class id ``class_ids()[i]``."""
        return np.array([c.id for c in self.scheme.classes], dtype=np.uint8)


def _v1_to_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 2 added ``task`` (and the instance thresholds), ``normalisation`` and ``derived`` channels:
    every version-1 bundle labels pixels, with its recorded band statistics and no derived channel.

    The version was raised, not just fields added with defaults, so that a geoseg from before them refuses
    an instance or scene-normalised bundle ("upgrade geoseg") instead of running it as something else.
    """
    return {**raw, "task": "semantic", "normalisation": "fixed", "derived": [], "format_version": 2}


#: Upgraders turn the metadata dict of version N into version N+1. Keep every one, forever.
_UPGRADERS: dict[int, Upgrader] = {1: _v1_to_v2}


def parse_meta(text: str, path: Path) -> BundleMeta:
    """Validate and upgrade metadata JSON from any container (safetensors header, ONNX metadata_props)."""
    try:
        raw = upgrade(json.loads(text), current=FORMAT_VERSION, upgraders=_UPGRADERS, unversioned=0, where=path,
                      what="bundle", error=ModelError, fix_old="re-export the model")
        return BundleMeta.model_validate(raw)
    except (json.JSONDecodeError, ValidationError) as err:
        first = str(err).splitlines()[0] if isinstance(err, json.JSONDecodeError) else _pydantic_summary(err)
        raise ModelError(f"{path}: invalid geoseg metadata ({first}); re-export the model") from err


def _pydantic_summary(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "metadata"
    return f"{where}: {first['msg']}"

