"""Compression: int8 quantisation and structured pruning, each writing a new self-describing model.

**int8** goes through onnxruntime: static quantisation (QDQ graph, per-channel int8 weights, uint8
activations whose ranges are calibrated on real tiles of the scenes given) when calibration scenes are
given, dynamic quantisation (activation ranges computed per batch at run time; smaller file, but on conv
nets not faster than fp32) otherwise. Why onnxruntime and not torch.ao: measured on a 2-core AVX2 CPU, a
static int8 U-Net runs about 1.5x faster than onnxruntime fp32, which itself beats torch fp32, while a
torch.ao FX int8 model was slower than onnxruntime fp32 and cannot be stored as safetensors weights plus
metadata (packed parameters). The int8 model is therefore an ONNX file carrying the bundle metadata
(:mod:`geoseg.model.onnx`) and runs with ``--backend onnx`` (``auto`` picks it for ``.onnx`` files).

**Pruning** removes the weakest output channels (L1 norm of their filters, the criterion of Li et al.,
"Pruning Filters for Efficient ConvNets") of every prunable convolution (:mod:`geoseg.model.channels`), in the same
proportion everywhere. The result is a smaller dense net stored as an ordinary bundle whose
``model.pruned`` lists the kept widths. Pruning costs accuracy; ``fine_tune`` (a training config for the
same bands and classes) trains the pruned net further from its pruned weights (:func:`geoseg.training.train`
with ``start_from``), and the bundle then carries the scores of the fine-tuned model.

Both record what was done in ``provenance["compression"]`` and move the source's validation metrics there
(``source_metrics``): ``metrics`` describe the model in the file, and the compressed one is not measured yet.
"""
from __future__ import annotations

import datetime as _dt
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
from pydantic import BaseModel

from geoseg.model.bundle import ModelBundle, load_bundle
from geoseg.model.meta import BundleMeta
from geoseg.errors import InputFileError, ModelError, OutputError, ParameterError
from geoseg.io.rasters import gdal_env, open_raster
from geoseg.model.fit import check_fit
from geoseg.model.onnx import INPUT_NAME, OnnxBundle, attach_meta, require_onnx, save_onnx, to_onnx
from geoseg.io.outputs import check_writable
from geoseg.model.loading import DEFAULT_MODEL_PATH, ModelLike, load_model
from geoseg.inference.source import TileSource
from geoseg.inference.tiling import Tile, TileGrid

if TYPE_CHECKING:
    from geoseg.training import TrainConfig

#: Calibration tiles: enough to see every land-cover type of a scene, few enough to calibrate in seconds.
DEFAULT_CALIBRATION_TILES = 32


class CompressionSummary(BaseModel):
    """What a compression did; the CLI prints it."""

    output: str
    method: str
    size_bytes: int
    source_size_bytes: int | None
    parameters: int | None = None
    source_parameters: int | None = None
    calibration_tiles: int | None = None
    elapsed_s: float


# ---------------------------------------------------------------------------------------- quantise
def quantize(model: ModelLike, output: str | os.PathLike, calibration: Sequence[str | os.PathLike] = (), *,
             bands: list[int] | None = None, max_tiles: int = DEFAULT_CALIBRATION_TILES,
             overwrite: bool = False) -> CompressionSummary:
    """Write an int8 ONNX model of ``model`` to ``output`` (static if ``calibration`` scenes are given)."""
    t0 = time.perf_counter()
    inputs = [*_model_paths(model), *calibration]
    check_writable(output, overwrite, inputs=inputs)
    if Path(output).suffix.lower() != ".onnx":
        raise OutputError(f"{output}: int8 models are stored as ONNX; name the output .onnx")
    bundle = _torch_bundle(model, "quantise")
    if max_tiles < 1:
        raise ParameterError("max_tiles", max_tiles, "must be at least 1")
    tiles = calibration_tiles(bundle.meta, calibration, bands, max_tiles) if calibration else None
    onnx, ort = require_onnx("onnx"), require_onnx("onnxruntime")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="geoseg-quantize-") as tmp:
        fp32, prepared, int8 = (Path(tmp) / name for name in ("fp32.onnx", "prepared.onnx", "int8.onnx"))
        fp32.write_bytes(to_onnx(bundle).SerializeToString())
        quant_pre_process(str(fp32), str(prepared))  # shape inference + graph fusions, as onnxruntime advises
        if tiles is not None:
            quantize_static(str(prepared), str(int8), _TileReader(tiles), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
        else:
            quantize_dynamic(str(prepared), str(int8), per_channel=True, weight_type=QuantType.QInt8)
        proto = onnx.load(str(int8))
    record: dict[str, Any] = {"method": "int8-static" if tiles is not None else "int8-dynamic",
                              "tool": f"onnxruntime {ort.__version__}", "weights": "int8 per-channel"}
    if tiles is not None:
        record.update(activations="uint8, MinMax calibration", calibration=[Path(p).name for p in calibration],
                      calibration_tiles=len(tiles))
    attach_meta(proto, _compressed_meta(bundle, record))
    save_onnx(proto, output, overwrite, inputs=inputs)
    return CompressionSummary(output=str(output), method=record["method"], size_bytes=Path(output).stat().st_size,
                              source_size_bytes=_size(bundle.path), calibration_tiles=len(tiles) if tiles is not None else None,
                              elapsed_s=round(time.perf_counter() - t0, 2))


def calibration_tiles(meta: BundleMeta, scenes: Sequence[str | os.PathLike], bands: list[int] | None,
                      max_tiles: int) -> np.ndarray:
    """Up to ``max_tiles`` normalised tiles (n, bands, tile, tile), spread evenly over the scenes' grids.

    Tiles are read exactly as prediction reads them (through the same :class:`TileSource`); tiles without a
    valid pixel are left out, and an evenly strided pick keeps every part of a scene.
    """
    side = meta.tile_size
    chosen: list[np.ndarray] = []
    candidates: list[tuple[int, Tile]] = []  # (scene number, tile)
    indexes: list[list[int]] = []
    with gdal_env():
        for number, scene in enumerate(scenes):
            with open_raster(scene) as dataset:
                fit = check_fit(dataset, meta, bands)
                if not fit.ok:
                    raise fit.refusal(f"{scene}: cannot calibrate model '{meta.name}' on it")
                indexes.append(fit.band_indexes)
                candidates += [(number, tile) for tile in TileGrid(dataset.height, dataset.width, side, 0)]
        # 4x more picks than needed: tiles of nodata (scene frames) are dropped below
        picks = np.unique(np.linspace(0, len(candidates) - 1, min(len(candidates), 4 * max_tiles)).round().astype(int))
        for number, scene in enumerate(scenes):
            with rasterio.open(scene) as dataset:
                source = TileSource(dataset, indexes[number], meta, side)
                for tile in (candidates[i][1] for i in picks if candidates[i][0] == number):
                    pixels, _ = source.read(tile)
                    if pixels is not None:
                        chosen.append(pixels)
    if not chosen:
        raise InputFileError(f"{', '.join(map(str, scenes))}: no valid pixels to calibrate on; pass scenes with data")
    keep = np.unique(np.linspace(0, len(chosen) - 1, min(len(chosen), max_tiles)).round().astype(int))
    return np.stack([chosen[i] for i in keep])


class _TileReader:
    """onnxruntime's CalibrationDataReader over in-memory tiles, one tile per inference."""

    def __init__(self, tiles: np.ndarray):
        self._items: Iterator[np.ndarray] = iter(tiles)

    def get_next(self) -> dict[str, np.ndarray] | None:
        tile = next(self._items, None)
        return None if tile is None else {INPUT_NAME: tile[None]}


# ------------------------------------------------------------------------------------------- prune
def prune(model: ModelLike, output: str | os.PathLike, amount: float = 0.3, *, fine_tune: str | os.PathLike | None = None,
          half: bool | None = None, overwrite: bool = False) -> CompressionSummary:
    """Write a bundle of ``model`` with ``amount`` of every prunable layer's channels removed (L1 norm),
    fine-tuned with the training config ``fine_tune`` when given (its run folder keeps logs and reports).
    ``half``: store fp16 (True) or fp32 (False) weights; None keeps the source model's precision."""
    t0 = time.perf_counter()
    inputs = _model_paths(model)
    check_writable(output, overwrite, inputs=inputs)
    if Path(output).suffix.lower() != ".safetensors":
        raise OutputError(f"{output}: pruned models are bundles; name the output .safetensors")
    if not 0 < amount < 1:
        raise ParameterError("amount", amount, "must be a fraction of channels to remove, between 0 and 1 (e.g. 0.3)")
    config = None
    if fine_tune is not None:           # read first: a bad config fails before any work
        from geoseg.training import load_config
        config = load_config(fine_tune)
    bundle = _torch_bundle(model, "prune")
    network = bundle.build()
    before = sum(p.numel() for p in network.parameters())
    widths = prune_module(network, amount)
    if not widths:
        raise ModelError(f"model '{bundle.meta.name}': {bundle.meta.model.architecture}/{bundle.meta.model.encoder} "
                         "has no layers geoseg can prune (conv chains in Sequentials, ResNet blocks, U-Net decoder blocks)")
    spec = bundle.meta.model.model_copy(update={"pruned": {**bundle.meta.model.pruned, **widths}})
    after = sum(p.numel() for p in network.parameters())
    record: dict[str, Any] = {"method": "prune-l1", "amount": amount, "layers": len(widths),
                              "parameters_before": before, "parameters_after": after}
    meta = _compressed_meta(bundle, record).model_copy(update={"model": spec})
    pruned = ModelBundle.from_module(meta, network)
    if config is not None:
        pruned = _fine_tuned(pruned, config, overwrite)
    pruned.save(output, overwrite=overwrite, half=bundle.stored_half if half is None else half, inputs=inputs)
    return CompressionSummary(output=str(output), method="prune-l1",
                              size_bytes=Path(output).stat().st_size, source_size_bytes=_size(bundle.path),
                              parameters=after, source_parameters=before, elapsed_s=round(time.perf_counter() - t0, 2))


def _fine_tuned(pruned: ModelBundle, config: TrainConfig, overwrite: bool) -> ModelBundle:
    """Train the pruned net further on ``config``'s data; the result keeps the compression record."""
    from geoseg.training import train

    result = train(config, start_from=pruned, overwrite=overwrite)
    tuned = load_bundle(result.bundle)
    record = {**pruned.meta.provenance["compression"], "fine_tune": {
        "config": config.name, "run": str(Path(config.output_dir).resolve()), "epochs": result.epochs_run,
        "best_epoch": result.best_epoch, "scored_on": result.scored_on}}
    provenance = {**tuned.meta.provenance, "compression": record}
    return ModelBundle(tuned.meta.model_copy(update={"provenance": provenance}), tuned.state_dict)


def prune_module(network: Any, amount: float) -> dict[str, int]:
    """Narrow every prunable pair of ``network`` in place; returns the kept width of each producer.

    Widths of 32 channels or more are rounded to a multiple of 8 (the fp32 lanes of an AVX2 register, and
    what GPU kernels like), so the pruned net is as fast as its size promises; smaller layers keep
    ``round(width · (1 - amount))``, at least one channel.
    """
    import torch

    from geoseg.model.channels import narrow, prunable_pairs

    widths: dict[str, int] = {}
    for pair in prunable_pairs(network):
        weight = network.get_submodule(pair.producer).weight.detach()
        channels = weight.shape[0]
        keep = max(1, round(channels * (1 - amount)))
        if channels >= 32:
            keep = min(channels, max(8, round(keep / 8) * 8))
        if keep == channels:
            continue
        scores = weight.abs().sum(dim=(1, 2, 3))
        kept = torch.sort(torch.topk(scores, keep).indices).values
        narrow(network, pair, kept)
        widths[pair.producer] = keep
    return widths


# ----------------------------------------------------------------------------------------- helpers
def _model_paths(model: ModelLike) -> list[Path]:
    """The model file a compression reads (never to be its output)."""
    if isinstance(model, (ModelBundle, OnnxBundle)):
        return [model.path] if model.path is not None else []
    return [Path(model)] if model is not None else [DEFAULT_MODEL_PATH]


def _torch_bundle(model: ModelLike, action: str) -> ModelBundle:
    bundle = load_model(model)
    if isinstance(bundle, OnnxBundle):
        raise ModelError(f"{bundle.path or bundle.meta.name}: cannot {action} an ONNX model; "
                         "pass the .safetensors bundle it was made from")
    return bundle


def _compressed_meta(bundle: ModelBundle, record: dict[str, Any]) -> BundleMeta:
    meta = bundle.meta
    record = {**record, "source": bundle.path.name if bundle.path else meta.name,
              "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    if meta.metrics:
        record["source_metrics"] = meta.metrics
    previous = meta.provenance.get("compression")
    if previous:
        record["previous"] = previous
    return meta.model_copy(update={"metrics": {}, "provenance": {**meta.provenance, "compression": record}})


def _size(path: Path | None) -> int | None:
    return path.stat().st_size if path is not None and path.is_file() else None
