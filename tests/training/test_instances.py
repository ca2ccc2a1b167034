"""Instance training: objects from polygons, windows, targets that follow the augmentation, matching, and a
tiny Mask R-CNN trained end to end on a generated scene (real GeoTIFF, real CRS) into a working bundle."""
from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import torch
import yaml
from affine import Affine
from shapely.geometry import box

from geoseg.errors import ConfigError, InputFileError
from geoseg.model.instance_net import load_instance_detector
from geoseg.model.instances import TileInstances
from geoseg.model.loading import read_meta
from geoseg.training import load_config, train
from geoseg.training.augment import flip_rot90
from geoseg.training.instances import (ObjectWindowSampler, detect_block, load_object_scene, match_objects,
                                       scoring_at_least, window_targets)

ORIGIN = Affine(0.5, 0, 733600.0, 0, -0.5, 3725100.0)          # 0.5 m, UTM 16N like the SpaceNet chip
SPACENET = Path(__file__).resolve().parents[3] / "shared" / "data" / "spacenet_buildings"


def write_scene(folder: Path, size: int = 192, count: int = 12, seed: int = 0, classes: bool = False
                ) -> tuple[Path, Path, list[tuple[int, int, int, int]]]:
    """A pan uint16 GeoTIFF of bright rectangles on a noisy background and their outlines (GeoJSON)."""
    rng = np.random.default_rng(seed)
    image = rng.normal(300, 30, (size, size))
    taken = np.zeros((size, size), bool)
    rects: list[tuple[int, int, int, int]] = []
    while len(rects) < count:
        h, w = (int(v) for v in rng.integers(10, 24, 2))
        r, c = (int(v) for v in rng.integers(2, size - 26, 2))
        if taken[max(r - 3, 0):r + h + 3, max(c - 3, 0):c + w + 3].any():
            continue
        taken[r:r + h, c:c + w] = True
        image[r:r + h, c:c + w] = rng.normal(900, 40)
        rects.append((r, c, h, w))
    scene = folder / "scene.tif"
    with rasterio.open(scene, "w", driver="GTiff", width=size, height=size, count=1, dtype="uint16",
                       crs="EPSG:32616", transform=ORIGIN) as out:
        out.write(image.clip(0, 65535).astype("uint16"), 1)
    outlines = [box(*(ORIGIN @ (c, r + h)), *(ORIGIN @ (c + w, r))) for r, c, h, w in rects]
    columns = {"kind": ["shed" if i % 2 else "house" for i in range(count)]} if classes else {"source": ["osm"] * count}
    labels = folder / "objects.geojson"
    gpd.GeoDataFrame(columns, geometry=outlines, crs="EPSG:32616").to_file(labels)
    return scene, labels, rects


def instance_config(folder: Path, scene: Path, labels: Path, **overrides: object) -> Path:
    config = {
        "name": "tiny_buildings", "task": "instance",
        "scenes": [{"scene": str(scene), "labels": str(labels)}],
        "validation": {"axis": "rows", "start": 128, "stop": 160, "buffer": 8},
        "test": {"axis": "rows", "start": 160, "buffer": 0},
        "band_names": ["pan"], "input_dtype": "uint16",
        "classes": [{"id": 1, "name": "building", "color": "#d62728"}],
        "model": {"architecture": "MaskRCNN", "encoder": "resnet18", "decoder_channels": [16]},
        "tile_size": 64, "overlap": 16,
        "augment": {"rotate_degrees": 0},
        "optimiser": {"lr": 0.002, "schedule": "constant"},
        "train": {"epochs": 2, "iterations_per_epoch": 2, "batch_size": 2, "window": 64, "class_balanced": 0.7,
                  "threads": 2},
        "output_dir": str(folder / "run"), "half": True,
    }
    config.update(overrides)
    path = folder / "instances.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def scene_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list]:
    return write_scene(tmp_path_factory.mktemp("objects"))


@pytest.mark.slow
def test_a_tiny_model_trains_into_a_bundle_that_detects(tmp_path: Path, scene_files: tuple) -> None:
    scene, labels, _ = scene_files
    events: list[dict] = []
    result = train(instance_config(tmp_path, scene, labels), on_epoch=events.append)
    meta = read_meta(result.bundle)
    assert (meta.task, meta.model.architecture, [c.name for c in meta.scheme.classes]) == \
        ("instance", "MaskRCNN", ["building"])
    assert meta.gsd == 0.5 and meta.crs_hint == "EPSG:32616" and meta.bands[0].std > 0
    assert result.scored_on == "test" and {"f1", "precision", "recall", "objects"} <= set(meta.metrics)
    assert meta.metrics["objects"] >= 1 and "test block" in meta.metrics["evaluated_on"][0]
    assert [e["epoch"] for e in events] == [1, 2] and all("val_f1" in e for e in events)
    log = json.loads(result.log_json.read_text())
    assert len(log) == 2 and result.log_csv.read_text().startswith("epoch,step,lr,train_loss,val_f1")
    summary = result.summary()
    assert summary.mean_iou is None and summary.best_epoch in (1, 2)
    detector = load_instance_detector(result.bundle, score_threshold=0.0, max_per_tile=5)
    found = detector.detect(np.zeros((2, 1, 64, 64), np.float32))
    assert len(found) == 2 and all(isinstance(f, TileInstances) and f.masks.shape[1:] == (64, 64) for f in found)


def test_each_polygon_is_one_object_and_the_class_column_is_optional(tmp_path: Path, scene_files: tuple) -> None:
    scene, labels, rects = scene_files
    config = load_config(instance_config(tmp_path, scene, labels))
    objects = load_object_scene(config.scenes[0], config)
    assert objects.labels.max() == len(rects) == len(objects.object_class) - 1
    for number, (r, c, h, w) in enumerate(rects, start=1):
        assert np.array_equal(np.argwhere(objects.labels == number).min(0), [r, c])
        assert (objects.labels == number).sum() == h * w
    assert set(objects.object_class[1:].tolist()) == {1}

    folder = tmp_path / "two"
    folder.mkdir()
    scene2, labels2, _ = write_scene(folder, classes=True)
    two = [{"id": 1, "name": "house", "color": "#d62728"}, {"id": 2, "name": "shed", "color": "#1f77b4"}]
    config = load_config(instance_config(folder, scene2, labels2, classes=two,
                                         scenes=[{"scene": str(scene2), "labels": str(labels2), "class_column": "kind"}]))
    assert load_object_scene(config.scenes[0], config).object_class[1:].tolist() == [1, 2] * 6
    config = load_config(instance_config(folder, scene, labels, classes=two))
    with pytest.raises(InputFileError, match=r"objects.geojson: no class column 'class'"):
        load_object_scene(config.scenes[0], config)


def test_instance_configs_are_checked(tmp_path: Path, scene_files: tuple) -> None:
    scene, labels, _ = scene_files
    defaults = load_config(_without(instance_config(tmp_path, scene, labels), "model"))
    assert defaults.model.architecture == "MaskRCNN"
    for overrides, message in (({"augment": {"rotate_degrees": 20}}, "free rotation is not offered"),
                               ({"model": {"architecture": "Unet"}}, "task 'instance' does not fit"),
                               ({"classes": [{"id": 0, "name": "b", "color": "#000000"}]}, "class ids start at 1"),
                               ({"tsk": "instance"}, "unknown key 'tsk'; did you mean 'task'")):
        with pytest.raises(ConfigError, match=message):
            load_config(instance_config(tmp_path, scene, labels, **overrides))


def _without(path: Path, key: str) -> Path:
    raw = yaml.safe_load(path.read_text())
    del raw[key]
    path.write_text(yaml.safe_dump(raw))
    return path


def test_blocks_without_objects_are_refused_before_training(tmp_path: Path, scene_files: tuple) -> None:
    scene, labels, rects = scene_files
    empty_rows = sorted(set(range(192)) - {r + i for r, _, h, _ in rects for i in range(-1, h + 1)})
    start = next(r for r in empty_rows if all(r + i in empty_rows for i in range(4)))
    config = instance_config(tmp_path, scene, labels, validation={"axis": "rows", "start": start, "stop": start + 4,
                                                                  "buffer": 0}, test=None)
    with pytest.raises(ConfigError, match="validation block .* holds no object"):
        train(config)


def test_windows_stay_in_the_training_area_and_find_objects(tmp_path: Path, scene_files: tuple) -> None:
    scene, labels, _ = scene_files
    config = load_config(instance_config(tmp_path, scene, labels))
    objects = load_object_scene(config.scenes[0], config)
    objects.image[:, 120:] = -1.0                 # the validation block and its buffer onwards: never sampled
    rng = np.random.default_rng(0)
    for around in (1.0, 0.0):
        sampler = ObjectWindowSampler([objects], 48, around_objects=around)
        for _ in range(40):
            image, ids, classes = sampler.sample(rng)
            assert image.shape == (1, 48, 48) and ids.shape == (48, 48) and image.min() >= 0
            assert set(np.unique(ids).tolist()) == set(range(len(classes) + 1))     # renumbered 1..m
            if around:
                assert len(classes) >= 1                   # centred near an object: one is in view


def test_targets_follow_the_augmentation(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    ids = np.zeros((4, 40, 40), np.int64)
    for sample in ids:
        for number in range(1, 4):
            r, c = rng.integers(0, 30, 2)
            sample[r:r + rng.integers(3, 10), c:c + rng.integers(3, 10)] = number
    image = torch.from_numpy(ids.astype(np.float32))[:, None]            # the image is the ids: they must agree
    moved_image, moved_ids = flip_rot90(image, torch.from_numpy(ids), torch.Generator().manual_seed(0))
    for x, y in zip(moved_image, moved_ids):
        assert torch.equal(x[0].long(), y)
        target = window_targets(y, np.array([1, 1, 1]))
        for mask, (x0, y0, x1, y1) in zip(target["masks"].bool(), target["boxes"].long().tolist()):
            rows, cols = torch.nonzero(mask, as_tuple=True)
            assert (x0, y0, x1, y1) == (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
    sliver = np.zeros((20, 20), np.int64)
    sliver[0, :3] = 1                                                    # fewer pixels than MIN_OBJECT_PIXELS
    sliver[5:10, 5:10] = 2
    target = window_targets(torch.from_numpy(sliver), np.array([1, 2]))
    assert target["labels"].tolist() == [2] and target["boxes"].tolist() == [[5.0, 5.0, 10.0, 10.0]]


def test_matching_is_one_to_one_at_iou_one_half() -> None:
    reference = np.zeros((20, 20), np.int32)
    reference[0:4, 0:5] = 1            # 20 px
    reference[10:14, 10:14] = 2        # 16 px
    detected = np.zeros((20, 20), np.int32)
    detected[0:4, 0:4] = 7             # 16 px inside ref 1: IoU 0.8
    detected[0:4, 4:5] = 8             # the rest of ref 1: IoU 0.2, and ref 1 is taken anyway
    detected[10:12, 10:14] = 9         # 8 px of ref 2: IoU 0.5, enough
    detected[18:20, 18:20] = 5         # nothing there
    scores = match_objects(reference, detected)
    assert (scores.true_positives, scores.false_positives, scores.false_negatives) == (2, 2, 0)
    assert scores.f1 == pytest.approx(2 * 2 / (2 * 2 + 2)) and scores.mean_matched_iou == pytest.approx(0.65)
    assert np.isnan(match_objects(np.zeros((3, 3), np.int32), np.zeros((3, 3), np.int32)).f1)
    both = scores + match_objects(reference, np.zeros_like(detected))      # two scenes: counts add up
    assert (both.true_positives, both.false_positives, both.false_negatives) == (2, 2, 2)


class _SquareDetector:
    """Finds every bright square (value 1) of a tile, as one object each, like a perfect model."""

    def detect(self, tiles: np.ndarray) -> list[TileInstances]:
        from scipy import ndimage

        out = []
        for tile in tiles:
            ids, count = ndimage.label(tile[0] > 0.5)
            masks = np.stack([ids == i for i in range(1, count + 1)]) if count else np.zeros((0, *ids.shape), bool)
            out.append(TileInstances(masks, np.linspace(0.9, 0.6, count, dtype=np.float32),
                                     np.ones(count, np.int32)))
        return out


def test_held_out_blocks_keep_each_object_once_across_chunks() -> None:
    image = np.zeros((1, 700, 1100), np.float32)
    reference = np.zeros((700, 1100), np.int32)
    for number, (r, c) in enumerate([(500, 500), (10, 10), (505, 1020), (300, 505), (690, 1090)], start=1):
        image[0, r:r + 10, c:c + 40] = 1                   # several straddle the 512 px chunk borders
        reference[r:r + 10, c:c + 40] = number
    found, scores = detect_block(_SquareDetector(), image)
    assert len(scores) == 5 and (np.diff(scores) >= 0).all()
    matched = match_objects(reference, found)
    assert (matched.true_positives, matched.false_positives, matched.false_negatives) == (5, 0, 0)
    assert matched.mean_matched_iou == 1.0
    confident = scoring_at_least(found, scores, 0.8)                  # the linspace scores: 0.9 and 0.825 pass
    assert len(np.unique(confident)) - 1 == int((scores >= 0.8).sum()) >= 1


@pytest.mark.slow
@pytest.mark.skipif(not SPACENET.is_dir(), reason="needs ../shared/data/spacenet_buildings (the SpaceNet chip may "
                                                  "not ship; CI has it)")
def test_the_spacenet_config_trains_on_the_real_chip(tmp_path: Path) -> None:
    config = load_config(Path(__file__).resolve().parents[2] / "configs" / "spacenet_buildings.yaml",
                         require_data=True)
    short = config.model_copy(update={"train": config.train.model_copy(update={
        "epochs": 1, "iterations_per_epoch": 2, "batch_size": 2, "time_limit_minutes": None})})
    result = train(short.with_overrides(output_dir=tmp_path / "run"))
    meta = read_meta(result.bundle)
    assert meta.gsd == 0.5 and meta.crs_hint == "EPSG:32616" and meta.task == "instance"
    assert meta.metrics["objects"] >= 8 and meta.metrics["evaluated_on"][0].startswith("sample_geotiff.tif")
