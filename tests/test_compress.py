"""Compression: channel surgery is exact, pruned and int8 models load and predict end to end, errors are clear.

Agreement with the fp32 model is asserted on the default model (trained, so agreement means something);
thresholds are set from measurements on the held-out Zion sample (benchmarks/RESULTS.md, "Compression and
ONNX") with a margin for other CPUs.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from rasterio.windows import Window

from geoseg.model.bundle import ModelBundle, load_bundle
from geoseg.model.loading import DEFAULT_MODEL_PATH
from geoseg.model.channels import prunable_pairs
from geoseg.compress import calibration_tiles, prune, prune_module, quantize
from geoseg.errors import ConfigError, ModelError, ModelMismatchError, OutputError, ParameterError
from geoseg.evaluation.evaluate import evaluate
from geoseg.model.networks import build_model
from geoseg.model.onnx import load_onnx
from geoseg.inference.predictor import Predictor

from .conftest import (LANDSAT7_FRAME, NAIP, ROOT, ZION, ZION_LABELS, read_band, tiny_bundle, tiny_config, tiny_meta,
                       write_crop)

ZION_BANDS = ["blue", "green", "red", "nir"]
#: Pixel agreement with the fp32 default model on the Zion sample, measured (2026-11-25 model, one context
#: level, CE only): int8 static 0.963 (MinMax; Percentile/Entropy calibration 0.964/0.963), pruned 30 %
#: without fine-tuning 0.732. This model's forest/shrubland margins are thin, so disagreements sit where
#: fp32 is itself unsure; the int8 model's mIoU is what must hold (0.276 vs 0.279 measured). Thresholds leave
#: ~0.5-3 points for other CPUs and kernels.
INT8_AGREEMENT = 0.955
INT8_MAX_MIOU_LOSS = 0.01
PRUNED_AGREEMENT = 0.70
needs_default = pytest.mark.skipif(not DEFAULT_MODEL_PATH.is_file(),
                                   reason=f"agreement needs the trained default model at {DEFAULT_MODEL_PATH}")


def zion_meta(architecture: str = "Unet"):
    return tiny_meta(ZION_BANDS, 4, architecture=architecture, tile=128, overlap=32, gsd=30.0, mean=10000.0,
                     std=2500.0, input_dtype="uint16")


@pytest.fixture(scope="module")
def unet_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bundle = tiny_bundle(zion_meta())
    bundle.meta.metrics = {"mean_iou": 0.5}
    return bundle.save(tmp_path_factory.mktemp("compress") / "unet.safetensors")


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_crop(ZION, tmp_path_factory.mktemp("scene") / "zion_crop.tif", Window(300, 100, 384, 256))


# ------------------------------------------------------------------------------------------ pruning
def _kill_half(network: torch.nn.Module) -> None:
    """Make the first half of every prunable channel dead: zero filters, zero BatchNorm scale and shift."""
    with torch.no_grad():
        for pair in prunable_pairs(network):
            half = network.get_submodule(pair.producer).out_channels // 2
            network.get_submodule(pair.producer).weight[:half] = 0
            if network.get_submodule(pair.producer).bias is not None:
                network.get_submodule(pair.producer).bias[:half] = 0
            if pair.norm:
                network.get_submodule(pair.norm).weight[:half] = 0
                network.get_submodule(pair.norm).bias[:half] = 0


class NestedContext(torch.nn.Module):
    """Nested Sequentials of conv-BN-ReLU blocks with branching between them (the ContextFCN layout)."""

    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int, kernel: int) -> torch.nn.Sequential:
            return torch.nn.Sequential(torch.nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
                                       torch.nn.BatchNorm2d(cout), torch.nn.ReLU(inplace=True))

        self.pixel = torch.nn.Sequential(block(4, 16, 1), block(16, 16, 1))
        self.context = torch.nn.Sequential(block(16, 16, 3), block(16, 16, 3))
        self.fuse = torch.nn.Sequential(block(32, 16, 1), torch.nn.Conv2d(16, 3, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.pixel(x)
        context = torch.nn.functional.interpolate(self.context(torch.nn.functional.avg_pool2d(features, 4)),
                                                  size=x.shape[-2:], mode="bilinear")
        return self.fuse(torch.cat([features, context], dim=1))


NETWORKS = {"Unet": lambda: build_model(zion_meta("Unet")), "SimpleFCN": lambda: build_model(zion_meta("SimpleFCN")),
            "nested": NestedContext}


def test_sequential_chains_pair_only_inside_their_sequential() -> None:
    pairs = [(p.producer, p.norm, p.consumer) for p in prunable_pairs(NestedContext())]
    assert pairs == [("pixel.0.0", "pixel.0.1", "pixel.1.0"), ("context.0.0", "context.0.1", "context.1.0"),
                     ("fuse.0.0", "fuse.0.1", "fuse.1")]  # pixel.1 and context.1 feed a concatenation


@pytest.mark.parametrize("kind", NETWORKS)
def test_pruning_dead_channels_changes_nothing(kind: str) -> None:
    """L1 pruning removes exactly the dead channels, and the surgery keeps every live weight in place."""
    torch.manual_seed(0)
    network = NETWORKS[kind]().eval()
    _kill_half(network)
    x = torch.randn(2, 4, 64, 64)
    with torch.inference_mode():
        before = network(x)
    widths = prune_module(network, 0.5)
    pairs = prunable_pairs(network)
    assert widths and len(widths) == len(pairs)
    with torch.inference_mode():
        torch.testing.assert_close(network(x), before, atol=1e-5, rtol=1e-4)
    for pair in pairs:
        assert network.get_submodule(pair.consumer).in_channels == widths[pair.producer]


def test_resnet_and_decoder_blocks_are_found() -> None:
    names = [p.producer for p in prunable_pairs(build_model(zion_meta()))]
    assert "encoder.layer1.0.conv1" in names and "decoder.blocks.0.conv1.0" in names
    assert not any(n.endswith("conv2") for n in names)  # BasicBlock conv2 feeds the residual sum


def test_pruned_bundle_is_smaller_loads_and_predicts(unet_path: Path, scene: Path, tmp_path: Path) -> None:
    summary = prune(unet_path, tmp_path / "pruned.safetensors", 0.3)
    assert summary.parameters < 0.8 * summary.source_parameters
    assert summary.size_bytes < summary.source_size_bytes
    pruned = load_bundle(tmp_path / "pruned.safetensors")
    assert pruned.meta.model.pruned["encoder.layer1.0.conv1"] == 48  # 64 · 0.7 = 44.8, to a multiple of 8
    assert sum(p.numel() for p in pruned.build().parameters()) == summary.parameters
    record = pruned.meta.provenance["compression"]
    assert record["method"] == "prune-l1" and record["amount"] == 0.3
    assert record["source_metrics"] == {"mean_iou": 0.5} and pruned.meta.metrics == {}
    result = Predictor(pruned).predict(scene, tmp_path / "map.tif")
    assert result.tiles_run == 12 and read_band(tmp_path / "map.tif").shape == (256, 384)


def test_pruned_layer_the_architecture_lacks_is_refused(unet_path: Path, tmp_path: Path) -> None:
    bundle = load_bundle(unet_path)
    spec = bundle.meta.model.model_copy(update={"pruned": {"encoder.layer9.conv1": 8}})
    ModelBundle(bundle.meta.model_copy(update={"model": spec}), bundle.state_dict).save(tmp_path / "bad.safetensors")
    with pytest.raises(ModelError, match="pruned layer 'encoder.layer9.conv1' is not a prunable layer"):
        load_bundle(tmp_path / "bad.safetensors").build()


def test_prune_refuses_bad_arguments(unet_path: Path, tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="^amount 0: must be a fraction"):
        prune(unet_path, tmp_path / "p.safetensors", 0)
    with pytest.raises(OutputError, match="name the output .safetensors"):
        prune(unet_path, tmp_path / "p.onnx", 0.3)
    with pytest.raises(ConfigError, match="ft.yaml: config not found"):
        prune(unet_path, tmp_path / "p.safetensors", 0.3, fine_tune=tmp_path / "ft.yaml")   # no such config
    assert not (tmp_path / "p.safetensors").exists()


def _fine_tune_config(tmp_path: Path, **overrides: object) -> Path:
    """A short training config on a real crop of the Zion sample, for the default model's bands and classes."""
    scene = write_crop(ZION, tmp_path / "ft_scene.tif", Window(0, 0, 512, 256))
    labels = write_crop(ZION_LABELS, tmp_path / "ft_labels.tif", Window(0, 0, 512, 256))
    validation = {"axis": "rows", "start": 192, "buffer": 8}
    config = tiny_config(tmp_path, scene, labels, name="finetuned", validation=validation)
    config["train"] = {**config["train"], "precise_bn_batches": 0}
    for key, value in overrides.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) else value
    path = tmp_path / "ft.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@needs_default
def test_fine_tuning_starts_from_the_pruned_weights(tmp_path: Path) -> None:
    """With a vanishing learning rate, the fine-tuned weights are the pruned ones: training began there."""
    plain = prune(DEFAULT_MODEL_PATH, tmp_path / "plain.safetensors", 0.3)
    config = _fine_tune_config(tmp_path, optimiser={"lr": 1e-12}, train={"epochs": 1, "iterations_per_epoch": 2})
    tuned = prune(DEFAULT_MODEL_PATH, tmp_path / "tuned.safetensors", 0.3, fine_tune=config)
    assert tuned.parameters == plain.parameters
    a, b = load_bundle(tmp_path / "plain.safetensors"), load_bundle(tmp_path / "tuned.safetensors")
    assert b.meta.model == a.meta.model and b.meta.bands == a.meta.bands      # pruned widths, normalisation
    weights = dict(a.build().named_parameters())
    for name, value in b.build().named_parameters():
        torch.testing.assert_close(value, weights[name], atol=1e-6, rtol=0)
    record = b.meta.provenance["compression"]
    assert record["method"] == "prune-l1" and record["fine_tune"]["epochs"] == 1
    assert record["source_metrics"]["mean_iou"] > 0.2                     # the default model's own scores
    assert 0 <= b.meta.metrics["mean_iou"] <= 1 and b.meta.provenance["started_from"] == a.meta.name


@needs_default
def test_fine_tuning_recovers_accuracy_lost_to_pruning(tmp_path: Path) -> None:
    plain = tmp_path / "plain.safetensors"
    prune(DEFAULT_MODEL_PATH, plain, 0.5)
    config = _fine_tune_config(tmp_path, optimiser={"lr": 2e-3},
                               train={"epochs": 4, "iterations_per_epoch": 15, "batch_size": 16})
    prune(DEFAULT_MODEL_PATH, tmp_path / "tuned.safetensors", 0.5, fine_tune=config)
    block = Window(0, 192 + 8, 512, 56)                                  # the config's validation rows
    scene, labels = write_crop(ZION, tmp_path / "v.tif", block), write_crop(ZION_LABELS, tmp_path / "vl.tif", block)
    before = evaluate(plain, scene, labels, tmp_path / "before").scores
    after = evaluate(tmp_path / "tuned.safetensors", scene, labels, tmp_path / "after").scores
    # measured: OA 0.710 -> 0.887, mIoU 0.108 -> 0.217
    assert after.overall_accuracy > before.overall_accuracy + 0.05, (before.summary(), after.summary())
    assert after.mean_iou > before.mean_iou, (before.summary(), after.summary())


def test_fine_tuning_needs_the_same_bands_and_classes(unet_path: Path, tmp_path: Path) -> None:
    config = _fine_tune_config(tmp_path, band_names=["b", "g", "r", "n"])
    with pytest.raises(ModelMismatchError, match="reads bands .* fine-tune with a config for the same bands"):
        prune(unet_path, tmp_path / "p.safetensors", 0.3, fine_tune=config)
    assert not (tmp_path / "p.safetensors").exists()


# ------------------------------------------------------------------------------------- quantisation
def test_calibration_tiles_are_real_normalised_and_skip_nodata() -> None:
    meta = tiny_meta(["red", "green", "blue"], 3, tile=64, overlap=16, gsd=300.0, mean=100.0, std=50.0,
                     input_dtype="uint8")
    tiles = calibration_tiles(meta, [LANDSAT7_FRAME], None, 6)
    assert tiles.shape == (6, 3, 64, 64) and tiles.dtype == np.float32
    assert all(np.abs(t).sum() > 0 for t in tiles)  # all-nodata tiles (the black frame) are never picked
    with pytest.raises(ModelMismatchError, match="naip_2020_rgbn.tif: cannot calibrate model"):
        calibration_tiles(zion_meta(), [NAIP], None, 4)


def test_static_and_dynamic_int8_predict_end_to_end(unet_path: Path, scene: Path, tmp_path: Path) -> None:
    static = quantize(unet_path, tmp_path / "static.onnx", [ZION], max_tiles=4)
    dynamic = quantize(unet_path, tmp_path / "dynamic.onnx")
    assert static.method == "int8-static" and static.calibration_tiles == 4
    assert dynamic.method == "int8-dynamic" and dynamic.calibration_tiles is None
    for summary in (static, dynamic):
        assert summary.size_bytes < summary.source_size_bytes / 3
        model = load_onnx(summary.output)
        record = model.meta.provenance["compression"]
        assert record["method"] == summary.method and record["source"] == "unet.safetensors"
        result = Predictor(model).predict(scene, tmp_path / f"{summary.method}.tif")
        assert result.precision == "int8" and result.tiles_run == 12
    assert load_onnx(tmp_path / "static.onnx").meta.provenance["compression"]["calibration"] == [ZION.name]


def test_quantize_refuses_bad_arguments(unet_path: Path, tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="int8 models are stored as ONNX"):
        quantize(unet_path, tmp_path / "q.safetensors")
    with pytest.raises(ParameterError, match="^max_tiles 0: must be at least 1$"):
        quantize(unet_path, tmp_path / "q.onnx", [ZION], max_tiles=0)


# ------------------------------------------------------------------- agreement with the fp32 model
@pytest.fixture(scope="module")
def default_fp32_map(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    out = tmp_path_factory.mktemp("fp32") / "fp32.tif"
    Predictor(DEFAULT_MODEL_PATH, backend="torch").predict(ZION, out)
    return read_band(out)


@needs_default
def test_int8_agrees_with_fp32_on_the_held_out_block(default_fp32_map: np.ndarray, tmp_path: Path) -> None:
    quantize(DEFAULT_MODEL_PATH, tmp_path / "int8.onnx", [ZION], max_tiles=16)
    Predictor(tmp_path / "int8.onnx").predict(ZION, tmp_path / "int8.tif")
    assert (read_band(tmp_path / "int8.tif") == default_fp32_map).mean() >= INT8_AGREEMENT
    fp32_miou = evaluate(DEFAULT_MODEL_PATH, ZION, ZION_LABELS, tmp_path / "fp32_report").scores.mean_iou
    int8_miou = evaluate(tmp_path / "int8.onnx", ZION, ZION_LABELS, tmp_path / "int8_report").scores.mean_iou
    assert int8_miou >= fp32_miou - INT8_MAX_MIOU_LOSS


@needs_default
def test_pruned_agrees_with_fp32_on_the_held_out_block(default_fp32_map: np.ndarray, tmp_path: Path) -> None:
    prune(DEFAULT_MODEL_PATH, tmp_path / "pruned.safetensors", 0.3)
    Predictor(tmp_path / "pruned.safetensors").predict(ZION, tmp_path / "pruned.tif")
    assert (read_band(tmp_path / "pruned.tif") == default_fp32_map).mean() >= PRUNED_AGREEMENT


def test_pruning_keeps_the_source_precision(tmp_path: Path) -> None:
    """The default model stores fp16: its pruned bundle does too (it was written as fp32, larger than the
    source), unless fp32 is asked for."""
    kept = prune(DEFAULT_MODEL_PATH, tmp_path / "kept.safetensors", 0.3)
    assert load_bundle(tmp_path / "kept.safetensors").stored_half
    assert kept.size_bytes < kept.source_size_bytes
    prune(DEFAULT_MODEL_PATH, tmp_path / "fp32.safetensors", 0.3, half=False)
    assert not load_bundle(tmp_path / "fp32.safetensors").stored_half


# ---------------------------------------------------------------------------------------------- CLI
def _geoseg(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "geoseg", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_quantize_and_prune(unet_path: Path, tmp_path: Path) -> None:
    done = _geoseg("quantize", unet_path, "-o", tmp_path / "q.onnx", "--calibration", ZION,
                   "--calibration-tiles", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "int8-static, calibrated on 2 tiles" in done.stderr
    wrong = _geoseg("quantize", unet_path, "-o", tmp_path / "q2.onnx", "--calibration", NAIP, cwd=tmp_path)
    assert wrong.returncode == 2 and "naip_2020_rgbn.tif: cannot calibrate" in wrong.stderr
    pruned = _geoseg("prune", unet_path, "-o", tmp_path / "p.safetensors", "--amount", "0.5", "--half", cwd=tmp_path)
    assert pruned.returncode == 0, pruned.stderr
    info = json.loads(_geoseg("info", tmp_path / "p.safetensors", "--json", cwd=tmp_path).stdout)
    assert info["provenance"]["compression"]["amount"] == 0.5
    bad = _geoseg("prune", unet_path, "-o", tmp_path / "p2.safetensors", "--amount", "1", cwd=tmp_path)
    assert bad.returncode == 2 and "--amount 1.0: must be a fraction" in bad.stderr
    zero = _geoseg("quantize", unet_path, "-o", tmp_path / "q3.onnx", "--calibration", ZION, "--calibration-tiles", "0",
                   cwd=tmp_path)
    assert zero.returncode == 2 and "--calibration-tiles 0: must be at least 1" in zero.stderr
