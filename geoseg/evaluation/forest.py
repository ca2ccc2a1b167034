"""A per-pixel RandomForest trained from an analyst's labels: the classic method learned models must beat.

Analysts who map from a few polygons reach for a RandomForest (dzetsaka, SCP in QGIS), so geoseg offers
one (``geoseg predict --method random-forest --labels LABELS``) and puts its score beside every trained
model's. Its features are the bands plus NDVI and NDWI where the band names say which bands are green,
red and NIR (the forest's strongest features on land cover). It learns from at most ``FOREST_PIXELS``
labelled pixels drawn uniformly from the labels (raster or polygons) and predicts the scene in row blocks,
so time and memory stay bounded whatever the scene's size. The forest is refit from the labels on every
run: a fitted forest is never stored (it could only be pickled).
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

from geoseg.classic import band_roles, ndvi, ndwi, write_class_map
from geoseg.errors import InputError, InputFileError, ParameterError
from geoseg.evaluation.labels import LabelSource, labels_scheme
from geoseg.evaluation.metrics import IGNORE_INDEX
from geoseg.inference.tiling import row_windows
from geoseg.io.cog import DEFAULT_OUTPUT_BLOCK, check_output_block, require_geotiff_name
from geoseg.io.legend import ClassScheme
from geoseg.io.outputs import check_writable
from geoseg.io.rasters import gdal_env, open_raster, read_tile
from geoseg.io.sidecars import Sidecars
from geoseg.io.stac import Producer
from geoseg.progress import NullReporter, Reporter
from geoseg.summaries import PredictionSummary

METHOD = "random-forest"
#: Labelled pixels the forest learns from, at most (drawn uniformly; an analyst's polygons hold fewer).
FOREST_PIXELS = 50_000
TREES = 100
MIN_SAMPLES_LEAF = 2
#: Rows per block read while sampling and predicting (memory: rows x width x features of float32).
BLOCK_ROWS = 256


def pixel_features(data: np.ndarray, names: Sequence[str | None]) -> np.ndarray:
    """Features (pixels, n) float32 of ``data`` (bands, h, w): the bands, then NDVI and NDWI when ``names``
    say which bands are red and NIR, and green and NIR."""
    roles = band_roles(names)
    columns = [band.ravel() for band in data]
    if {"red", "nir"} <= roles.keys():
        columns.append(np.nan_to_num(ndvi(data[roles["red"]], data[roles["nir"]])).ravel())
    if {"green", "nir"} <= roles.keys():
        columns.append(np.nan_to_num(ndwi(data[roles["green"]], data[roles["nir"]])).ravel())
    return np.stack(columns, axis=1).astype(np.float32, copy=False)


def feature_names(names: Sequence[str | None]) -> list[str]:
    """What :func:`pixel_features` computes, in order (for reports)."""
    roles = band_roles(names)
    indices = [index for index, needs in (("NDVI", {"red", "nir"}), ("NDWI", {"green", "nir"}))
               if needs <= roles.keys()]
    return [name or f"band {i + 1}" for i, name in enumerate(names)] + indices


def new_forest(seed: int = 0, trees: int = TREES) -> Any:
    """An unfitted RandomForestClassifier with geoseg's settings (scikit-learn is the ``train`` extra)."""
    try:
        from sklearn.ensemble import RandomForestClassifier
    except ImportError:
        raise InputError("the RandomForest needs scikit-learn: pip install 'geoseg[train]'") from None
    return RandomForestClassifier(n_estimators=trees, min_samples_leaf=MIN_SAMPLES_LEAF, n_jobs=-1,
                                  random_state=seed)


class RandomForestMethod:
    """A RandomForest fitted on a scene's labelled pixels, writing a class map in the labels' classes."""

    def __init__(self, labels: str | os.PathLike, *, class_column: str = "class", ignore_ids: Sequence[int] = (),
                 legend: ClassScheme | None = None, pixels: int = FOREST_PIXELS, trees: int = TREES, seed: int = 0):
        if pixels < 1:
            raise ParameterError("pixels", pixels, "must be at least 1")
        self.labels_path = Path(labels)
        self.scheme = legend or labels_scheme(labels, class_column, ignore_ids)
        self.source = LabelSource(labels, self.scheme, class_column, ignore_ids)
        self.pixels = pixels
        self.trees = trees
        self.seed = seed
        self.trained_on = 0

    def fit(self, dataset: rasterio.DatasetReader, indexes: list[int], fill: float | None = None) -> Any:
        """The forest fitted on up to ``pixels`` labelled, valid pixels of ``dataset`` (two passes over the
        labels in row blocks: count, then draw each labelled pixel with the same probability); ``fill``: a
        fill value the scene does not declare."""
        blocks = row_windows(dataset.height, dataset.width, BLOCK_ROWS)
        total = sum(int(np.count_nonzero(self._labels(dataset, w) != IGNORE_INDEX)) for w in blocks)
        if total == 0:
            raise InputFileError(f"{self.labels_path}: no labelled pixel falls on {dataset.name}; check the CRS, "
                                 "the extent and the class ids")
        share = min(1.0, self.pixels / total)
        rng = np.random.default_rng(self.seed)
        names = [dataset.descriptions[i - 1] for i in indexes]
        features, targets = [], []
        for window in blocks:
            labels = self._labels(dataset, window).ravel()
            picked = np.flatnonzero((labels != IGNORE_INDEX) & (rng.random(labels.size) < share))
            if not picked.size:
                continue
            data, valid = read_tile(dataset, indexes, window.row_off, window.col_off, window.height, window.width,
                                    fill=fill)
            picked = picked[valid.ravel()[picked]]
            features.append(pixel_features(data, names)[picked])
            targets.append(labels[picked])
        y = np.concatenate(targets) if targets else np.empty(0, np.uint8)
        if not y.size:
            raise InputFileError(f"{self.labels_path}: every labelled pixel is nodata in {dataset.name}")
        forest = new_forest(self.seed, self.trees)
        forest.fit(np.concatenate(features), y)
        self.trained_on = int(y.size)
        return forest

    def _labels(self, dataset: rasterio.DatasetReader, window: Window) -> np.ndarray:
        transform = dataset.transform @ Affine.translation(window.col_off, window.row_off)
        return self.source.read(dataset.crs, transform, int(window.height), int(window.width))

    def predict(self, src: str | os.PathLike, dst: str | os.PathLike, *, bands: list[int] | None = None,
                output_block: int = DEFAULT_OUTPUT_BLOCK, overwrite: bool = False, reporter: Reporter | None = None,
                qml: bool = True, stac: bool = True, nodata: float | None = None) -> PredictionSummary:
        """Fit on the labelled pixels of ``src`` (its ``bands``, 1-based, default all), then classify every
        pixel into the class-map COG ``dst`` (legend embedded; ``qml`` and ``stac`` sidecars beside it);
        ``nodata``: a fill value the scene does not declare, never learnt nor classified."""
        check_output_block(output_block)
        reporter = reporter or NullReporter()
        check_writable(dst, overwrite, inputs=[src, self.labels_path])
        require_geotiff_name(dst)
        sidecars = Sidecars(qml=qml, stac=stac)
        sidecars.check(dst, overwrite)
        t0 = time.perf_counter()
        with gdal_env(), open_raster(src) as dataset:
            indexes = _checked_bands(dataset, bands)
            names = [dataset.descriptions[i - 1] for i in indexes]
            blocks = row_windows(dataset.height, dataset.width, BLOCK_ROWS)
            reporter.start(len(blocks), "blocks", megapixels=dataset.width * dataset.height / 1e6)
            forest = self.fit(dataset, indexes, nodata)
            ids = np.array([c.id for c in self.scheme.classes], np.uint8)

            def classify(window: Window) -> tuple[np.ndarray, np.ndarray]:
                data, valid = read_tile(dataset, indexes, window.row_off, window.col_off, window.height,
                                        window.width, fill=nodata)
                classes = np.full(valid.size, self.scheme.nodata_id, np.uint8)
                if valid.any():
                    classes[valid.ravel()] = ids[forest.predict(pixel_features(data, names)[valid.ravel()])]
                return classes.reshape(valid.shape), valid

            summary = write_class_map(dataset, src, dst, self.scheme, blocks, classify, output_block=output_block,
                                      overwrite=overwrite, reporter=reporter, started=t0,
                                      precision=f"{METHOD}, {self.trees} trees, {self.trained_on} labelled pixels")
        sidecars.write(dst, src, self.producer(names), overwrite=overwrite)
        reporter.done(**summary.model_dump())
        return summary

    def producer(self, names: Sequence[str | None]) -> Producer:
        """This method as the maker of a class map, for its STAC Item."""
        return Producer(kind="method", name=METHOD,
                        description=f"per-pixel RandomForest trained on {self.labels_path.name}",
                        parameters={"trees": self.trees, "min_samples_leaf": MIN_SAMPLES_LEAF,
                                    "training_pixels": self.trained_on, "features": feature_names(names)})


def _checked_bands(dataset: rasterio.DatasetReader, bands: list[int] | None) -> list[int]:
    if not bands:
        return list(range(1, dataset.count + 1))
    if not all(1 <= b <= dataset.count for b in bands) or len(set(bands)) != len(bands):
        raise ParameterError("bands", bands, f"band numbers must be distinct and in 1..{dataset.count} of "
                             f"{dataset.name}")
    return list(bands)
