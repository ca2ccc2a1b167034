"""Instance training: polygons (one object each) -> Mask R-CNN bundle, with the semantic trainer's split,
normalisation, augmentation, schedule, checkpoints, logs, progress events and early stopping.

Each polygon is one object; its class comes from the scene's ``class_column`` when the file has one, else
(a single-class config) every polygon is that class. Objects are rasterised as an id raster on the scene
grid, so that the batch augmentation (flips, 90° turns, crop, colour and noise: :class:`Augmenter`) moves
every object's pixels with the image; boxes and masks are derived from the augmented ids afterwards, so
they cannot disagree. A share of the windows (``train.class_balanced``) is centred near an object drawn
uniformly (small objects count as much as large ones), the rest fall anywhere in the training area, so the
network sees background too.

Model selection: F1 at IoU >= 0.5 (one-to-one matching, the SpaceNet rule) on the validation block, ties
broken by the pixel IoU of all objects together (a continuous score while F1 is still 0). The best epoch's
weights, stored as shipped (fp16 when ``half``), are scored again on the test block when there is one.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rasterio.features import rasterize

from geoseg.errors import ConfigError, InputFileError
from geoseg.evaluation.instance_metrics import one_to_one
from geoseg.evaluation.labels import LabelSource, is_vector
from geoseg.inference.tiling import halo_windows
from geoseg.io.outputs import check_writable
from geoseg.model.bundle import ModelBundle, load_bundle
from geoseg.model.instance_net import MaskRCNNDetector
from geoseg.model.meta import BundleMeta
from geoseg.model.networks import build_model
from geoseg.progress import NullReporter, Reporter
from geoseg.summaries import TrainingSummary
from geoseg.training.augment import Augmenter
from geoseg.training.checkpoint import Checkpoint, config_digest, write_logs
from geoseg.training.config import SceneSpec, TrainConfig
from geoseg.training.data import SceneData, normalisation_stats, normalise_scenes, read_scene, scene_split
from geoseg.training.schedule import make_optimiser, prepare_run, set_learning_rate

EpochCallback = Callable[[dict[str, Any]], None]
LOG_FIELDS = ("epoch", "step", "lr", "train_loss", "val_f1", "val_precision", "val_recall", "val_mask_iou",
              "seconds", "best")
#: Pixels of an object a training window must show for it to be a target (slivers cut by the window edge
#: below this teach nothing but noise).
MIN_OBJECT_PIXELS = 8
#: Held-out blocks are detected in chunks of this many px with this much context each side; an object
#: belongs to the chunk whose core holds its box centre.
BLOCK_CORE, BLOCK_HALO = 512, 96
MATCH_IOU = 0.5
#: Held-out blocks are also searched down to this score: the pixel IoU of everything found there breaks
#: F1 ties (early on nothing reaches the bundle's threshold, and the epochs would all look alike).
SELECTION_FLOOR = 0.05


# ------------------------------------------------------------------------------------------------ data
@dataclass
class ObjectScene(SceneData):
    """A scene whose ``labels`` are object ids (int32, 0: no object); ``object_class[i]`` is the class index
    (1-based, 0 the background) of object ``i``."""

    object_class: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))


def load_object_scene(spec: SceneSpec, config: TrainConfig) -> ObjectScene:
    """A scene and its polygons as an object-id raster on the scene grid (objects clipped to valid pixels)."""
    image, valid, profile, gsd = read_scene(spec, config)
    height, width = image.shape[1:]
    column = spec.class_column if len(config.classes) > 1 or _has_field(spec.labels, spec.class_column) else None
    index_of = {c.id: i + 1 for i, c in enumerate(config.classes)}
    polygons = [(geometry, class_id) for geometry, class_id in
                LabelSource(spec.labels, config.scheme, column, spec.ignore_ids).polygons(profile["crs"])
                if class_id in index_of]                     # the legend's nodata id marks no object
    ids = np.zeros((height, width), np.int32)
    if polygons:
        ids = rasterize(((geometry, i + 1) for i, (geometry, _) in enumerate(polygons)), out_shape=(height, width),
                        transform=profile["transform"], fill=0, dtype="int32")
    ids[~valid] = 0
    if not ids.any():
        raise InputFileError(f"{spec.labels}: no polygon falls on {spec.scene}; check the CRS and the extent")
    train, val, test = scene_split(spec, config, height, width)
    object_class = np.array([0] + [index_of[c] for _, c in polygons], np.int64)
    return ObjectScene(spec.scene, image, ids, valid, train, val, profile, gsd, test, object_class=object_class)


def _has_field(path: Path, column: str) -> bool:
    """Whether a polygon file has ``column`` (a raster answers True: LabelSource then says it needs polygons)."""
    if not is_vector(path):
        return True
    import pyogrio

    try:
        return column in pyogrio.read_info(path)["fields"]
    except Exception as err:  # pyogrio raises several types for unreadable files
        raise InputFileError(f"{path}: cannot read polygons ({err}); pass a GeoPackage/GeoJSON/Shapefile") from err


def require_objects_in_blocks(scenes: list[ObjectScene], config: TrainConfig) -> None:
    """The validation (and test) block must hold objects in some scene, found before training starts."""
    blocks = [("validation", config.validation, lambda s: s.val_box)]
    if config.test is not None:
        blocks.append(("test", config.test, lambda s: s.test_box))
    for name, spec, box_of in blocks:
        if not any(s.labels[box_of(s).slices].any() for s in scenes):
            raise ConfigError(f"{name} block ({spec.axis} {spec.start}..{spec.stop or 'end'}) holds no object in any "
                              f"scene; move the {name} block where there are objects")


class ObjectWindowSampler:
    """Training windows (image, object ids renumbered 1..m, class index of each) from the training boxes."""

    def __init__(self, scenes: list[ObjectScene], size: int, around_objects: float):
        self.scenes = scenes
        self.size = size
        self.around = around_objects
        self.boxes = [(i, box) for i, scene in enumerate(scenes) for box in scene.train_boxes if box.positions(size)]
        weights = np.array([box.positions(size) for _, box in self.boxes], np.float64)
        self.box_p = weights / weights.sum()
        #: (box number, row, col) of each object's centre inside a training box.
        self.centres = np.array([(b, r, c) for b, (i, box) in enumerate(self.boxes)
                                 for r, c in _centres(scenes[i].labels[box.slices])], np.int64).reshape(-1, 3)

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        half = self.size // 2
        if len(self.centres) and rng.random() < self.around:
            b, row, col = self.centres[rng.integers(len(self.centres))]
            scene_index, box = self.boxes[b]
            r0 = int(np.clip(row - half + rng.integers(-half // 2, half // 2 + 1), 0, box.height - self.size))
            c0 = int(np.clip(col - half + rng.integers(-half // 2, half // 2 + 1), 0, box.width - self.size))
        else:
            scene_index, box = self.boxes[rng.choice(len(self.boxes), p=self.box_p)]
            r0, c0 = int(rng.integers(box.height - self.size + 1)), int(rng.integers(box.width - self.size + 1))
        scene = self.scenes[scene_index]
        rows = slice(box.row0 + r0, box.row0 + r0 + self.size)
        cols = slice(box.col0 + c0, box.col0 + c0 + self.size)
        present, compact = np.unique(scene.labels[rows, cols], return_inverse=True)
        if present[0] != 0:                     # renumber so that 0 stays the background
            present, compact = np.concatenate([[0], present]), compact + 1
        return scene.image[:, rows, cols], compact.reshape(self.size, self.size), scene.object_class[present[1:]]

    def batch(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        samples = [self.sample(rng) for _ in range(n)]
        return (np.stack([s[0] for s in samples]), np.stack([s[1] for s in samples]).astype(np.int64),
                [s[2] for s in samples])


def _centres(ids: np.ndarray) -> Iterator[tuple[int, int]]:
    """(row, col) of the mean pixel of each object in ``ids``."""
    rows, cols = np.nonzero(ids)
    labels = ids[rows, cols]
    counts = np.bincount(labels)
    present = np.flatnonzero(counts)
    mean_rows = np.bincount(labels, rows)[present] / counts[present]
    mean_cols = np.bincount(labels, cols)[present] / counts[present]
    return zip(mean_rows.round().astype(int).tolist(), mean_cols.round().astype(int).tolist())


def window_targets(ids: torch.Tensor, classes: np.ndarray) -> dict[str, torch.Tensor]:
    """Mask R-CNN targets of one (augmented) window of object ids 1..m: masks, boxes around them (pixel
    edges: ``[x0, y0, x1 + 1, y1 + 1]``) and class indices; objects showing fewer than
    :data:`MIN_OBJECT_PIXELS` are left out."""
    numbers = torch.arange(1, len(classes) + 1, device=ids.device)
    masks = ids[None] == numbers[:, None, None]
    keep = masks.flatten(1).sum(1) >= MIN_OBJECT_PIXELS
    masks = masks[keep]
    rows, cols = masks.any(2), masks.any(1)
    span = torch.arange(ids.shape[-1], device=ids.device), torch.arange(ids.shape[-2], device=ids.device)
    x0 = torch.where(cols, span[0], ids.shape[-1]).amin(1)
    x1 = torch.where(cols, span[0], -1).amax(1) + 1
    y0 = torch.where(rows, span[1], ids.shape[-2]).amin(1)
    y1 = torch.where(rows, span[1], -1).amax(1) + 1
    boxes = torch.stack([x0, y0, x1, y1], 1).float()
    labels = torch.as_tensor(classes, dtype=torch.int64)[keep.cpu()].to(ids.device)
    return {"boxes": boxes, "labels": labels, "masks": masks.to(torch.uint8)}


# ---------------------------------------------------------------------------------------------- scoring
@dataclass(frozen=True)
class ObjectScores:
    """One-to-one matching at IoU >= 0.5 of detected against reference objects, plus the pixel IoU of all
    objects together (the model-selection tie-break: the trainer counts there every object scoring at least
    :data:`SELECTION_FLOOR`)."""

    true_positives: int
    false_positives: int
    false_negatives: int
    mask_iou: float
    mean_matched_iou: float

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else math.nan

    @property
    def recall(self) -> float:
        present = self.true_positives + self.false_negatives
        return self.true_positives / present if present else math.nan

    @property
    def f1(self) -> float:
        total = 2 * self.true_positives + self.false_positives + self.false_negatives
        return 2 * self.true_positives / total if total else math.nan

    def summary(self) -> dict[str, float]:
        return {"f1": self.f1, "precision": self.precision, "recall": self.recall}

    def __add__(self, other: "ObjectScores") -> "ObjectScores":
        """Both scenes' counts; their IoUs averaged, weighted by reference objects (enough for selection)."""
        weights = (max(self.true_positives + self.false_negatives, 1),
                   max(other.true_positives + other.false_negatives, 1))

        def mix(a: float, b: float) -> float:
            return float(np.average(np.nan_to_num([a, b]), weights=weights))

        return ObjectScores(self.true_positives + other.true_positives, self.false_positives + other.false_positives,
                            self.false_negatives + other.false_negatives, mix(self.mask_iou, other.mask_iou),
                            mix(self.mean_matched_iou, other.mean_matched_iou))


def match_objects(reference: np.ndarray, detected: np.ndarray, threshold: float = MATCH_IOU) -> ObjectScores:
    """Score detected objects (id raster, 0: none) against reference objects (id raster) one to one.

    Pairs are taken as the object evaluation takes them (:func:`~geoseg.evaluation.instance_metrics.one_to_one`):
    by decreasing IoU while both are free, keeping pairs with IoU >= ``threshold``.
    """
    ref_ids, ref_area = np.unique(reference[reference > 0], return_counts=True)
    det_ids, det_area = np.unique(detected[detected > 0], return_counts=True)
    both = (reference > 0) & (detected > 0)
    pairs, overlap = np.unique(np.stack([reference[both], detected[both]]), axis=1, return_counts=True)
    ious = np.zeros((len(det_ids), len(ref_ids)))
    if len(overlap):
        r, d = np.searchsorted(ref_ids, pairs[0]), np.searchsorted(det_ids, pairs[1])
        ious[d, r] = overlap / (ref_area[r] + det_area[d] - overlap)
    matched = [ious[d, r] for d, r in one_to_one(ious, threshold)]
    union = np.count_nonzero((reference > 0) | (detected > 0))
    return ObjectScores(len(matched), len(det_ids) - len(matched), len(ref_ids) - len(matched),
                        float(np.count_nonzero(both) / union) if union else math.nan,
                        float(np.mean(matched)) if matched else math.nan)


def detect_block(detector: MaskRCNNDetector, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Objects in a normalised image of any size: an id raster (higher scores drawn over lower ones) and the
    score of each id (``scores[i - 1]`` for id ``i``, increasing).

    The image is cut in chunks with context; an object is kept by the chunk whose core holds its box centre,
    so an object near a chunk edge is taken whole from the chunk that sees it with context. A stand-in for
    the tiled engine's merge, for scoring held-out blocks in memory.
    """
    _, height, width = image.shape
    found: list[tuple[float, int, int, np.ndarray]] = []
    for core, context in halo_windows(height, width, BLOCK_CORE, BLOCK_HALO):
        rows, cols = context.toslices()
        result = detector.detect(image[None, :, rows, cols])[0]
        for mask, score in zip(result.masks, result.scores):
            r, c = np.nonzero(mask)
            centre_r = (r.min() + r.max()) / 2 + context.row_off
            centre_c = (c.min() + c.max()) / 2 + context.col_off
            if core.row_off <= centre_r < core.row_off + core.height and \
                    core.col_off <= centre_c < core.col_off + core.width:
                found.append((float(score), context.row_off, context.col_off, mask))
    found.sort(key=lambda f: f[0])
    ids = np.zeros((height, width), np.int32)
    for number, (_, row, col, mask) in enumerate(found, start=1):
        view = ids[row:row + mask.shape[0], col:col + mask.shape[1]]
        view[mask] = number
    return ids, np.array([f[0] for f in found], np.float32)


def scoring_at_least(ids: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """The id raster of :func:`detect_block` with only the objects scoring at least ``threshold``."""
    keep = np.concatenate([[0], np.where(scores >= threshold, np.arange(1, len(scores) + 1), 0)])
    return keep[ids].astype(np.int32)


# ------------------------------------------------------------------------------------------------ trainer
@dataclass
class InstanceTrainResult:
    """Where instance training put things and how the shipped model found objects on the held-out block."""

    bundle: Path
    scores: ObjectScores
    best_epoch: int
    epochs_run: int
    elapsed_s: float
    log_csv: Path
    log_json: Path
    scored_on: str = "validation"

    def summary(self) -> TrainingSummary:
        return TrainingSummary(output=str(self.bundle), best_epoch=self.best_epoch, epochs_run=self.epochs_run,
                               elapsed_s=round(self.elapsed_s, 3), scored_on=self.scored_on, **self.scores.summary())


class InstanceTrainer:
    """Owns the objects, the Mask R-CNN and the optimiser of one instance training run."""

    def __init__(self, config: TrainConfig, reporter: Reporter | None = None, on_epoch: EpochCallback | None = None):
        self.config = config
        self.reporter = reporter or NullReporter()
        self.on_epoch = on_epoch
        self.out = Path(config.output_dir)
        self.bundle_path = self.out / f"{config.name}.safetensors"
        self.plan, self.rng = prepare_run(config)
        self.scenes = [load_object_scene(spec, config) for spec in config.scenes]
        require_objects_in_blocks(self.scenes, config)
        stats = normalisation_stats(self.scenes, config.clip_percentiles, config.train.seed)
        self.meta = self._meta(stats)
        normalise_scenes(self.scenes, self.meta)
        self.module = build_model(self.meta).to(self.plan.device)
        self.augmenter = Augmenter(config.augment, config.train.window, config.train.seed)
        balanced = config.train.class_balanced      # auto: uniform windows, as objects are everywhere in a scene
        self.sampler = ObjectWindowSampler(self.scenes, self.augmenter.read_size(),
                                           0.0 if balanced == "auto" else balanced)
        self.optimiser = make_optimiser([p for p in self.module.parameters() if p.requires_grad], config)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.plan.autocast_dtype == torch.float16)
        self.checkpoint = Checkpoint(self.out / "checkpoint")
        self.checkpoint.folder.mkdir(parents=True, exist_ok=True)

    def _meta(self, stats: list[tuple[float, float, float | None, float | None]]) -> BundleMeta:
        config = self.config
        first = self.scenes[0]
        crs = first.profile.get("crs")
        return BundleMeta(
            name=config.name, description=config.description, task="instance", model=config.model,
            bands=config.band_specs(stats), input_dtype=config.input_dtype, input_nodata=config.input_nodata,
            scheme=config.scheme, gsd=round(first.gsd, 3) if first.gsd else None,
            crs_hint=crs.to_string() if crs else None, tile_size=config.tile_size, overlap=config.overlap,
            provenance={"config": config.source_dict(), "data": config.provenance})

    def run(self, resume: bool = False) -> InstanceTrainResult:
        config = self.config.train
        total_steps = config.epochs * config.iterations_per_epoch
        state: dict[str, Any] = {"epoch": 0, "step": 0, "best": [-1.0, -1.0], "best_epoch": 0, "stale": 0,
                                 "log": [], "elapsed_s": 0.0, "digest": config_digest(self.config)}
        if resume and self.checkpoint.exists():
            state = self.checkpoint.load(self.module, self.optimiser, self.augmenter.generator, self.rng,
                                         state["digest"])
        best_path = self.checkpoint.folder / "best.safetensors"
        t0 = time.perf_counter() - state["elapsed_s"]
        self.reporter.start(total_steps, "steps")
        self.reporter.advance(state["step"])
        stop = state["epoch"] >= config.epochs
        while not stop:
            epoch_loss = self._epoch(state, total_steps, t0)
            scores = self.score(self._detector(), "validation")
            state["epoch"] += 1
            state["elapsed_s"] = time.perf_counter() - t0
            better = self._better(scores, state["best"])
            if better:
                state.update(best=[_finite(scores.f1), _finite(scores.mask_iou)], best_epoch=state["epoch"], stale=0)
                ModelBundle.from_module(self.meta, self.module).save(best_path, overwrite=True)
            else:
                state["stale"] += 1
            row = {"epoch": state["epoch"], "step": state["step"], "lr": self.optimiser.param_groups[0]["lr"],
                   "train_loss": epoch_loss, "val_f1": scores.f1, "val_precision": scores.precision,
                   "val_recall": scores.recall, "val_mask_iou": scores.mask_iou,
                   "seconds": round(state["elapsed_s"], 1), "best": better}
            state["log"].append(row)
            self.checkpoint.save(self.module, self.optimiser, self.augmenter.generator, state, self.rng)
            write_logs(self.out, state["log"], LOG_FIELDS)
            if self.on_epoch:
                self.on_epoch(row)
            stop = (state["epoch"] >= config.epochs
                    or (config.patience is not None and state["stale"] >= config.patience)
                    or (config.time_limit_minutes is not None and state["elapsed_s"] > 60 * config.time_limit_minutes))
        result = self._finish(best_path, state)
        self.reporter.done(**result.summary().model_dump())
        return result

    def _better(self, scores: ObjectScores, best: list[float]) -> bool:
        """F1 first; at an equal F1 (often 0 early on) the pixel IoU decides."""
        delta = self.config.train.min_delta
        f1, iou = _finite(scores.f1), _finite(scores.mask_iou)
        return f1 > best[0] + delta or (abs(f1 - best[0]) <= delta and iou > best[1] + delta)

    def _epoch(self, state: dict[str, Any], total_steps: int, t0: float) -> float:
        config = self.config.train
        self.module.train()
        losses = []
        for _ in range(config.iterations_per_epoch):
            set_learning_rate(self.optimiser, self.config, state["step"], total_steps, time.perf_counter() - t0)
            images, targets = self._training_batch()
            with self.plan.autocast():
                parts = self.module(images, targets)
            loss = sum(parts.values())
            self.optimiser.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimiser)
            self.scaler.update()
            losses.append(float(loss.detach()))
            state["step"] += 1
            self.reporter.advance(1)
        return float(np.mean(losses))

    def _training_batch(self) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
        images, ids, classes = self.sampler.batch(self.config.train.batch_size, self.rng)
        x, y = self.augmenter(torch.from_numpy(images), torch.from_numpy(ids))
        x, y = x.to(self.plan.device), y.to(self.plan.device)
        return list(x), [window_targets(y[i], classes[i]) for i in range(len(classes))]

    def _detector(self) -> MaskRCNNDetector:
        """The network being trained, as a detector (in eval mode until the next epoch sets it training)."""
        return MaskRCNNDetector(ModelBundle(self.meta, {}), self.plan.device, network=self.module,
                                score_threshold=min(SELECTION_FLOOR, self.meta.score_threshold))

    def score(self, detector: MaskRCNNDetector, kind: str) -> ObjectScores:
        """Objects found on every scene's ``kind`` block against its polygons: matched at the bundle's score
        threshold, the pixel IoU over everything the detector finds (its threshold may be lower)."""
        total = None
        for scene in self.scenes:
            box = scene.val_box if kind == "validation" else scene.test_box
            if box is None:
                continue
            reference = scene.labels[box.slices]
            ids, found = detect_block(detector, scene.image[:, box.row0:box.row1, box.col0:box.col1])
            scores = replace(match_objects(reference, scoring_at_least(ids, found, self.meta.score_threshold)),
                             mask_iou=match_objects(reference, ids).mask_iou)
            total = scores if total is None else total + scores
        assert total is not None
        return total

    def _finish(self, best_path: Path, state: dict[str, Any]) -> InstanceTrainResult:
        """Score the best weights as shipped (stored precision) and write the final bundle with its metrics."""
        best = load_bundle(best_path)
        staged = self.out / "checkpoint" / "best_shipped.safetensors"
        best.save(staged, overwrite=True, half=self.config.half)
        detector = MaskRCNNDetector(load_bundle(staged), self.plan.device,
                                    score_threshold=min(SELECTION_FLOOR, self.meta.score_threshold))
        validation = self.score(detector, "validation")
        kind = "test" if self.config.test is not None else "validation"
        scores = self.score(detector, "test") if kind == "test" else validation
        blocks = [(s, s.test_box if kind == "test" else s.val_box) for s in self.scenes]
        metrics = {**_rounded(scores), "objects": scores.true_positives + scores.false_negatives,
                   "evaluated_on": [f"{s.path.name}: {b.height}x{b.width} px {kind} block (rows {b.row0}..{b.row1}, "
                                    f"cols {b.col0}..{b.col1})" for s, b in blocks if b is not None],
                   "evaluated_with": f"one-to-one matching at IoU >= {MATCH_IOU}; score threshold "
                                     f"{self.meta.score_threshold}, mask threshold {self.meta.mask_threshold}"}
        training = {"best_epoch": state["best_epoch"], "epochs_run": state["epoch"], "steps": state["step"],
                    "elapsed_s": round(state["elapsed_s"], 1), "device": str(self.plan.device),
                    "precision": self.plan.precision,
                    "training_objects": int(sum(len(np.unique(s.labels[b.slices])) - 1
                                                for s in self.scenes for b in s.train_boxes)),
                    "validation_block": _rounded(validation)}
        meta = best.meta.model_copy(update={"metrics": metrics,
                                            "provenance": {**best.meta.provenance, "training": training}})
        check_writable(self.bundle_path, overwrite=True)
        ModelBundle(meta, best.state_dict).save(self.bundle_path, overwrite=True, half=self.config.half)
        return InstanceTrainResult(self.bundle_path, scores, state["best_epoch"], state["epoch"],
                                   round(state["elapsed_s"], 1), self.out / "log.csv", self.out / "log.json", kind)


def _finite(value: float) -> float:
    return 0.0 if math.isnan(value) else value


def _rounded(scores: ObjectScores) -> dict[str, Any]:
    return {"f1": round(scores.f1, 6), "precision": round(scores.precision, 6), "recall": round(scores.recall, 6),
            "true_positives": scores.true_positives, "false_positives": scores.false_positives,
            "false_negatives": scores.false_negatives, "mean_matched_iou": round(scores.mean_matched_iou, 6),
            "mask_iou": round(scores.mask_iou, 6)}


def train_instances(config: TrainConfig, *, resume: bool = False, overwrite: bool = False,
                    reporter: Reporter | None = None, on_epoch: EpochCallback | None = None) -> InstanceTrainResult:
    """Train the Mask R-CNN a ``task: instance`` config describes; returns the bundle and its held-out scores."""
    target = Path(config.output_dir) / f"{config.name}.safetensors"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not resume:
        check_writable(target, overwrite)
    return InstanceTrainer(config, reporter, on_epoch).run(resume=resume)
