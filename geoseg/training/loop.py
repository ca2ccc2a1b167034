"""The training loop: sample, augment, optimise, validate each epoch, keep the best, write a bundle.

The best epoch (validation mIoU) is kept as a bundle; after training it is re-evaluated through the real
:class:`~geoseg.inference.predictor.Predictor` (tiles, blending, fp16 weights if stored so) on the validation block,
and those numbers — what a user will get — go into the bundle's metadata with the config.

A checkpoint after every epoch makes training resumable (:mod:`geoseg.training.checkpoint`). Configs with
``task: instance`` train a Mask R-CNN instead (:mod:`geoseg.training.instances`).
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from geoseg.model.bundle import ModelBundle, load_bundle
from geoseg.model.meta import BandSpec, BundleMeta, ModelSpec, Normalisation
from geoseg.evaluation.metrics import IGNORE_INDEX, ConfusionMatrix, Scores
from geoseg.model.networks import build_model, size_multiple
from geoseg.progress import NullReporter, Reporter
from geoseg.summaries import TrainingSummary
from geoseg.training.augment import Augmenter, mixup
from geoseg.training.checkpoint import Checkpoint, config_digest, write_logs
from geoseg.errors import ConfigError, InputError, ModelMismatchError
from geoseg.io.outputs import atomic_output, check_writable
from geoseg.training.baseline import ForestScores, forest_baseline, write_comparison
from geoseg.training.config import PolygonSplitSpec, SplitSpec, TrainConfig, load_config
from geoseg.training.data import (Box, SceneData, WindowSampler, class_counts, derived_stats, load_scene,
                                  normalisation_stats, normalise_scenes, require_labelled_blocks, write_block)
from geoseg.training.losses import SegmentationLoss, class_weights
from geoseg.training.pseudo import predict_confident, pseudo_labels
from geoseg.training.schedule import make_optimiser, prepare_run, set_learning_rate
from geoseg.training.splits import is_sparse

if TYPE_CHECKING:
    from geoseg.training.instances import InstanceTrainResult

EpochCallback = Callable[[dict[str, Any]], None]
LOG_FIELDS = ("epoch", "step", "lr", "train_loss", "val_mean_iou", "val_overall_accuracy", "seconds", "best")


@dataclass
class TrainResult:
    """Where training put things and how the model did on the validation block (through the Predictor)."""

    bundle: Path
    scores: Scores
    best_epoch: int
    epochs_run: int
    elapsed_s: float
    log_csv: Path
    log_json: Path
    report_dir: Path
    #: "test" when ``scores`` come from the config's test block, else "validation".
    scored_on: str = "validation"
    #: A RandomForest's scores on the same block, trained on the same pixels (None when not run).
    forest_scores: Scores | None = None

    def summary(self) -> TrainingSummary:
        """The JSON-able part: what the CLI's done event carries."""
        forest = self.forest_scores
        return TrainingSummary(output=str(self.bundle), best_epoch=self.best_epoch, epochs_run=self.epochs_run,
                               elapsed_s=round(self.elapsed_s, 3), scored_on=self.scored_on,
                               random_forest_overall_accuracy=forest.overall_accuracy if forest else None,
                               random_forest_mean_iou=forest.mean_iou if forest else None,
                               **self.scores.summary())


# ------------------------------------------------------------------------------------------- helpers
# -------------------------------------------------------------------------------------------- trainer
class Trainer:
    """Owns the data, the network and the optimiser of one training run."""

    def __init__(self, config: TrainConfig, reporter: Reporter | None = None, on_epoch: EpochCallback | None = None,
                 start_from: ModelBundle | None = None):
        config = config.completed()
        self.config = config
        self.start_from = start_from
        start_bands = _checked_start(start_from, config) if start_from is not None else None   # before any work
        self.reporter = reporter or NullReporter()
        self.on_epoch = on_epoch
        self.out = Path(config.output_dir)
        self.bundle_path = self.out / f"{config.name}.safetensors"
        self.plan, self.rng = prepare_run(config)

        self.scenes = [load_scene(spec, config) for spec in config.scenes]
        require_labelled_blocks(self.scenes, config)
        self.validation_files = [write_block(s, s.val_box, "validation", config.scheme_ids, self.out / "validation_data",
                                             config.band_names, config.nodata_id) for s in self.scenes]
        self.test_files = [write_block(s, s.test_box, "test", config.scheme_ids, self.out / "test_data",
                                       config.band_names, config.nodata_id) for s in self.scenes if s.test_box]
        if start_from is None:
            fixed = config.normalisation == "fixed"
            stats = normalisation_stats(self.scenes, config.clip_percentiles, config.train.seed) if fixed else None
            bands = config.band_specs(stats) if stats else [BandSpec(name=n) for n in config.band_names]
            indices = config.index_names()
            derived = [BandSpec(name=name, mean=m, std=s) for name, (m, s, _, _) in
                       zip(indices, derived_stats(self.scenes, config.band_names, indices, config.train.seed))]
            self.meta = self._meta(bands, derived, config.model, config.normalisation)
        else:       # fine-tuning: the weights were learnt on the model's normalisation, so keep it
            self.meta = self._meta(start_bands, list(start_from.meta.derived), start_from.meta.model,
                                   start_from.meta.normalisation)
        self.forest = self._forest()                      # on the raw values, before they are normalised
        normalise_scenes(self.scenes, self.meta)
        self.counts = class_counts(self.scenes, self.meta.num_classes)

        multiple = size_multiple(self.meta)
        if config.train.window % multiple:
            raise ConfigError(f"train.window {config.train.window}: must be a multiple of {multiple} for "
                             f"{self.meta.model.architecture} (try {config.train.window // multiple * multiple or multiple})")
        self.multiple = multiple
        self.module = (start_from.build() if start_from else build_model(self.meta)).to(self.plan.device)
        self.augmenter = Augmenter(config.augment, config.train.window, config.train.seed)
        balanced = config.train.class_balanced
        if balanced == "auto":
            balanced = 1.0 if any(is_sparse(s.labels, s.valid) for s in self.scenes) else 0.0
        self.balanced = balanced
        self.sampler = WindowSampler(self.scenes, self.augmenter.read_size(), self.meta.num_classes, balanced)
        self.loss = SegmentationLoss(config.loss.ce_weight, config.loss.dice_weight, self._weights(),
                                     IGNORE_INDEX).to(self.plan.device)
        self.optimiser = make_optimiser(self.module.parameters(), config)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.plan.autocast_dtype == torch.float16)
        self.checkpoint = Checkpoint(self.out / "checkpoint")
        self.checkpoint.folder.mkdir(parents=True, exist_ok=True)

    def _meta(self, bands: list[BandSpec], derived: list[BandSpec], model: ModelSpec, normalisation: Normalisation
              ) -> BundleMeta:
        config = self.config
        first = self.scenes[0]
        crs = first.profile.get("crs")
        provenance: dict[str, Any] = {"config": config.source_dict(), "data": config.provenance}
        if self.start_from is not None:
            source = self.start_from
            provenance["started_from"] = source.path.name if source.path else source.meta.name
        return BundleMeta(
            name=config.name, description=config.description, model=model,
            bands=bands, derived=derived, normalisation=normalisation, input_dtype=config.input_dtype,
            input_nodata=config.input_nodata,
            scheme=config.scheme, gsd=round(first.gsd, 3) if first.gsd else None,
            crs_hint=crs.to_string() if crs else None, tile_size=config.tile_size, overlap=config.overlap,
            provenance=provenance)

    def _forest(self) -> ForestScores | None:
        """The RandomForest baseline, unless the config turns it off or scikit-learn is missing (a warning)."""
        if not self.config.compare_random_forest:
            return None
        try:
            return forest_baseline(self.scenes, self.config.band_names, [c.name for c in self.config.classes],
                                   self.config.train.seed)
        except InputError as err:
            self.reporter.warn(f"no RandomForest comparison: {err}")
            return None

    def _weights(self) -> torch.Tensor | None:
        spec = self.config.loss.class_weights
        if spec == "none":
            return None
        values = class_weights(self.counts, self.config.loss.max_class_weight) if spec == "auto" else np.array(spec)
        return torch.tensor(values, dtype=torch.float32)

    # ------------------------------------------------------------------------------------------ run
    def run(self, resume: bool = False) -> TrainResult:
        config = self.config.train
        total_steps = config.epochs * config.iterations_per_epoch
        state: dict[str, Any] = {"epoch": 0, "step": 0, "best_miou": -1.0, "best_epoch": 0, "stale": 0,
                                 "log": [], "elapsed_s": 0.0, "digest": config_digest(self.config)}
        if resume and self.checkpoint.exists():
            state = self.checkpoint.load(self.module, self.optimiser, self.augmenter.generator, self.rng,
                                         state["digest"])
            if state.get("pseudo_labelled") is not None:
                self._use_labels([np.load(path, allow_pickle=False) for path in self._pseudo_files()])
        best_path = self.checkpoint.folder / "best.safetensors"
        t0 = time.perf_counter() - state["elapsed_s"]
        self.reporter.start(total_steps, "steps")
        self.reporter.advance(state["step"])
        stop = state["epoch"] >= config.epochs
        while not stop:
            epoch_loss = self._epoch(state, total_steps, t0)
            self._precise_batchnorm()
            scores = self.validate()
            state["epoch"] += 1
            state["elapsed_s"] = time.perf_counter() - t0
            # a tie goes to the later (more trained) epoch: a few held-out polygons often score 1.0 early on
            delta = self.config.train.min_delta
            better = (scores.mean_iou > state["best_miou"] + delta
                      or (delta == 0 and scores.mean_iou == state["best_miou"]))
            if better:
                state.update(best_miou=scores.mean_iou, best_epoch=state["epoch"], stale=0)
                ModelBundle.from_module(self.meta, self.module).save(best_path, overwrite=True)
            else:
                state["stale"] += 1
            if self._self_training_due(state):
                self._add_pseudo_labels(best_path, state)
            row = {"epoch": state["epoch"], "step": state["step"], "lr": self.optimiser.param_groups[0]["lr"],
                   "train_loss": epoch_loss, "val_mean_iou": scores.mean_iou,
                   "val_overall_accuracy": scores.overall_accuracy, "seconds": round(state["elapsed_s"], 1),
                   "best": better}
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

    def _epoch(self, state: dict[str, Any], total_steps: int, t0: float) -> float:
        config = self.config.train
        self.module.train()
        losses = []
        for _ in range(config.iterations_per_epoch):
            set_learning_rate(self.optimiser, self.config, state["step"], total_steps, time.perf_counter() - t0)
            x, y = self._training_batch()
            alpha = self.config.augment.mixup
            if alpha > 0:
                x, partner, lam = mixup(x, alpha, self.rng)
            with self.plan.autocast():
                logits = self.module(x)
            loss = self.loss(logits.float(), y)
            if alpha > 0:
                loss = lam * loss + (1 - lam) * self.loss(logits.float(), y[partner])
            self.optimiser.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimiser)
            self.scaler.update()
            losses.append(float(loss.detach()))
            state["step"] += 1
            self.reporter.advance(1)
        return float(np.mean(losses))

    def _training_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = self.sampler.batch(self.config.train.batch_size, self.rng)
        x, y = self.augmenter(torch.from_numpy(images), torch.from_numpy(labels).long())
        x, y = x.to(self.plan.device), y.to(self.plan.device)
        if self.plan.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    # ----------------------------------------------------------------------------------- self-training
    def _self_training_due(self, state: dict[str, Any]) -> bool:
        """Whether this epoch ends the share of the budget trained on the given labels alone."""
        spec, train = self.config.train.self_training, self.config.train
        if spec is None or state.get("pseudo_labelled") is not None or state["epoch"] >= train.epochs:
            return False
        done = state["epoch"] / train.epochs
        if train.time_limit_minutes is not None:
            done = max(done, state["elapsed_s"] / (60 * train.time_limit_minutes))
        return done >= spec.start

    def _add_pseudo_labels(self, best_path: Path, state: dict[str, Any]) -> None:
        """Label every training scene with the best model's confident predictions (geoseg.training.pseudo);
        the labels are kept beside the checkpoint, so a resumed run trains on the same ones."""
        spec = self.config.train.self_training
        assert spec is not None
        split = self.config.validation
        buffer = max(split.buffer, 2) if isinstance(split, PolygonSplitSpec) else 0
        teacher = load_bundle(best_path).build().to(self.plan.device)
        labels = []
        for scene in self.scenes:
            classes, confidence = predict_confident(teacher, scene.image, self.multiple, self.plan)
            labels.append(pseudo_labels(scene, classes, confidence, spec.confidence, buffer))
        state["pseudo_labelled"] = int(sum(np.count_nonzero(new != s.labels) for new, s in zip(labels, self.scenes)))
        for new, path in zip(labels, self._pseudo_files()):
            with atomic_output(path, overwrite=True) as tmp, open(tmp, "wb") as handle:
                np.save(handle, new, allow_pickle=False)
        self._use_labels(labels)

    def _use_labels(self, labels: list[np.ndarray]) -> None:
        for scene, new in zip(self.scenes, labels):
            scene.labels = new
        self.sampler = WindowSampler(self.scenes, self.augmenter.read_size(), self.meta.num_classes, self.balanced)

    def _pseudo_files(self) -> list[Path]:
        return [self.checkpoint.folder / f"pseudo_labels_{i}.npy" for i in range(len(self.scenes))]

    def _precise_batchnorm(self) -> None:
        """Replace BatchNorm running averages by the plain mean over ``precise_bn_batches`` fresh batches.

        Running averages weight the last few batches most; with batches of spatially correlated windows
        they swing from step to step, and validation scores swing with them. Averaging many batches with
        the weights frozen removes that part of the epoch-to-epoch noise ("precise BN").
        """
        count = self.config.train.precise_bn_batches
        norms = [m for m in self.module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        if not count or not norms:
            return
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None                          # cumulative average over the batches below
        self.module.train()
        with torch.no_grad(), self.plan.autocast():
            for _ in range(count):
                self.module(self._training_batch()[0])
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum

    def validate(self) -> Scores:
        """Scores on every scene's validation block (in-memory tiled forward pass)."""
        matrix = ConfusionMatrix(self.meta.num_classes)
        for scene in self.scenes:
            box = scene.val_box
            image = scene.image[:, box.row0:box.row1, box.col0:box.col1]
            labels = scene.validation_labels()
            if scene.val_labels is None:
                predicted, _ = predict_confident(self.module, image, self.multiple, self.plan)
            else:       # held-out polygons: small tiles around them only
                predicted, _ = predict_confident(self.module, image, self.multiple, self.plan, tile=64, halo=64,
                                                 needed=labels != IGNORE_INDEX)
            matrix.update(labels, predicted)
        return matrix.scores([c.name for c in self.meta.scheme.classes])

    def _finish(self, best_path: Path, state: dict[str, Any]) -> TrainResult:
        """Evaluate the best weights as shipped (Predictor, stored precision) and write the final bundle.

        The recorded metrics are the test block's when the config has one (untouched by model selection),
        else the validation block's.
        """
        best = load_bundle(best_path)
        staged = self.out / "checkpoint" / "best_shipped.safetensors"
        best.save(staged, overwrite=True, half=self.config.half)
        config = self.config
        validation = self._evaluate(staged, self.validation_files, self.out / "validation")
        kind, files, split = (("test", self.test_files, config.test) if self.test_files
                              else ("validation", self.validation_files, config.validation))
        report_dir = self.out / kind
        scores = self._evaluate(staged, files, report_dir) if kind == "test" else validation
        metrics = {**{k: round(v, 6) for k, v in scores.summary().items()}, "pixels": scores.pixels,
                   "per_class_iou": {c.name: (None if math.isnan(c.iou) else round(c.iou, 6)) for c in scores.per_class},
                   # the scene each block was cut from (the block files live only in this run's folder)
                   "evaluated_on": [f"{scene.path.name}: {_block_label(kind, split, box)}"
                                    for scene, box in zip(self._held_out(kind), self._boxes(kind))],
                   "evaluated_with": f"Predictor tile {self.meta.tile_size}, overlap {self.meta.overlap}, hann blend"}
        training = {"best_epoch": state["best_epoch"], "epochs_run": state["epoch"], "steps": state["step"],
                    "elapsed_s": round(state["elapsed_s"], 1), "device": str(self.plan.device),
                    "precision": self.plan.precision, "class_pixels": self.counts.tolist(),
                    "best_epoch_val_mean_iou_in_loop": round(state["best_miou"], 6),
                    "validation_block": {**{k: round(v, 6) for k, v in validation.summary().items()},
                                         "pixels": validation.pixels}}
        if state.get("pseudo_labelled") is not None:
            training["pseudo_labelled_pixels"] = state["pseudo_labelled"]
        forest = None
        if self.forest is not None:
            forest = self.forest.test if kind == "test" else self.forest.validation
            metrics["random_forest"] = self.forest.record(forest)
            training["validation_block"]["random_forest"] = self.forest.record(self.forest.validation)
            write_comparison(report_dir / "comparison.md", {"geoseg model": scores, "RandomForest": forest},
                             f"{kind} block", self.forest)
        meta = best.meta.model_copy(update={"metrics": metrics,
                                            "provenance": {**best.meta.provenance, "training": training}})
        check_writable(self.bundle_path, overwrite=True)
        ModelBundle(meta, best.state_dict).save(self.bundle_path, overwrite=True, half=self.config.half)
        return TrainResult(self.bundle_path, scores, state["best_epoch"], state["epoch"],
                           round(state["elapsed_s"], 1), self.out / "log.csv", self.out / "log.json", report_dir,
                           kind, forest)

    def _evaluate(self, bundle: Path, files: list[tuple[Path, Path]], folder: Path) -> Scores:
        """Scores of a bundle over block files, through ``geoseg.evaluation.evaluate`` (what users will get)."""
        from geoseg.evaluation.evaluate import evaluate

        matrix = ConfusionMatrix(self.meta.num_classes)
        for image_path, labels_path in files:
            matrix += evaluate(bundle, image_path, labels_path, folder / image_path.stem, overwrite=True).confusion
        return matrix.scores([c.name for c in self.meta.scheme.classes])

    def _held_out(self, kind: str) -> list[SceneData]:
        """The scenes with a block of this kind, in the order of their block files."""
        return [s for s in self.scenes if s.test_box] if kind == "test" else self.scenes

    def _boxes(self, kind: str) -> list[Box]:
        return [s.test_box if kind == "test" else s.val_box for s in self._held_out(kind)]


def _checked_start(start: ModelBundle, config: TrainConfig) -> list[BandSpec]:
    """The starting model's bands, after checking it reads the config's bands and predicts its classes."""
    where = start.path or start.meta.name
    bands = [b.name for b in start.meta.bands]
    if bands != config.band_names:
        raise ModelMismatchError(f"{where}: reads bands {bands}, the config's band_names are {config.band_names}; "
                         "fine-tune with a config for the same bands")
    theirs = [(c.id, c.name) for c in start.meta.scheme.classes]
    ours = [(c.id, c.name) for c in config.scheme.classes]
    if theirs != ours:
        raise ModelMismatchError(f"{where}: predicts classes {theirs}, the config has {ours}; "
                         "fine-tune with a config for the same classes")
    return list(start.meta.bands)


def _block_label(kind: str, split: SplitSpec | PolygonSplitSpec, box: Box) -> str:
    """E.g. "404x1128 px test block (rows 1024..1428)"."""
    if isinstance(split, PolygonSplitSpec):
        return (f"held-out polygons ({split.polygons:.0%} of each class's) in the {box.height}x{box.width} px "
                f"box at row {box.row0}, column {box.col0}")
    end = box.row1 if split.axis == "rows" else box.col1
    return f"{box.height}x{box.width} px {kind} block ({split.axis} {split.start}..{end})"


def train(config: TrainConfig | str | os.PathLike, *, resume: bool = False, overwrite: bool = False,
          reporter: Reporter | None = None, on_epoch: EpochCallback | None = None,
          start_from: ModelBundle | None = None) -> TrainResult | InstanceTrainResult:
    """Train the model a config describes; returns where the bundle is and its validation scores.

    A ``task: instance`` config trains a Mask R-CNN (:func:`geoseg.training.instances.train_instances`).

    ``config`` is a :class:`TrainConfig` or a YAML path. ``resume`` continues from the run's checkpoint;
    without it an existing bundle in the output folder is only replaced with ``overwrite``.
    ``start_from`` fine-tunes a model instead of training ``config.model`` from scratch: its architecture
    (pruned widths included), weights and band normalisation are kept; its bands and classes must be the
    config's.
    """
    config = (config if isinstance(config, TrainConfig) else load_config(config)).completed()
    if config.task == "instance":
        if start_from is not None:
            raise ConfigError(f"{config.name}: fine-tuning starts semantic models only; train the instance model "
                              "from scratch")
        from geoseg.training.instances import train_instances   # torchvision detection: only for instances

        return train_instances(config, resume=resume, overwrite=overwrite, reporter=reporter, on_epoch=on_epoch)
    target = Path(config.output_dir) / f"{config.name}.safetensors"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not resume:
        check_writable(target, overwrite)
    return Trainer(config, reporter, on_epoch, start_from).run(resume=resume)
