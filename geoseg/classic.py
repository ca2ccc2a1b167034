"""Classic, training-free segmentation: spectral-index thresholds with Otsu's threshold, seeded region growing.

They are the baselines a learned model must beat, and fallbacks when no model fits a scene. Thresholding
streams the scene twice in row blocks (a histogram pass for Otsu, then a classification pass) so memory
stays bounded; region growing needs connectivity across the whole scene and reads it at once.

Methods (``geoseg predict --method NAME``):

- ``ndwi-otsu``: McFeeters NDWI ``(green - nir) / (green + nir)`` above its Otsu threshold is water.
- ``ndvi-otsu``: NDVI ``(nir - red) / (nir + red)`` above its Otsu threshold is vegetation.
- ``ndwi-grow``: water grown from confident seeds (the cores of areas above the Otsu threshold: eroded
  by one pixel, which drops isolated speckle) into connected pixels whose NDWI stays within ``tolerance``
  of the region's mean: water bodies with their edges, not scattered dark pixels.

Objects (``--method bright-objects``, polygons out): :class:`BrightObjects`, threshold + connected
components on local contrast, the baseline for instance models.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import rasterio
from rasterio.windows import Window
from scipy import ndimage

from geoseg.io.legend import ClassInfo, ClassScheme
from geoseg.errors import InputFileError, ModelMismatchError, ParameterError
from geoseg.inference.tiling import row_windows
from geoseg.io.cog import (DEFAULT_OUTPUT_BLOCK, ClassMapWriter, check_output_block, deprecated_block_size,
                            require_geotiff_name)
from geoseg.io.rasters import gdal_env, ground_sample_distance, open_raster, read_tile, sample_windows
from geoseg.io.outputs import atomic_output, check_writable
from geoseg.io.sidecars import Sidecars
from geoseg.io.stac import Producer
from geoseg.model.instances import TileInstances
from geoseg.model.meta import BandSpec, BundleMeta, ModelSpec
from geoseg.summaries import PredictionSummary
from geoseg.progress import NullReporter, Reporter

MethodName = Literal["ndwi-otsu", "ndvi-otsu", "ndwi-grow"]
METHODS: tuple[str, ...] = ("ndwi-otsu", "ndvi-otsu", "ndwi-grow")
HIST_BINS = 1024
#: Rows per band the thresholding passes stream (memory: band_rows x width x 3 bands of float32).
DEFAULT_BAND_ROWS = 512
GROW_MAX_PIXELS = 200_000_000
#: Above this valley-to-peak ratio an index histogram has one mode, and Otsu's split is arbitrary
#: (measured: 1.00 for NDWI and NDVI of the semi-arid Zion sample, under 0.35 for every clearly two-class
#: NAIP, Landsat and Sentinel-2 scene in the project's data).
UNIMODAL_RATIO = 0.8
#: Histogram smoothing before looking for modes (bins of the 1024-bin histogram over [-1, 1]).
SMOOTH_BINS = 6


def normalised_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(a - b) / (a + b)`` in [-1, 1]; NaN where both are zero."""
    a = a.astype(np.float32)
    b = b.astype(np.float32)
    total = a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total != 0, (a - b) / np.where(total != 0, total, 1), np.nan).astype(np.float32)


def ndvi(red: np.ndarray, nir: np.ndarray) -> np.ndarray:
    return normalised_difference(nir, red)


def ndwi(green: np.ndarray, nir: np.ndarray) -> np.ndarray:
    return normalised_difference(green, nir)


def otsu_from_histogram(counts: np.ndarray, edges: np.ndarray) -> float:
    """The threshold between two bins that maximises the between-class variance (Otsu 1979)."""
    counts = np.asarray(counts, np.float64)
    if counts.sum() == 0:
        raise ValueError("Otsu threshold of an empty histogram")
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(counts)
    weight_high = counts.sum() - weight_low
    sum_low = np.cumsum(counts * centres)
    mean_low = sum_low / np.where(weight_low > 0, weight_low, 1)
    mean_high = (sum_low[-1] - sum_low) / np.where(weight_high > 0, weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    between[(weight_low == 0) | (weight_high == 0)] = -1
    return float(edges[int(np.argmax(between)) + 1])


def valley_to_peak(counts: np.ndarray, threshold: float) -> float:
    """How deep the valley at ``threshold`` is: the lowest smoothed count between the two modes on either
    side, over the smaller mode (near 0: two clear modes; 1: no valley, one mode split in two)."""
    from scipy.ndimage import gaussian_filter1d

    smooth = gaussian_filter1d(counts.astype(np.float64), SMOOTH_BINS)
    k = int(np.clip(np.searchsorted(np.linspace(-1, 1, len(counts) + 1), threshold) - 1, 1, len(counts) - 1))
    left, right = int(np.argmax(smooth[:k])), k + int(np.argmax(smooth[k:]))
    smaller = min(smooth[left], smooth[right])
    return float(smooth[left:right + 1].min() / smaller) if smaller > 0 else 1.0


def otsu_threshold(values: np.ndarray, bins: int = HIST_BINS, value_range: tuple[float, float] = (-1.0, 1.0)
                   ) -> float:
    """Otsu's threshold of the finite ``values`` (pixels ``> threshold`` form the upper class)."""
    finite = values[np.isfinite(values)]
    counts, edges = np.histogram(finite, bins=bins, range=value_range)
    return otsu_from_histogram(counts, edges)


def region_grow(values: np.ndarray, seeds: np.ndarray, tolerance: float, valid: np.ndarray | None = None
                ) -> np.ndarray:
    """Grow ``seeds`` (bool) into 4-connected pixels whose value is within ``tolerance`` of the region mean.

    Each round adds every neighbour within tolerance of the current mean, then updates the mean, until no
    pixel joins: a vectorised form of seeded region growing (Adams & Bischof 1994) without its ordering.
    """
    region = seeds.copy()
    allowed = np.isfinite(values) if valid is None else (valid & np.isfinite(values))
    region &= allowed
    if not region.any():
        return region
    total, count = float(values[region].sum()), int(region.sum())
    cross = ndimage.generate_binary_structure(2, 1)
    while True:
        mean = total / count
        frontier = ndimage.binary_dilation(region, cross) & ~region & allowed
        joins = frontier & (np.abs(values - mean) <= tolerance)
        if not joins.any():
            return region
        region |= joins
        total += float(values[joins].sum())
        count += int(joins.sum())


def band_roles(names: Sequence[str | None]) -> dict[str, int]:
    """0-based positions of the green, red and NIR bands among band ``names`` (descriptions), for the roles
    exactly one name matches ("nir", "B5 NIR", "red_edge" is not red)."""
    lowered = [(n or "").lower() for n in names]
    found: dict[str, int] = {}
    for role in ("green", "red", "nir"):
        matches = [i for i, n in enumerate(lowered) if role in n.replace("_", " ").split() or n.endswith(role)]
        if len(matches) == 1:
            found[role] = matches[0]
    return found


@dataclass(frozen=True)
class BandRoles:
    """1-based scene bands for the colours the indices need."""

    green: int
    red: int
    nir: int

    @classmethod
    def from_dataset(cls, dataset: rasterio.DatasetReader, bands: list[int] | None = None) -> "BandRoles":
        """Explicit ``bands`` (green,red,nir), else band descriptions containing green/red/nir."""
        where = str(dataset.name)
        if bands:
            if len(bands) != 3 or not all(1 <= b <= dataset.count for b in bands):
                raise ParameterError("bands", bands, f"index methods take green,red,nir: three band numbers in "
                                     f"1..{dataset.count} of {where}")
            return cls(*bands)
        found = {role: i + 1 for role, i in band_roles(dataset.descriptions).items()}
        if len(found) != 3:
            raise ModelMismatchError(f"{where}: cannot tell which bands are green, red and NIR from their "
                                     f"descriptions {dataset.descriptions}; pass {{bands}} GREEN,RED,NIR (1-based)",
                                     parameters=("bands",))
        return cls(found["green"], found["red"], found["nir"])


def default_scheme(method: str) -> ClassScheme:
    """Two classes: the index's target (id 1) and the rest (id 2)."""
    if method.startswith("ndwi"):
        return ClassScheme(classes=[ClassInfo(id=1, name="water", color="#466b9f"),
                                    ClassInfo(id=2, name="not water", color="#d9d2b6")])
    return ClassScheme(classes=[ClassInfo(id=1, name="vegetation", color="#68ab5f"),
                                ClassInfo(id=2, name="not vegetation", color="#b3ac9f")])


class ClassicMethod:
    """A threshold or region-growing classifier writing ``above`` / ``below`` class ids."""

    def __init__(self, method: str, above: ClassInfo | None = None, below: ClassInfo | None = None,
                 tolerance: float = 0.15):
        if method not in METHODS:
            raise ParameterError("method", method, f"unknown; use one of {', '.join(METHODS)}")
        self.method = method
        defaults = default_scheme(method).classes
        self.above = above or defaults[0]
        self.below = below or defaults[1]
        self.scheme = ClassScheme(classes=[self.above, self.below])
        self.tolerance = tolerance

    def index(self, data: np.ndarray, roles: BandRoles, indexes: list[int]) -> np.ndarray:
        """The spectral index of ``data`` (bands in ``indexes`` order)."""
        band = {b: data[indexes.index(b)] for b in set(indexes)}
        if self.method.startswith("ndwi"):
            return ndwi(band[roles.green], band[roles.nir])
        return ndvi(band[roles.red], band[roles.nir])

    def classify(self, values: np.ndarray, threshold: float) -> np.ndarray:
        return np.where(values > threshold, self.above.id, self.below.id).astype(np.uint8)

    def predict(self, src: str | os.PathLike, dst: str | os.PathLike, *, bands: list[int] | None = None,
                output_block: int = DEFAULT_OUTPUT_BLOCK, band_rows: int = DEFAULT_BAND_ROWS,
                overwrite: bool = False, reporter: Reporter | None = None, block_size: int | None = None,
                qml: bool = True, stac: bool = True, threshold: float | None = None, nodata: float | None = None
                ) -> PredictionSummary:
        """Classify the scene ``src`` into a class-map COG ``dst`` (same grid, legend embedded; ``qml`` and
        ``stac``: its QGIS style and STAC Item beside it; ``nodata``: a fill value the scene does not declare).

        The scene streams in bands of ``band_rows`` full rows (memory); ``output_block`` is the output
        GeoTIFF's block side, as for models. ``block_size``, deprecated, used to set both.
        """
        if block_size is not None:
            output_block = band_rows = deprecated_block_size(block_size, output_block, "ClassicMethod.predict")
        check_output_block(output_block)
        if band_rows < 1:
            raise ParameterError("band_rows", band_rows, "must be at least 1")
        reporter = reporter or NullReporter()
        check_writable(dst, overwrite, inputs=[src])
        require_geotiff_name(dst)
        sidecars = Sidecars(qml=qml, stac=stac)
        sidecars.check(dst, overwrite)
        t0 = time.perf_counter()
        with gdal_env(), open_raster(src) as dataset:
            roles = BandRoles.from_dataset(dataset, bands)
            indexes = sorted({roles.green, roles.red, roles.nir})
            blocks = row_windows(dataset.height, dataset.width, band_rows)
            reporter.start(2 * len(blocks), "blocks", megapixels=dataset.width * dataset.height / 1e6)
            counts = np.zeros(HIST_BINS, np.int64)
            for window in blocks:
                data, valid = _read(dataset, indexes, window, nodata)
                values = self.index(data, roles, indexes)[valid]
                counts += np.histogram(values[np.isfinite(values)], bins=HIST_BINS, range=(-1, 1))[0]
                reporter.advance()
            if counts.sum() == 0:
                raise InputFileError(f"{src}: no valid pixels to threshold")
            threshold = self._threshold(counts, threshold, src, reporter)
            grown = self._grow(dataset, roles, indexes, threshold, nodata) if self.method == "ndwi-grow" else None

            def classify(window: Window) -> tuple[np.ndarray, np.ndarray]:
                data, valid = _read(dataset, indexes, window, nodata)
                if grown is not None:
                    rows = slice(window.row_off, window.row_off + window.height)
                    return np.where(grown[rows], self.above.id, self.below.id).astype(np.uint8), valid
                return self.classify(self.index(data, roles, indexes), threshold), valid

            summary = write_class_map(dataset, src, dst, self.scheme, blocks, classify, output_block=output_block,
                                      overwrite=overwrite, reporter=reporter, started=t0,
                                      precision=f"{self.method} threshold {threshold:.4f}", threshold=float(threshold))
        sidecars.write(dst, src, self.producer(float(threshold)), overwrite=overwrite)
        reporter.done(**summary.model_dump())
        return summary

    def _threshold(self, counts: np.ndarray, given: float | None, src: object, reporter: Reporter) -> float:
        """Otsu's threshold of the index histogram, or the caller's. Otsu always finds a split, even in a
        histogram with one mode (a desert has no water): then the split is arbitrary, and the user is told
        loudly, with the histogram's valley-to-peak ratio."""
        if given is not None:
            if not -1 <= given <= 1:
                raise ParameterError("threshold", given, "an index threshold lies between -1 and 1")
            return float(given)
        threshold = otsu_from_histogram(counts, np.linspace(-1, 1, HIST_BINS + 1))
        ratio = valley_to_peak(counts, threshold)
        if ratio > UNIMODAL_RATIO:
            above = counts[np.searchsorted(np.linspace(-1, 1, HIST_BINS + 1), threshold):].sum() / counts.sum()
            reporter.warn(f"{src}: the {self.method.split('-')[0].upper()} histogram has one mode, not two "
                          f"(valley/peak {ratio:.2f}); Otsu's threshold {threshold:.3f} splits it arbitrarily and "
                          f"calls {above:.0%} of the scene {self.above.name}: the map is probably wrong; set the "
                          "threshold yourself (--threshold, threshold=) if you know it")
        return threshold

    def producer(self, threshold: float) -> Producer:
        """This method as the maker of a class map, for its STAC Item."""
        parameters: dict[str, float] = {"threshold": threshold}
        if self.method == "ndwi-grow":
            parameters["tolerance"] = self.tolerance
        return Producer(kind="method", name=self.method,
                        description=f"{self.method}: {self.above.name} or {self.below.name}", parameters=parameters)

    def _grow(self, dataset: rasterio.DatasetReader, roles: BandRoles, indexes: list[int], threshold: float,
              fill: float | None) -> np.ndarray:
        if dataset.width * dataset.height > GROW_MAX_PIXELS:
            raise ParameterError("method", self.method, f"region growing holds the whole scene in memory and is "
                                 f"limited to {GROW_MAX_PIXELS / 1e6:.0f} MP ({dataset.name} has "
                                 f"{dataset.width * dataset.height / 1e6:.0f} MP); use {{method}} ndwi-otsu or crop "
                                 "the scene")
        data, valid = _read(dataset, indexes, Window(0, 0, dataset.width, dataset.height), fill)
        values = self.index(data, roles, indexes)
        cores = ndimage.binary_erosion(valid & (values > threshold), ndimage.generate_binary_structure(2, 1))
        return region_grow(values, cores, self.tolerance, valid)


def write_class_map(dataset: rasterio.DatasetReader, src: object, dst: str | os.PathLike, scheme: ClassScheme,
                    blocks: list[Window], classify: Callable[[Window], tuple[np.ndarray, np.ndarray]], *,
                    output_block: int, overwrite: bool, reporter: Reporter, started: float, precision: str,
                    threshold: float | None = None) -> PredictionSummary:
    """Write the class ids ``classify`` returns for each block (with its validity: invalid pixels get the
    nodata id) into the class-map COG ``dst`` on ``dataset``'s grid, atomically; the run's summary.

    Every classic method writes its map here, one block in memory at a time."""
    class_counts = np.zeros(256, np.int64)
    profile = {"width": dataset.width, "height": dataset.height, "crs": dataset.crs, "transform": dataset.transform}
    with atomic_output(dst, overwrite, inputs=[src]) as tmp:
        writer = ClassMapWriter(tmp, profile, scheme, output_block)
        try:
            for window in blocks:
                classes, valid = classify(window)
                classes[~valid] = scheme.nodata_id
                class_counts += np.bincount(classes.ravel(), minlength=256)
                writer.write(classes, window.row_off, 0)
                reporter.advance()
            writer.finish()
        except BaseException:
            writer.abort()
            raise
    elapsed = time.perf_counter() - started
    names = scheme.names()
    pixel_area = abs(dataset.transform.a * dataset.transform.e - dataset.transform.b * dataset.transform.d)
    unit = dataset.crs.linear_units_factor[1] if dataset.crs and dataset.crs.is_projected else None
    return PredictionSummary(
        output=str(dst), probabilities=None, width=dataset.width, height=dataset.height, tiles_total=0,
        tiles_run=0, tiles_skipped=0, elapsed_s=round(elapsed, 3),
        megapixels_per_s=round(dataset.width * dataset.height / 1e6 / max(elapsed, 1e-9), 3),
        device="cpu", precision=precision,
        pixels_per_class={names[i]: int(class_counts[i]) for i in names if class_counts[i]},
        area_m2_per_class=({names[i]: float(class_counts[i] * pixel_area * unit ** 2) for i in names
                            if class_counts[i]} if unit else {}),
        threshold=threshold)


def _read(dataset: rasterio.DatasetReader, indexes: list[int], window: Window, fill: float | None
          ) -> tuple[np.ndarray, np.ndarray]:
    data, valid = read_tile(dataset, indexes, window.row_off, window.col_off, window.height, window.width,
                            fill=fill)
    valid &= np.isfinite(data).all(axis=0)
    return data, valid


def predict_method(method: str, src: str | os.PathLike, dst: str | os.PathLike, **options: object
                   ) -> PredictionSummary:
    """``geoseg predict --method``: classify ``src`` with a classic method into ``dst``."""
    return ClassicMethod(method).predict(src, dst, **options)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ objects
#: Classic methods that find objects (``geoseg predict --method bright-objects -o objects.gpkg``).
OBJECT_METHODS: tuple[str, ...] = ("bright-objects",)
#: bright-objects: the widest object it looks for (m), and the smallest and largest object areas (m²).
OBJECT_WIDTH_M, OBJECT_MIN_M2, OBJECT_MAX_M2 = 40.0, 15.0, 1500.0
#: bright-objects: how far above the background's contrast an object stands, in robust standard deviations.
OBJECT_SIGMAS = 5.0


def finds_objects(model: str | os.PathLike | None, method: str | None = None) -> bool:
    """Whether a run finds objects: an object method (``method``, or ``model`` naming one), or a bundle whose
    task is ``instance``. Anything else, a missing file included, is left to the class-map path to load."""
    if method is not None or (model is not None and str(model) in OBJECT_METHODS):
        return (method or str(model)) in OBJECT_METHODS
    if model is None or Path(model).suffix.lower() == ".onnx" or not Path(model).is_file():
        return False
    from geoseg.model.loading import read_meta

    return read_meta(model).task == "instance"


class BrightObjects:
    """Objects brighter than their surroundings: a training-free baseline for buildings and the like.

    The scene's brightness (the mean of its bands) minus its grey-level opening by a square of
    ``OBJECT_WIDTH_M`` (a white top-hat: what stands out of the local background over a narrower width)
    is thresholded (``OBJECT_SIGMAS`` robust deviations above the background's contrast, from samples of the
    whole scene, or the caller's threshold), opened by one pixel,
    hole-filled and split into 4-connected components; components of ``OBJECT_MIN_M2`` to ``OBJECT_MAX_M2``
    are objects, scored by their mean contrast over three thresholds. It runs tile by tile in the object
    engine like a model (an :class:`~geoseg.model.instances.InstanceDetector`), merged across tiles alike.
    """

    def __init__(self, meta: BundleMeta, threshold: float, width_px: int, min_px: int, max_px: int):
        self.meta, self.threshold = meta, threshold
        self.width_px, self.min_px, self.max_px = width_px, min_px, max_px

    @classmethod
    def for_scene(cls, src: str | os.PathLike, bands: list[int] | None = None, threshold: float | None = None,
                  fill: float | None = None) -> "BrightObjects":
        """The method set up for a scene: its bands, resolution and brightness threshold (``fill``: a fill
        value the scene does not declare, left out of the background as the engine leaves it out of objects)."""
        with gdal_env(), open_raster(src) as dataset:
            indexes = bands or list(range(1, dataset.count + 1))
            if not all(1 <= b <= dataset.count for b in indexes):
                raise ParameterError("bands", bands, f"band numbers must lie in 1..{dataset.count} of {src}")
            gsd = ground_sample_distance(dataset)
            if gsd is None:
                raise InputFileError(f"{src}: bright-objects needs the scene's pixel size in metres (a projected "
                                     "CRS) to size objects; reproject the scene")
            width_px = max(3, round(OBJECT_WIDTH_M / gsd))
            tile = max(256, 4 * width_px)
            meta = BundleMeta(
                name="bright-objects", model=ModelSpec(architecture="bright-objects", encoder=None),
                bands=[BandSpec(name=(dataset.descriptions[b - 1] or f"band {b}")) for b in indexes],
                input_dtype=dataset.dtypes[0], input_nodata=dataset.nodata,
                scheme=ClassScheme(classes=[ClassInfo(id=1, name="object", color="#e31a1c")]),
                gsd=gsd, tile_size=tile, overlap=tile // 4 if tile // 4 > width_px else width_px)
            method = cls(meta, 0.0, width_px, max(1, round(OBJECT_MIN_M2 / gsd ** 2)),
                         round(OBJECT_MAX_M2 / gsd ** 2))
            if threshold is None:
                threshold = method._background_threshold(dataset, indexes, fill)
        if threshold <= 0:
            raise ParameterError("threshold", threshold, "bright-objects takes a positive contrast (in the "
                                 "scene's units) above the local background")
        method.threshold = float(threshold)
        return method

    def contrast(self, tile: np.ndarray) -> np.ndarray:
        """White top-hat of the brightness of ``tile`` (bands, h, w)."""
        brightness = tile.mean(axis=0)
        return brightness - ndimage.grey_opening(brightness, size=(self.width_px, self.width_px))

    def detect(self, tiles: np.ndarray) -> list[TileInstances]:
        return [self._objects(tile) for tile in tiles]

    def _objects(self, tile: np.ndarray) -> TileInstances:
        contrast = self.contrast(tile)
        found = ndimage.binary_opening(contrast > self.threshold, iterations=1)
        found = ndimage.binary_fill_holes(found)
        labels, count = ndimage.label(found, ndimage.generate_binary_structure(2, 1))
        if count == 0:
            return TileInstances.empty(*tile.shape[1:])
        index = np.arange(1, count + 1)
        sizes = ndimage.sum_labels(found, labels, index)
        keep = index[(sizes >= self.min_px) & (sizes <= self.max_px)]
        means = ndimage.mean(contrast, labels, keep) if len(keep) else np.zeros(0)
        masks = labels[None] == keep[:, None, None]
        scores = np.clip(np.asarray(means) / (3 * self.threshold), 0, 1).astype(np.float32)
        return TileInstances(masks, scores, np.ones(len(keep), np.int32))

    def _background_threshold(self, dataset: rasterio.DatasetReader, indexes: list[int], fill: float | None
                              ) -> float:
        """``OBJECT_SIGMAS`` robust standard deviations (1.4826 x MAD) above the median contrast, over
        :func:`~geoseg.io.rasters.sample_windows` of the scene.

        Objects are rare (a few percent of a scene), so the contrast is mostly background texture; Otsu's
        split of such a histogram falls inside the texture and calls half of it objects.
        """
        values = []
        for w in sample_windows(dataset.height, dataset.width, side=max(256, 4 * self.width_px)):
            data, valid = read_tile(dataset, indexes, w.row_off, w.col_off, w.height, w.width, dataset.nodata,
                                    fill)
            values.append(self.contrast(data.astype(np.float32))[valid])
        sample = np.concatenate(values)
        if sample.size == 0:
            raise InputFileError(f"{dataset.name}: no valid pixels to threshold")
        median = float(np.median(sample))
        spread = 1.4826 * float(np.median(np.abs(sample - median)))
        return median + OBJECT_SIGMAS * max(spread, 1e-6)
