"""Training: loss and augmentation units, the spatial split, and tiny end-to-end runs on real sample crops."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import torch
import yaml
from rasterio.features import shapes
from rasterio.warp import Resampling, calculate_default_transform, reproject
from rasterio.windows import Window
from shapely.geometry import shape

from geoseg.model.loading import read_meta
from geoseg.errors import ConfigError
from geoseg.evaluation.labels import LabelSource
from geoseg.evaluation.metrics import IGNORE_INDEX
from geoseg.training import TrainConfig, load_config, train
from geoseg.training.augment import Augmenter, cutmix, mixup, rotate
from geoseg.training.config import AugmentSpec, SplitSpec
from geoseg.training.data import Box, SceneData, WindowSampler, split_boxes
from geoseg.training.schedule import learning_rate
from geoseg.training.losses import SegmentationLoss, class_weights, soft_dice_loss
from tests.conftest import ZION, ZION_LABELS, tiny_config, write_crop

CROP = Window(0, 0, 256, 160)          # a real 256 x 160 px corner of the shipped Zion sample


# ----------------------------------------------------------------------------------------- losses
def test_soft_dice_matches_hand_computation() -> None:
    # pixel A: class 0, p = (.75, .25); pixel B: class 1, p = (.5, .5); pixel C: ignored, any logits
    logits = torch.tensor([[math.log(3), 0.0, 10.0], [0.0, 0.0, -10.0]]).reshape(1, 2, 1, 3)
    target = torch.tensor([[[0, 1, IGNORE_INDEX]]])
    # class 0: 1 - 2·0.75 / (0.75² + 0.5² + 1) ; class 1: 1 - 2·0.5 / (0.25² + 0.5² + 1)
    expected = ((1 - 1.5 / 1.8125) + (1 - 1.0 / 1.3125)) / 2
    assert float(soft_dice_loss(logits, target)) == pytest.approx(expected, rel=1e-5)


def test_loss_is_a_weighted_sum_of_ce_and_dice() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 4)
    target = torch.randint(0, 3, (2, 4, 4))
    ce = torch.nn.functional.cross_entropy(logits, target)
    dice = soft_dice_loss(logits, target)
    assert float(SegmentationLoss(1.0, 0.5)(logits, target)) == pytest.approx(float(ce + 0.5 * dice), rel=1e-5)
    assert float(SegmentationLoss(0.0, 1.0)(logits, target)) == pytest.approx(float(dice), rel=1e-5)


def test_class_weights_inverse_sqrt_with_unit_mean_pixel() -> None:
    weights = class_weights(np.array([900, 100, 0]), max_weight=10)
    assert weights[2] == 0
    assert weights[1] / weights[0] == pytest.approx(3.0)             # sqrt(900 / 100)
    assert 0.9 * weights[0] + 0.1 * weights[1] == pytest.approx(1.0)
    assert class_weights(np.array([999_999, 1]), max_weight=5)[1] == 5


# ------------------------------------------------------------------------------------ augmentation
def _aligned_batch(n: int = 6, size: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels with structure in both directions, and an image whose band 0 *is* the labels."""
    rng = np.random.default_rng(3)
    blocks = rng.integers(0, 5, (n, size // 4, size // 4))
    labels = torch.from_numpy(np.kron(blocks, np.ones((1, 4, 4), int)))
    labels[:, 0, :3] = 7                                            # an asymmetric mark in one corner
    image = torch.stack([labels.float(), torch.randn(n, size, size)], dim=1)
    return image, labels


def test_geometric_augmentation_moves_image_and_labels_together() -> None:
    image, labels = _aligned_batch()
    augment = Augmenter(AugmentSpec(flip=True, rot90=True, rotate_degrees=0, brightness=0, contrast=0,
                                    noise_std=0), size=32, seed=1)
    changed = 0
    for _ in range(5):
        x, y = augment(image, labels)
        assert x.shape == (6, 2, 32, 32) and y.shape == (6, 32, 32)
        assert torch.equal(x[:, 0].long(), y)                         # fails if only one of them is flipped
        changed += int(not torch.equal(y, labels[:, :32, :32]))
    assert changed > 0                                                # the transforms really ran


def test_free_rotation_by_90_degrees_equals_rot90_on_both() -> None:
    image, labels = _aligned_batch(n=2, size=40)
    x, y = rotate(image, labels, torch.tensor([90.0, 90.0]))
    k = 1 if torch.equal(y, torch.rot90(labels, 1, (-2, -1))) else -1
    assert torch.equal(y, torch.rot90(labels, k, (-2, -1)))
    assert torch.allclose(x, torch.rot90(image, k, (-2, -1)), atol=1e-4)   # same direction for the image


def test_free_rotation_keeps_alignment_and_marks_outside_as_ignored() -> None:
    image, labels = _aligned_batch(n=2, size=48)
    x, y = rotate(image, labels, torch.tensor([30.0, -50.0]))
    inside = y != IGNORE_INDEX
    assert (~inside).any()                                            # corners came from outside
    agree = (x[:, 0].round().long() == y)[inside].float().mean()
    assert agree > 0.75                                               # bilinear image vs nearest labels: edges differ
    flipped = (x[:, 0].flip(-1).round().long() == y)[inside].float().mean()
    assert flipped < agree - 0.3                                      # misalignment would be caught


def test_photometric_jitter_leaves_labels_alone() -> None:
    image, labels = _aligned_batch()
    augment = Augmenter(AugmentSpec(flip=False, rot90=False, brightness=0.5, contrast=0.5, noise_std=0.1),
                        size=40, seed=0)
    x, y = augment(image, labels)
    assert torch.equal(y, labels)
    assert not torch.allclose(x, image)


def test_cutmix_pastes_image_and_labels_of_one_box_together() -> None:
    n, size = 8, 32
    labels = torch.full((n, size, size), IGNORE_INDEX, dtype=torch.long)
    for i in range(n):
        labels[i, 14:18, 14:18] = i                                   # each window: one small polygon
    image = labels.clamp(max=n).float()[:, None].expand(n, 2, size, size).contiguous()
    x, y = cutmix(image, labels, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(x[:, 0], y.clamp(max=n).float())               # image and labels moved together
    moved = [i for i in range(n) if not torch.equal(y[i], labels[i])]
    assert len(moved) >= n // 2
    for i in moved:
        foreign = set(y[i][(y[i] != IGNORE_INDEX) & (y[i] != i)].unique().tolist())
        assert len(foreign) == 1                                       # one partner's polygon, pasted where it was
    assert torch.equal(cutmix(image, labels, 0.0, torch.Generator().manual_seed(0))[1], labels)


def test_mixup_blends_each_window_with_one_partner_by_one_weight() -> None:
    image = torch.arange(6, dtype=torch.float32).reshape(6, 1, 1, 1).expand(6, 2, 4, 4).contiguous()
    mixed, perm, lam = mixup(image, 0.4, np.random.default_rng(3))
    assert 0 <= lam <= 1 and sorted(perm.tolist()) == list(range(6))
    torch.testing.assert_close(mixed, lam * image + (1 - lam) * image[perm])
    again, perm_again, lam_again = mixup(image, 0.4, np.random.default_rng(3))
    assert lam_again == lam and torch.equal(perm_again, perm)          # the trainer's seeded RNG decides
    draws = [mixup(image, 0.4, np.random.default_rng(s))[2] for s in range(200)]
    assert np.mean([d < 0.1 or d > 0.9 for d in draws]) > 0.4          # Beta(0.4, 0.4): mostly near 0 or 1


# ------------------------------------------------------------------------------------ split, sampling
def test_split_boxes_leave_out_block_and_buffer() -> None:
    train_boxes, val, test = split_boxes(300, 200, SplitSpec(axis="rows", start=100, stop=180, buffer=10))
    assert val == Box(100, 180, 0, 200) and test is None
    assert train_boxes == [Box(0, 90, 0, 200), Box(190, 300, 0, 200)]
    train_boxes, val, _ = split_boxes(300, 200, SplitSpec(axis="cols", start=150, buffer=20))
    assert val == Box(0, 300, 150, 200) and train_boxes == [Box(0, 300, 0, 130)]


def test_test_block_is_kept_from_training_and_selection() -> None:
    train_boxes, val, test = split_boxes(300, 200, SplitSpec(start=100, stop=140, buffer=10),
                                         SplitSpec(start=200, stop=260, buffer=5))
    assert val == Box(100, 140, 0, 200) and test == Box(200, 260, 0, 200)
    assert train_boxes == [Box(0, 90, 0, 200), Box(150, 195, 0, 200), Box(265, 300, 0, 200)]
    adjacent = split_boxes(300, 200, SplitSpec(start=200, stop=260, buffer=8), SplitSpec(start=260, buffer=8))
    assert adjacent[0] == [Box(0, 192, 0, 200)]                       # buffers merge, nothing after the test block
    base = {"name": "x", "scenes": [{"scene": "s.tif", "labels": "l.tif"}], "band_names": ["b"],
            "classes": [{"id": 1, "name": "a", "color": "#000000"}], "validation": {"start": 100, "stop": 150}}
    with pytest.raises(ValueError, match="overlaps the validation block"):
        TrainConfig.model_validate({**base, "test": {"start": 140}})
    with pytest.raises(ValueError, match="must equal validation.axis"):
        TrainConfig.model_validate({**base, "test": {"axis": "cols", "start": 0, "stop": 10}})


@pytest.mark.parametrize("balanced", [0.0, 1.0])
def test_training_windows_never_reach_the_validation_block(balanced: float) -> None:
    height, width = 200, 120
    rows = np.repeat(np.arange(height, dtype=np.float32)[:, None], width, axis=1)
    labels = (np.arange(height * width).reshape(height, width) % 3).astype(np.uint8)
    labels[:5, :5] = 2
    train_boxes, val, _ = split_boxes(height, width, SplitSpec(start=100, stop=150, buffer=8))
    scene = SceneData(Path("x"), rows[None], labels, np.ones_like(labels, bool), train_boxes, val)
    sampler = WindowSampler([scene], 24, 3, class_balanced=balanced)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(300):
        image, _ = sampler.sample(rng)
        window_rows = image[0, :, 0]
        assert image.shape == (1, 24, 24)
        assert not ((window_rows >= 92) & (window_rows < 158)).any()
        seen.add(int(window_rows[0]) < 92)
    assert seen == {True, False}                                      # both training boxes are used


def test_onecycle_schedule_warms_up_then_decays() -> None:
    lrs = [learning_rate(s / 100, 1e-2, "onecycle", 0.1) for s in range(101)]
    assert lrs[0] < 1e-3 and max(lrs) == pytest.approx(1e-2) and int(np.argmax(lrs)) == 10
    assert lrs[-1] == pytest.approx(1e-4)


# ----------------------------------------------------------------------------------------- end to end
@pytest.fixture
def zion_crop(tmp_path: Path) -> tuple[Path, Path]:
    scene = write_crop(ZION, tmp_path / "scene.tif", CROP)
    labels = write_crop(ZION_LABELS, tmp_path / "labels.tif", CROP)
    return scene, labels


def geoseg_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "geoseg", *args], capture_output=True, text=True)


@pytest.mark.slow
def test_train_cli_bundle_is_accepted_by_predict_and_evaluate(tmp_path: Path, zion_crop: tuple[Path, Path]) -> None:
    scene, labels = zion_crop
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(tiny_config(tmp_path, scene, labels)))
    run = geoseg_cli("train", str(config_path), "--quiet")
    assert run.returncode == 0, run.stderr
    bundle = tmp_path / "run" / "tiny.safetensors"
    log = json.loads((tmp_path / "run" / "log.json").read_text())
    assert len(log) == 3 and log[-1]["train_loss"] < log[0]["train_loss"]
    meta = read_meta(bundle)
    assert meta.metrics["mean_iou"] > 0 and meta.provenance["config"]["name"] == "tiny"
    assert meta.bands[3].name == "nir" and meta.bands[3].mean > 1000     # stats of the real training pixels

    out = tmp_path / "map.tif"
    assert geoseg_cli("predict", str(scene), "-o", str(out), "--model", str(bundle), "--quiet").returncode == 0
    report = tmp_path / "report"
    run = geoseg_cli("evaluate", str(bundle), str(scene), str(labels), "-o", str(report), "--quiet")
    assert run.returncode == 0, run.stderr
    for name in ("metrics.json", "report.md", "confusion.png", "per_class.png", "preview.png"):
        assert (report / name).stat().st_size > 0
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["pixels"] == 160 * 256


def test_resume_continues_the_log(tmp_path: Path, zion_crop: tuple[Path, Path]) -> None:
    config = TrainConfig.model_validate(tiny_config(tmp_path, *zion_crop,
                                                    train={"epochs": 1, "iterations_per_epoch": 3,
                                                           "batch_size": 4, "window": 32}))
    first = train(config)
    assert first.epochs_run == 1
    longer = config.with_overrides(epochs=2)
    second = train(longer, resume=True)
    log = json.loads(second.log_json.read_text())
    assert [row["epoch"] for row in log] == [1, 2] and log[0]["step"] == 3 and log[1]["step"] == 6
    with pytest.raises(ConfigError, match="another config; delete it or train without resume"):
        train(longer.model_copy(update={"band_names": ["b", "g", "r", "n"]}), resume=True)


def _polygons_from_labels(labels_path: Path, out: Path, keep_every: int = 3) -> Path:
    """Sparse polygons: every third region of the real label crop, with its class id in 'class'."""
    with rasterio.open(labels_path) as ds:
        data, transform, crs = ds.read(1), ds.transform, ds.crs
    regions = [(shape(g), int(v)) for g, v in shapes(data, transform=transform) if v != 255]
    chosen = [r for i, r in enumerate(sorted(regions, key=lambda r: -r[0].area)) if i % keep_every == 0]
    gpd.GeoDataFrame({"class": [v for _, v in chosen]}, geometry=[g for g, _ in chosen], crs=crs).to_file(out)
    return out


SHORT_TRAIN = {"epochs": 1, "iterations_per_epoch": 2, "batch_size": 4, "window": 32}


def _on_scene_grid(source: Path, scene: Path, labels: Path, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Class indices of ``source`` read onto the scene grid, and the scene's own label indices to compare."""
    with rasterio.open(scene) as ds:
        read = LabelSource(source, config.scheme).read(ds.crs, ds.transform, ds.height, ds.width)
    with rasterio.open(labels) as ds:
        return read, ds.read(1).astype(int) - 1


def test_train_from_sparse_polygons(tmp_path: Path, zion_crop: tuple[Path, Path]) -> None:
    scene, labels = zion_crop
    polygons = _polygons_from_labels(labels, tmp_path / "labels.gpkg")
    # mixup on: blended windows whose partners' labels are mostly unlabelled pixels still train
    config = TrainConfig.model_validate(tiny_config(tmp_path, scene, polygons, train=SHORT_TRAIN,
                                                    augment={"mixup": 0.4}))
    from_polygons, reference = _on_scene_grid(polygons, scene, labels, config)
    labelled = from_polygons != IGNORE_INDEX
    assert 0.1 < labelled.mean() < 0.95                                 # sparse: many pixels unlabelled
    assert (from_polygons[labelled] == reference[labelled]).all()
    result = train(config)
    assert result.bundle.is_file() and result.scores.pixels > 0
    assert all(np.isfinite(row["train_loss"]) for row in json.loads((tmp_path / "run" / "log.json").read_text()))


def test_train_from_label_raster_on_another_crs(tmp_path: Path, zion_crop: tuple[Path, Path]) -> None:
    scene, labels = zion_crop
    other = tmp_path / "labels_wgs84.tif"
    with rasterio.open(labels) as src:
        transform, width, height = calculate_default_transform(src.crs, "EPSG:4326", src.width, src.height,
                                                               *src.bounds)
        profile = src.profile | {"crs": "EPSG:4326", "transform": transform, "width": width, "height": height}
        with rasterio.open(other, "w", **profile) as dst:
            reproject(rasterio.band(src, 1), rasterio.band(dst, 1), resampling=Resampling.nearest)
    config = TrainConfig.model_validate(tiny_config(tmp_path, scene, other, train=SHORT_TRAIN))
    warped, reference = _on_scene_grid(other, scene, labels, config)
    labelled = warped != IGNORE_INDEX
    assert labelled.mean() > 0.95
    assert (warped[labelled] == reference[labelled]).mean() > 0.85     # two nearest-neighbour resamplings
    assert train(config).bundle.is_file()


def test_config_errors_name_the_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "scenes": [], "validation": {"start": 1}}))
    with pytest.raises(ConfigError, match=r"bad.yaml: scenes"):
        load_config(path)
    path.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    path.write_text(yaml.safe_dump(tiny_config(tmp_path, ZION, ZION_LABELS, tile_size=64, overlap=40)))
    with pytest.raises(ConfigError, match="bad.yaml: config: .*overlap 40: must be between 0 and half of tile_size 64"):
        load_config(path)                           # the bundle's tiling rule, before any training


def test_precise_batchnorm_averages_fresh_batches_evenly(tmp_path: Path, zion_crop: tuple[Path, Path]) -> None:
    from geoseg.training.loop import Trainer

    config = TrainConfig.model_validate(tiny_config(
        tmp_path, *zion_crop, model={"architecture": "ContextFCN", "encoder": None, "encoder_depth": 1, "hidden": [8]},
        train={"epochs": 1, "iterations_per_epoch": 1, "batch_size": 2, "window": 32, "precise_bn_batches": 3,
               "precision": "fp32"}))      # the reference below is fp32; CPUs with native bf16 would autocast
    trainer = Trainer(config)
    torch.manual_seed(1)
    batches = [torch.randn(2, trainer.meta.in_channels, 32, 32) * (k + 1) for k in range(3)]
    feed = iter(batches)
    trainer._training_batch = lambda: (next(feed), None)          # known inputs instead of sampled windows
    first_conv, first_norm = trainer.module.pixel[0][0], trainer.module.pixel[0][1]
    first_norm.running_mean.fill_(123.0)                           # stale statistics must not survive
    trainer._precise_batchnorm()
    with torch.no_grad():
        features = [first_conv(x) for x in batches]
    means = torch.stack([f.mean(dim=(0, 2, 3)) for f in features]).mean(0)
    variances = torch.stack([f.var(dim=(0, 2, 3), unbiased=True) for f in features]).mean(0)
    assert torch.allclose(first_norm.running_mean, means, atol=1e-5)
    assert torch.allclose(first_norm.running_var, variances, rtol=1e-4)
    assert first_norm.momentum == 0.1 and first_norm.num_batches_tracked == 3


def test_bundle_metrics_come_from_the_test_block(tmp_path: Path, zion_crop: tuple[Path, Path]) -> None:
    config = TrainConfig.model_validate(tiny_config(
        tmp_path, *zion_crop, validation={"start": 72, "stop": 104, "buffer": 8}, test={"start": 112, "buffer": 8},
        train=SHORT_TRAIN))
    result = train(config)
    meta = read_meta(result.bundle)
    assert result.scored_on == "test" and result.scores.pixels == 48 * 256     # rows 112..159, every column
    assert meta.metrics["pixels"] == 48 * 256 and "test block (rows 112..160)" in meta.metrics["evaluated_on"][0]
    assert meta.metrics["evaluated_on"][0].startswith(f"{zion_crop[0].name}: ")   # the scene, not a run file
    assert meta.provenance["training"]["validation_block"]["pixels"] == 32 * 256
    assert (result.report_dir / "scene_test" / "metrics.json").is_file()
