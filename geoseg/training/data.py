"""Training data: scenes with their labels in memory, a spatial split, normalisation, window sampling.

Windows are sampled by bounds (TorchGeo style): the training area of each scene is a set of pixel boxes
that exclude the validation block and its buffer; a box is picked in proportion to the window positions
it offers, then a window inside it, so no training window ever touches validation pixels. With class
balancing, a share of the windows is placed around a random pixel of a class drawn uniformly, which shows
the network rare classes (water, wetlands) far more often than their share of the area; the rest stay
uniform so that the common classes keep their true proportions.

Training scenes are held in memory (a 10k x 10k 4-band scene is 1.6 GB as float32); the area a user
labels for training is usually far smaller than the scenes they later predict on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from geoseg.errors import ConfigError, InputFileError
from geoseg.io.rasters import gdal_env, ground_sample_distance, open_raster, read_tile
from geoseg.model.fit import check_fit
from geoseg.model.indices import compute_indices
from geoseg.model.meta import BandSpec, BundleMeta
from geoseg.model.normalise import Normaliser
from geoseg.evaluation.labels import LabelSource
from geoseg.evaluation.metrics import IGNORE_INDEX
from geoseg.training.config import PolygonSplitSpec, SceneSpec, SplitSpec, TrainConfig
from geoseg.training.splits import polygon_split

STATS_SAMPLE = 2_000_000


@dataclass(frozen=True)
class Box:
    """Pixel rows ``[row0, row1)`` and columns ``[col0, col1)`` of a scene."""

    row0: int
    row1: int
    col0: int
    col1: int

    @property
    def height(self) -> int:
        return self.row1 - self.row0

    @property
    def width(self) -> int:
        return self.col1 - self.col0

    def positions(self, window: int) -> int:
        """How many window origins fit inside."""
        return max(0, self.height - window + 1) * max(0, self.width - window + 1)

    def window(self) -> Window:
        return Window(self.col0, self.row0, self.width, self.height)

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.row0, self.row1), slice(self.col0, self.col1)


def split_boxes(height: int, width: int, split: SplitSpec, test: SplitSpec | None = None
                ) -> tuple[list[Box], Box, Box | None]:
    """Training boxes, the validation block and the test block (None without one).

    Training gets the scene minus both blocks and their buffers; both blocks span the scene across ``axis``.
    """
    length = height if split.axis == "rows" else width
    blocks = [("validation", split)] + ([("test", test)] if test is not None else [])
    excluded = []
    for name, block in blocks:
        if block.start >= length:
            raise ConfigError(f"{name} start {block.start} is outside the scene ({length} {block.axis})")
        excluded.append((max(0, block.start - block.buffer), min(length, (block.stop or length) + block.buffer)))
    pieces, cursor = [], 0
    for a, b in sorted(excluded):
        pieces.append((cursor, a))
        cursor = max(cursor, b)
    pieces.append((cursor, length))
    train = [_band_box(height, width, split.axis, a, b) for a, b in pieces if b > a]

    def block_box(block: SplitSpec) -> Box:
        return _band_box(height, width, block.axis, block.start, min(block.stop or length, length))

    return train, block_box(split), (block_box(test) if test is not None else None)


def _band_box(height: int, width: int, axis: str, start: int, stop: int) -> Box:
    """Rows (or columns) ``[start, stop)`` across the whole scene."""
    return Box(start, stop, 0, width) if axis == "rows" else Box(0, height, start, stop)


@dataclass
class SceneData:
    """One scene's pixels (raw values, float32) and label indices, with its split."""

    path: Path
    image: np.ndarray
    labels: np.ndarray
    valid: np.ndarray
    train_boxes: list[Box]
    val_box: Box
    profile: dict = field(default_factory=dict)
    gsd: float | None = None
    test_box: Box | None = None
    #: Labels of the validation set where it is not simply ``labels`` inside ``val_box`` (held-out polygons).
    val_labels: np.ndarray | None = None

    def validation_labels(self) -> np.ndarray:
        """Labels of the validation block ``val_box`` (the scene's labels, or its held-out polygons only)."""
        labels = self.labels if self.val_labels is None else self.val_labels
        return labels[self.val_box.slices]


def read_scene(spec: SceneSpec, config: TrainConfig) -> tuple[np.ndarray, np.ndarray, dict, float | None]:
    """A scene's raw pixels (float32), validity, grid (``profile``: crs, transform, dtype…) and GSD, once it is
    checked to fit the config's bands and input dtype."""
    with gdal_env(), open_raster(spec.scene) as dataset:
        fit = check_fit(dataset, _meta_for_fit(config), spec.bands)
        if not fit.ok:
            raise fit.refusal(str(spec.scene))
        image, valid = read_tile(dataset, fit.band_indexes, 0, 0, dataset.height, dataset.width,
                                 config.input_nodata)
        profile = {"crs": dataset.crs, "transform": dataset.transform, "dtype": dataset.dtypes[0],
                   "indexes": fit.band_indexes, "nodata": dataset.nodata}
        gsd = ground_sample_distance(dataset)
    return image, valid, profile, gsd


def scene_split(spec: SceneSpec, config: TrainConfig, height: int, width: int
                ) -> tuple[list[Box], Box, Box | None]:
    """The config's split of one scene, refused when no training window fits beside its blocks."""
    train, val, test = split_boxes(height, width, config.validation, config.test)
    if not any(b.positions(config.train.window) for b in train):
        raise ConfigError(f"{spec.scene}: no {config.train.window}px training window fits outside the validation "
                         "and test blocks and their buffers; lower train.window or move the blocks")
    return train, val, test


def load_scene(spec: SceneSpec, config: TrainConfig) -> SceneData:
    """Read a scene and its labels onto the scene grid; invalid pixels are labelled IGNORE_INDEX."""
    image, valid, profile, gsd = read_scene(spec, config)
    labels = LabelSource(spec.labels, config.scheme, spec.class_column, spec.ignore_ids).read(
        profile["crs"], profile["transform"], image.shape[1], image.shape[2])
    labels[~valid] = IGNORE_INDEX
    if not (labels != IGNORE_INDEX).any():
        raise InputFileError(f"{spec.labels}: no labelled pixel falls on {spec.scene}; check the CRS, the extent "
                         f"and that the class ids match the config's classes")
    if isinstance(config.validation, PolygonSplitSpec):
        return _polygon_split_scene(spec.scene, image, labels, valid, profile, gsd, config.validation,
                                    config.train.window, config.train.seed)
    train, val, test = scene_split(spec, config, image.shape[1], image.shape[2])
    return SceneData(spec.scene, image, labels, valid, train, val, profile, gsd, test)


def _polygon_split_scene(path: Path, image: np.ndarray, labels: np.ndarray, valid: np.ndarray, profile: dict,
                         gsd: float | None, split: PolygonSplitSpec, window: int, seed: int) -> SceneData:
    """Whole polygons held out (geoseg.training.splits): training sees the whole scene minus their labels;
    the validation block is the box around the held-out polygons, scored on their pixels only."""
    height, width = labels.shape
    if min(height, width) < window:
        raise ConfigError(f"{path}: the scene ({width}x{height} px) is smaller than train.window {window}; "
                          "lower train.window")
    training, held = polygon_split(labels, split.polygons, split.buffer, seed)
    rows, cols = np.nonzero(held != IGNORE_INDEX)
    box = Box(int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1) if rows.size else Box(0, 1, 0, 1)
    return SceneData(path, image, training, valid, [Box(0, height, 0, width)], box, profile, gsd, None, held)


def require_labelled_blocks(scenes: list[SceneData], config: TrainConfig) -> None:
    """The validation (and test) block must hold labelled pixels in some scene: found before training,
    not after it (the run used to end in a misleading "model file not found")."""
    if isinstance(config.validation, PolygonSplitSpec):
        if not any((scene.validation_labels() != IGNORE_INDEX).any() for scene in scenes):
            raise ConfigError("validation on held-out polygons needs at least two polygons of some class (one is "
                              "held out, one trained on); draw more polygons, or validate on a block (axis, start)")
        return
    blocks = [("validation", lambda scene: scene.val_box, config.validation)]
    if config.test is not None:
        blocks.append(("test", lambda scene: scene.test_box, config.test))
    for name, box_of, spec in blocks:
        labelled = sum(int(np.count_nonzero(scene.labels[box_of(scene).slices] != IGNORE_INDEX))
                       for scene in scenes)
        if labelled == 0:
            raise ConfigError(f"{name} block ({spec.axis} {spec.start}..{spec.stop or 'end'}) holds no labelled pixel "
                              f"in any scene; move the {name} block where there are labels")


def _meta_for_fit(config: TrainConfig) -> BundleMeta:
    """The bundle metadata a scene must fit (bands by name, input dtype) before the model exists."""
    return BundleMeta(name=config.name, task=config.task, model=config.model,
                      bands=[BandSpec(name=n) for n in config.band_names], input_dtype=config.input_dtype,
                      scheme=config.scheme)


def training_pixels(scene: SceneData) -> np.ndarray:
    """Mask of the pixels training may look at (inside the training boxes)."""
    mask = np.zeros(scene.labels.shape, bool)
    for box in scene.train_boxes:
        mask[box.row0:box.row1, box.col0:box.col1] = True
    return mask


def normalisation_stats(scenes: list[SceneData], clip: tuple[float, float] | None, seed: int = 0
                        ) -> list[tuple[float, float, float | None, float | None]]:
    """Per band (mean, std, clip_low, clip_high) of the valid training pixels, after clipping to percentiles."""
    return _stats(_sample_pixels(scenes, seed).astype(np.float64), clip)


def derived_stats(scenes: list[SceneData], band_names: list[str], indices: list[str], seed: int = 0
                  ) -> list[tuple[float, float, float | None, float | None]]:
    """(mean, std, None, None) of each derived index over the same sampled pixels (indices need no clipping)."""
    if not indices:
        return []
    pixels = _sample_pixels(scenes, seed)
    return _stats(compute_indices(pixels[:, :, None], band_names, indices)[:, :, 0].astype(np.float64), None)


def _sample_pixels(scenes: list[SceneData], seed: int) -> np.ndarray:
    """Raw values (bands, n) of at most STATS_SAMPLE valid training pixels per scene, seeded."""
    rng = np.random.default_rng(seed)
    samples = []
    for scene in scenes:
        pixels = scene.image[:, training_pixels(scene) & scene.valid]
        if pixels.shape[1] > STATS_SAMPLE:
            pixels = pixels[:, rng.choice(pixels.shape[1], STATS_SAMPLE, replace=False)]
        samples.append(pixels)
    return np.concatenate(samples, axis=1)


def _stats(values: np.ndarray, clip: tuple[float, float] | None
           ) -> list[tuple[float, float, float | None, float | None]]:
    stats = []
    for band in values:
        low, high = (np.percentile(band, clip) if clip else (None, None))
        clipped = np.clip(band, low, high) if clip else band
        std = float(clipped.std()) or 1.0
        stats.append((float(clipped.mean()), std, None if low is None else float(low),
                      None if high is None else float(high)))
    return stats


def class_counts(scenes: list[SceneData], num_classes: int) -> np.ndarray:
    """Labelled training pixels per class index."""
    counts = np.zeros(num_classes, np.int64)
    for scene in scenes:
        labels = scene.labels[training_pixels(scene)]
        counts += np.bincount(labels[labels != IGNORE_INDEX], minlength=num_classes)[:num_classes]
    return counts


def normalise_scenes(scenes: list[SceneData], meta: BundleMeta) -> None:
    """Replace raw pixels by model inputs once, with the predictor's own normaliser (training sees what inference
    sees): the bundle's numbers, or each scene's own statistics from the same sample windows of the same
    pixels that a prediction of the scene file reads."""
    for scene in scenes:
        def read(window: Window, image: np.ndarray = scene.image, valid: np.ndarray = scene.valid
                 ) -> tuple[np.ndarray, np.ndarray]:
            rows, cols = window.toslices()
            return image[:, rows, cols], valid[rows, cols]

        scene.image = Normaliser.for_scene(meta, read, *scene.valid.shape)(scene.image, scene.valid)


class WindowSampler:
    """Random training windows (image float32 (C, s, s), labels uint8 (s, s)) from the training boxes."""

    def __init__(self, scenes: list[SceneData], size: int, num_classes: int, class_balanced: float = 0.0):
        self.scenes = scenes
        self.size = size
        self.boxes = [(i, box) for i, scene in enumerate(scenes) for box in scene.train_boxes
                      if box.positions(size)]
        weights = np.array([box.positions(size) for _, box in self.boxes], np.float64)
        self.box_p = weights / weights.sum()
        self.balanced = class_balanced
        self.by_class: list[list[np.ndarray]] = []
        if class_balanced > 0:
            self.by_class = self._pixels_by_class(num_classes)

    def _pixels_by_class(self, num_classes: int) -> list[list[np.ndarray]]:
        """For every class present: per box, the flat positions of its labelled pixels."""
        found: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
        for scene_index, box in self.boxes:
            labels = self.scenes[scene_index].labels[box.row0:box.row1, box.col0:box.col1]
            for c in range(num_classes):
                found[c].append(np.flatnonzero(labels == c))
        return [per_box for per_box in found if sum(len(p) for p in per_box)]

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        if self.by_class and rng.random() < self.balanced:
            per_box = self.by_class[rng.integers(len(self.by_class))]
            sizes = np.array([len(p) for p in per_box], np.float64)
            b = rng.choice(len(per_box), p=sizes / sizes.sum())
            scene_index, box = self.boxes[b]
            row, col = divmod(int(per_box[b][rng.integers(len(per_box[b]))]), box.width)
            half = self.size // 2
            r0 = int(np.clip(row - half + rng.integers(-half // 2, half // 2 + 1), 0, box.height - self.size))
            c0 = int(np.clip(col - half + rng.integers(-half // 2, half // 2 + 1), 0, box.width - self.size))
        else:
            b = rng.choice(len(self.boxes), p=self.box_p)
            scene_index, box = self.boxes[b]
            r0 = int(rng.integers(box.height - self.size + 1))
            c0 = int(rng.integers(box.width - self.size + 1))
        scene = self.scenes[scene_index]
        rows = slice(box.row0 + r0, box.row0 + r0 + self.size)
        cols = slice(box.col0 + c0, box.col0 + c0 + self.size)
        return scene.image[:, rows, cols], scene.labels[rows, cols]

    def batch(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        pairs = [self.sample(rng) for _ in range(n)]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def write_block(scene: SceneData, box: Box, kind: str, index_to_id: np.ndarray, folder: Path,
                band_names: list[str], nodata_id: int) -> tuple[Path, Path]:
    """A held-out block of a scene as a GeoTIFF pair (scene bands, label ids) for evaluation by the Predictor."""
    folder.mkdir(parents=True, exist_ok=True)
    transform = rasterio.windows.transform(box.window(), scene.profile["transform"])
    common = dict(driver="GTiff", width=box.width, height=box.height, crs=scene.profile["crs"],
                  transform=transform, tiled=True, blockxsize=256, blockysize=256, compress="deflate")
    image_path = folder / f"{scene.path.stem}_{kind}.tif"
    labels_path = folder / f"{scene.path.stem}_{kind}_labels.tif"
    image = scene.image[:, box.row0:box.row1, box.col0:box.col1]
    block_labels = scene.validation_labels() if kind == "validation" else scene.labels[box.slices]
    with rasterio.open(image_path, "w", count=image.shape[0], dtype=scene.profile["dtype"],
                       nodata=scene.profile.get("nodata"), **common) as out:
        out.write(image.astype(scene.profile["dtype"]))
        for i, name in enumerate(band_names, start=1):
            out.set_band_description(i, name)
    lut = np.append(index_to_id, np.full(256 - len(index_to_id), nodata_id)).astype(np.uint8)
    labels = lut[block_labels]
    with rasterio.open(labels_path, "w", count=1, dtype="uint8", nodata=nodata_id, **common) as out:
        out.write(labels, 1)
    return image_path, labels_path
