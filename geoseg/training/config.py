"""The training configuration: one YAML file, validated by pydantic before any work starts.

Relative paths in the YAML are relative to the YAML file, so a config and its data travel together.
Configs carry ``format_version`` (absent means 1); older versions are upgraded on load like bundles
(:mod:`geoseg.versioning`), newer ones are refused.
Every section has defaults that train a reasonable model; the config is stored verbatim in the bundle's
provenance, so a shipped model says exactly how it was made.
"""
from __future__ import annotations

import difflib
import math
import os
import typing
from pathlib import Path
from typing import Literal

import yaml
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from geoseg.errors import ConfigError, InputFileError, ParameterError
from geoseg.evaluation.labels import LabelSource, labels_scheme
from geoseg.evaluation.metrics import IGNORE_INDEX
from geoseg.io.legend import ClassInfo, ClassScheme
from geoseg.io.rasters import open_raster
from geoseg.model.indices import check_indices, usable_indices
from geoseg.training.splits import is_sparse
from geoseg.model.loading import read_meta
from geoseg.model.meta import INSTANCE_ARCHITECTURES, BandSpec, ModelSpec, Normalisation, check_tiling
from geoseg.versioning import Upgrader, upgrade

CONFIG_VERSION = 1
#: Upgraders turn a config dict of version N into version N+1. Keep every one, forever.
_UPGRADERS: dict[int, Upgrader] = {}


class SceneSpec(BaseModel):
    """One (scene, labels) pair. ``labels``: a class raster on any grid, or polygons with ``class_column``."""

    scene: Path
    labels: Path
    class_column: str = "class"
    bands: list[int] | None = Field(default=None, description="1-based scene bands in the model's band order")
    ignore_ids: list[int] = Field(default_factory=list, description="label ids to leave unlabelled; any other "
                                  "id not among the classes is an error")


class SplitSpec(BaseModel):
    """A spatial split: a block of each scene held out for validation, with a buffer nobody trains on.

    The block is rows ``[start, stop)`` (axis ``rows``) or columns (axis ``cols``) in scene pixels; ``stop``
    None means to the end. Training windows never reach into the block or its buffer.
    """

    axis: Literal["rows", "cols"] = "rows"
    start: int = Field(ge=0)
    stop: int | None = None
    buffer: int = Field(default=32, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> "SplitSpec":
        if self.stop is not None and self.stop <= self.start:
            raise ValueError(f"split stop {self.stop} must be greater than start {self.start}")
        return self


class PolygonSplitSpec(BaseModel):
    """Validation on whole held-out polygons (geoseg.training.splits), for sparse labels.

    ``polygons`` is the share of each class's polygons held out (at least one of every class with two or
    more); training labels within ``buffer`` px of them are dropped. Written ``validation: {polygons: 0.2}``.
    """

    model_config = ConfigDict(extra="forbid")     # never mistaken for a block split's keys

    polygons: float = Field(default=0.2, gt=0, lt=1)
    buffer: int = Field(default=2, ge=0)


class AugmentSpec(BaseModel):
    """Random augmentation of training windows; geometric ones move image and labels together."""

    flip: bool = True
    rot90: bool = True
    rotate_degrees: float = Field(default=0.0, ge=0, le=180, description="free rotation in [-d, d]")
    rotate_probability: float = Field(default=0.5, ge=0, le=1)
    brightness: float = Field(default=0.1, ge=0, description="per-band additive shift, in std units")
    contrast: float = Field(default=0.1, ge=0, lt=1, description="per-band gain in [1-c, 1+c]")
    noise_std: float = Field(default=0.02, ge=0, description="Gaussian noise, in std units")
    cutmix: float = Field(default=0.0, ge=0, le=1, description="CutMix: chance that a window gets a box of image "
                          "and labels pasted from another window of the batch (0: off)")
    mixup: float = Field(default=0.0, ge=0, description="mixup: each batch blended with a shuffled copy of itself "
                         "by lam ~ Beta(mixup, mixup), targets blended alike (0: off)")


class LossSpec(BaseModel):
    """``ce_weight·CE + dice_weight·Dice``; class weights: none, a list, or ``auto`` (inverse sqrt frequency)."""

    ce_weight: float = Field(default=1.0, ge=0)
    dice_weight: float = Field(default=0.5, ge=0)
    class_weights: Literal["none", "auto"] | list[float] = "auto"
    max_class_weight: float = Field(default=10.0, gt=0)


class OptimSpec(BaseModel):
    name: Literal["adam", "adamw"] = "adamw"
    lr: float = Field(default=2e-3, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    schedule: Literal["constant", "cosine", "onecycle"] = "onecycle"
    warmup_fraction: float = Field(default=0.1, ge=0, lt=1, description="onecycle: fraction of steps warming up")


class SelfTrainingSpec(BaseModel):
    """Self-training on the unlabelled scene (geoseg.training.pseudo): after ``start`` of the budget (epochs
    or time limit, whichever comes first), the best model so far labels every pixel it predicts with
    probability >= ``confidence``, and training goes on with those labels beside the given ones."""

    model_config = ConfigDict(extra="forbid")

    start: float = Field(default=0.5, gt=0, lt=1, description="share of the budget trained on the given labels alone")
    confidence: float = Field(default=0.9, gt=0.5, le=1, description="softmax probability a pseudo-label needs")


class TrainSpec(BaseModel):
    epochs: int = Field(default=20, ge=1)
    iterations_per_epoch: int = Field(default=50, ge=1)
    batch_size: int = Field(default=16, ge=1)
    window: int = Field(default=128, ge=16, description="training window side in px")
    class_balanced: float | Literal["auto"] = Field(
        default="auto", description="share of windows placed around a pixel of a class drawn uniformly, or with "
        "task instance around an object drawn uniformly (the rest: uniform over the training area); auto: 1 for "
        "sparse labels (polygons: a uniform window mostly holds no label), else 0 (always 0 for instances)")
    patience: int | None = Field(default=None, ge=1, description="early stopping: epochs without a better val mIoU")
    min_delta: float = Field(default=0.0, ge=0)
    precise_bn_batches: int = Field(default=0, ge=0, description="before each validation, recompute BatchNorm "
                                    "statistics as the plain average over this many training batches (0: keep the "
                                    "running averages, which drift with the last few correlated windows)")
    time_limit_minutes: float | None = Field(default=None, gt=0, description="stop after the epoch that passes it; "
                                             "the LR schedule then runs on time, ending annealed")
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    threads: int | None = Field(default=None, ge=1)
    self_training: SelfTrainingSpec | None = Field(default=None, description="add the model's confident "
                                                   "predictions as labels part way through (sparse labels)")


    @model_validator(mode="after")
    def _share(self) -> "TrainSpec":
        if self.class_balanced != "auto" and not 0 <= self.class_balanced <= 1:
            raise ValueError(f"class_balanced {self.class_balanced} must be between 0 and 1, or auto")
        return self


#: The training budget of a config that sets none (no epochs, steps per epoch nor time limit): the schedule
#: runs on time and ends annealed within it, whatever the machine (the 1 000 default steps of 128 px
#: windows took over an hour on one CPU core). 8 minutes leave room for reading the scene, the RandomForest
#: comparison and the final evaluation within 10 (measured: 11-12 minutes in all with a 10-minute budget).
DEFAULT_TIME_LIMIT_MINUTES = 8.0

#: The network a ``task: instance`` config trains when it names none.
DEFAULT_INSTANCE_MODEL = {"architecture": "MaskRCNN", "encoder": "resnet18"}


class TrainConfig(BaseModel):
    """Everything ``geoseg train`` needs (see configs/zion_landcover.yaml, configs/spacenet_buildings.yaml).

    ``task: instance`` trains a Mask R-CNN on polygons, one object each (:mod:`geoseg.training.instances`);
    ``loss`` is then unused (Mask R-CNN has its own losses) and free rotation is not offered.
    """

    format_version: int = CONFIG_VERSION
    #: Left out: the YAML file's name (the first scene's, for a config made in Python).
    name: str | None = None
    description: str = ""
    task: Literal["semantic", "instance"] = "semantic"
    scenes: list[SceneSpec] = Field(min_length=1)
    #: Left out: whole held-out polygons for sparse labels (:mod:`geoseg.training.splits`), else the last rows
    #: of the first scene that hold a fifth of its labelled pixels (:meth:`completed`).
    validation: SplitSpec | PolygonSplitSpec | None = None
    #: A second block kept from training *and* from model selection (which uses ``validation``), so the
    #: scores recorded in the bundle are not tuned on the pixels they are measured on.
    test: SplitSpec | None = None
    #: Left out: the first scene's band descriptions, else "band 1", "band 2"...
    band_names: list[str] | None = Field(default=None, min_length=1)
    #: Left out: the first scene's data type.
    input_dtype: str | None = None
    input_nodata: float | None = None
    #: Spectral indices fed as extra channels (geoseg.model.indices): ``auto`` takes every one the band
    #: names allow (none for unrecognised names), a list names them, ``[]`` turns them off.
    indices: Literal["auto"] | list[str] = "auto"
    #: Left out: the classes the first scene's labels hold (:func:`~geoseg.evaluation.labels.labels_scheme`).
    classes: list[ClassInfo] | None = Field(default=None, min_length=1)
    nodata_id: int = 255
    #: A small context network that trains in minutes on a CPU (the default model's).
    model: ModelSpec = ModelSpec(architecture="ContextFCN", encoder=None, encoder_depth=1, hidden=[64])
    tile_size: int = Field(default=256, ge=16, description="tile size recorded for inference")
    overlap: int = Field(default=32, ge=0)
    clip_percentiles: tuple[float, float] | None = Field(default=(0.5, 99.5), description="fixed normalisation: "
                                                         "the clip range of the training pixels")
    normalisation: Normalisation = Field(default="fixed", description="fixed: the training pixels' statistics, "
                                         "stored in the bundle (one value scale); scene: every scene standardised by "
                                         "its own sampled statistics (DN, reflectance or 8-bit alike; pair it with "
                                         "augment.brightness/contrast, the gain/offset left after standardising)")
    augment: AugmentSpec = AugmentSpec()
    loss: LossSpec = LossSpec()
    optimiser: OptimSpec = OptimSpec()
    train: TrainSpec = TrainSpec()
    output_dir: Path = Path("runs")
    half: bool = Field(default=True, description="store the final bundle's weights as fp16")
    compare_random_forest: bool = Field(default=True, description="score a RandomForest trained on the same "
                                        "pixels beside the model (bundle metrics, training report)")
    provenance: dict[str, str] = Field(default_factory=dict, description="data sources and credits")
    _source: dict | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _instance_model(cls, raw: object) -> object:
        if isinstance(raw, dict) and raw.get("task") == "instance" and "model" not in raw:
            return {**raw, "model": DEFAULT_INSTANCE_MODEL}
        return raw

    @model_validator(mode="after")
    def _consistent(self) -> "TrainConfig":
        if (self.task == "instance") != (self.model.architecture in INSTANCE_ARCHITECTURES):
            raise ValueError(f"task {self.task!r} does not fit model.architecture {self.model.architecture!r} "
                             f"(instance models: {', '.join(INSTANCE_ARCHITECTURES)})")
        if self.task == "instance":
            if any(c.id == 0 for c in self.classes):
                raise ValueError("an instance model's class ids start at 1 (0 is the background)")
            if isinstance(self.validation, PolygonSplitSpec):
                raise ValueError("validation on held-out polygons is for task semantic; give an instance model a "
                                 "block (axis, start)")
            if self.augment.rotate_degrees:
                raise ValueError("augment.rotate_degrees: free rotation is not offered for instance training "
                                 "(flips and 90° turns are); set it to 0")
        for scene in self.scenes:
            if scene.bands is not None and self.band_names and len(scene.bands) != len(self.band_names):
                raise ValueError(f"{scene.scene}: bands {scene.bands} do not match band_names {self.band_names}")
        if isinstance(self.loss.class_weights, list) and self.classes and len(self.loss.class_weights) != len(
                self.classes):
            raise ValueError(f"loss.class_weights has {len(self.loss.class_weights)} values for "
                             f"{len(self.classes)} classes")
        if self.classes:
            ClassScheme(classes=self.classes, nodata_id=self.nodata_id)
        if self.band_names is not None:
            check_indices(self.index_names(), self.band_names)
        try:
            check_tiling(self.tile_size, self.overlap)      # what the bundle will record for inference
        except ParameterError as err:
            raise ValueError(err.render(lambda name: "tile_size" if name == "tile" else name)) from None
        if self.test is not None and isinstance(self.validation, PolygonSplitSpec):
            raise ValueError("a test block goes with a block validation (axis, start); with validation on "
                             "held-out polygons, score the model with `geoseg evaluate` on other labels")
        if self.test is not None and self.validation is not None:
            val, test = self.validation, self.test
            if test.axis != val.axis:
                raise ValueError(f"test.axis {test.axis!r} must equal validation.axis {val.axis!r}")
            if test.start < (val.stop if val.stop is not None else math.inf) and val.start < (
                    test.stop if test.stop is not None else math.inf):
                raise ValueError(f"the test block ({test.start}..{test.stop or 'end'}) overlaps the validation "
                                 f"block ({val.start}..{val.stop or 'end'})")
        return self

    def index_names(self) -> list[str]:
        """The derived index channels this config trains with."""
        return usable_indices(self.band_names) if self.indices == "auto" else list(self.indices)

    @property
    def scheme(self) -> ClassScheme:
        if not self.classes:
            raise ConfigError(f"{self.name}: the classes come from the labels; read them with completed() first")
        return ClassScheme(classes=self.classes, nodata_id=self.nodata_id)

    def completed(self) -> "TrainConfig":
        """This config with what it leaves out filled in from its first scene and the labels (a scene, its
        labels and, for polygons, the class column are all a config needs); a config that sets no budget
        gets :data:`DEFAULT_TIME_LIMIT_MINUTES`."""
        update: dict = {}
        if not {"epochs", "iterations_per_epoch", "time_limit_minutes"} & self.train.model_fields_set:
            update["train"] = TrainSpec.model_validate({**self.train.model_dump(exclude_unset=True),
                                                        "time_limit_minutes": DEFAULT_TIME_LIMIT_MINUTES})
        if all(getattr(self, k) is not None for k in ("name", "validation", "band_names", "input_dtype", "classes")):
            return self._updated(update)
        first = self.scenes[0]
        with open_raster(first.scene) as dataset:
            count = len(first.bands) if first.bands else dataset.count
            descriptions = [dataset.descriptions[i - 1] for i in (first.bands or range(1, count + 1))]
            update["name"] = self.name or Path(first.scene).stem
            if self.band_names is None:
                named = all(descriptions) and len(set(descriptions)) == len(descriptions)
                update["band_names"] = list(descriptions) if named else [f"band {i}" for i in range(1, count + 1)]
            update["input_dtype"] = self.input_dtype or dataset.dtypes[0]
            classes = self.classes or labels_scheme(first.labels, first.class_column, first.ignore_ids).classes
            update["classes"] = classes
            if self.validation is None:
                scheme = ClassScheme(classes=classes, nodata_id=self.nodata_id)
                labels = LabelSource(first.labels, scheme, first.class_column, first.ignore_ids).read(
                    dataset.crs, dataset.transform, dataset.height, dataset.width)
                labelled = labels != IGNORE_INDEX     # sparse polygons: some held out whole; a map: a row block
                sparse = self.task == "semantic" and is_sparse(labels, np.ones_like(labelled))
                update["validation"] = PolygonSplitSpec() if sparse else default_validation(labelled, first.labels)
        return self._updated(update)

    def _updated(self, update: dict) -> "TrainConfig":
        """A copy with ``update`` applied that keeps the config's source text (its provenance)."""
        if not update:
            return self
        done = self.model_copy(update=update)
        done._source = self._source
        return done

    @property
    def scheme_ids(self) -> np.ndarray:
        """Class id of each model output channel."""
        return np.array([c.id for c in self.classes], np.uint8)

    def source_dict(self) -> dict:
        """The config as written (YAML paths unresolved, so no local paths leak into a shipped bundle)."""
        return self._source if self._source is not None else self.model_dump(mode="json")

    def band_specs(self, stats: list[tuple[float, float, float | None, float | None]]) -> list[BandSpec]:
        return [BandSpec(name=n, mean=m, std=s, clip_low=lo, clip_high=hi)
                for n, (m, s, lo, hi) in zip(self.band_names, stats)]

    def with_overrides(self, epochs: int | None = None, device: str | None = None,
                       output_dir: Path | None = None) -> "TrainConfig":
        """The command line's overrides of a loaded config (the source text is kept for provenance)."""
        given = {k: v for k, v in (("epochs", epochs), ("device", device)) if v is not None}
        # only what the config and the command line set counts as set (completed() reads it for the budget)
        update: dict = {"train": TrainSpec.model_validate({**self.train.model_dump(exclude_unset=True), **given})}
        if output_dir is not None:
            update["output_dir"] = output_dir.resolve()
        return self._updated(update)

    def resolved(self, base: Path) -> "TrainConfig":
        """Paths made absolute against ``base`` (the YAML file's folder)."""
        scenes = [s.model_copy(update={"scene": _under(base, s.scene), "labels": _under(base, s.labels)})
                  for s in self.scenes]
        resolved = self.model_copy(update={"scenes": scenes, "output_dir": _under(base, self.output_dir)})
        resolved._source = self.source_dict()
        return resolved


#: The share of the labelled pixels a config without ``validation`` holds out for choosing the epoch.
VALIDATION_SHARE = 0.2


def default_validation(labelled: np.ndarray, where: object) -> SplitSpec:
    """The bottom rows that hold ``VALIDATION_SHARE`` of the ``labelled`` pixels (a mask on the scene grid),
    buffered from the training rows above them."""
    per_row = labelled.sum(axis=1)
    from_bottom = np.cumsum(per_row[::-1])
    start = len(per_row) - 1 - int(np.searchsorted(from_bottom, VALIDATION_SHARE * from_bottom[-1]))
    split = SplitSpec(axis="rows", start=max(start, 0))
    if start <= 0 or not per_row[:max(0, start - split.buffer)].any():
        raise ConfigError(f"{where}: the labels lie in too few rows to hold a validation block out of them; set "
                          "'validation:' (rows or columns) in the config")
    return split


def _under(base: Path, path: Path) -> Path:
    return path if path.is_absolute() else (base / path).resolve()


def load_config(path: str | os.PathLike, require_data: bool = False) -> TrainConfig:
    """Read and validate a YAML config; errors name the file and the offending key.

    ``require_data`` also refuses, naming the key, a config whose scene or labels files are missing (for
    training; a config read for its legend needs no data)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config not found; pass a YAML file such as configs/sample_quickstart.yaml")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    raw = upgrade(raw, current=CONFIG_VERSION, upgraders=_UPGRADERS, unversioned=1, where=path,
                  what="training config", error=ConfigError, fix_old="write it again for this geoseg")
    _refuse_unknown_keys(raw, TrainConfig, path)
    try:
        config = TrainConfig.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        raise ConfigError(f"{path}: {where}: {first['msg']}") from err
    if config.name is None:
        config = config.model_copy(update={"name": path.stem})
    config._source = raw
    resolved = config.resolved(path.parent.resolve())
    if require_data:
        _require_data(resolved, path)
    return resolved


def _require_data(config: TrainConfig, path: Path) -> None:
    """Name the config and the key of a scene or labels file that is missing (data rarely ships with a
    config: the message sends the user to the config, whose comments should say where its data comes from)."""
    for index, spec in enumerate(config.scenes):
        for key in ("scene", "labels"):
            file = getattr(spec, key)
            if not str(file).startswith("/vsi") and not file.exists():
                raise ConfigError(f"{path}: scenes[{index}].{key}: {file} not found; get the data the config's "
                                  "comments point to, or change the path")


def _refuse_unknown_keys(raw: object, model: type[BaseModel], path: Path, where: str = "") -> None:
    """A misspelt key (``epoch:``, ``output_dri:``) is an error with a suggestion, never silently ignored."""
    if not isinstance(raw, dict):
        return
    fields = model.model_fields
    for key, value in raw.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"did you mean '{where}{close[0]}'?" if close else f"known keys: {', '.join(fields)}"
            raise ConfigError(f"{path}: unknown key '{where}{key}'; {hint}")
        nested = _models_in(fields[key].annotation)
        items = value if isinstance(value, list) else [value]
        for item in items:
            if nested and isinstance(item, dict):
                # a union of models (validation: a block or polygons): the one whose keys the item uses most
                chosen = max(nested, key=lambda m: len(set(item) & set(m.model_fields)))
                _refuse_unknown_keys(item, chosen, path, f"{where}{key}.")


def _models_in(annotation: object) -> list[type[BaseModel]]:
    """The pydantic models an annotation holds (``Spec``, ``Spec | None``, ``list[Spec]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def load_legend(path: str | os.PathLike) -> ClassScheme:
    """The class legend of a model bundle (.safetensors) or a training config (.yaml)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return read_meta(path).scheme
    if path.suffix in (".yaml", ".yml"):
        return load_config(path).completed().scheme
    raise InputFileError(f"{path}: a legend comes from a model bundle (.safetensors) or a training config (.yaml)")
