"""Instance segmentation with a Mask R-CNN bundle: :class:`MaskRCNNDetector` and :func:`load_instance_detector`.

The detector is what the tiled engine calls (:class:`~geoseg.model.instances.InstanceDetector`): normalised
tiles in, each tile's objects out as thresholded masks, scores and the bundle's class ids. The network
itself is built by :mod:`geoseg.model.maskrcnn` and its weights load through the bundle like any model's.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from geoseg.errors import ModelError
from geoseg.model.bundle import ModelBundle, load_bundle, read_bundle_meta
from geoseg.model.instances import TileInstances
from geoseg.model.loading import check_task
from geoseg.model.maskrcnn import DETECTIONS_PER_TILE


class MaskRCNNDetector:
    """An :class:`~geoseg.model.instances.InstanceDetector` over a Mask R-CNN bundle.

    ``score_threshold`` and ``mask_threshold`` default to the bundle's; ``max_per_tile`` caps the objects of
    one tile (the best-scoring ones are kept). Objects whose thresholded mask is empty are dropped: they have
    no outline to give. ``network``: an already built network for ``bundle.meta`` (the trainer's, scored
    between epochs) instead of one built from the bundle's weights.
    """

    def __init__(self, bundle: ModelBundle, device: str | torch.device = "cpu",
                 score_threshold: float | None = None, mask_threshold: float | None = None,
                 max_per_tile: int = DETECTIONS_PER_TILE, network: torch.nn.Module | None = None):
        check_task(bundle.meta, bundle.path, "instance")
        self.meta = bundle.meta
        self.device = torch.device(device)
        self.score_threshold = self.meta.score_threshold if score_threshold is None else score_threshold
        self.mask_threshold = self.meta.mask_threshold if mask_threshold is None else mask_threshold
        self.network = (network if network is not None else bundle.build()).to(self.device).eval()
        self.network.roi_heads.score_thresh = self.score_threshold
        self.network.roi_heads.detections_per_img = max_per_tile
        self.class_ids = np.array([c.id for c in self.meta.scheme.classes], np.int32)

    def detect(self, tiles: np.ndarray) -> list[TileInstances]:
        """``tiles`` (N, C, H, W) float32, normalised as the bundle says; one result per tile, same order."""
        if tiles.ndim != 4 or tiles.shape[1] != self.meta.in_channels:
            raise ValueError(f"expected tiles (N, {self.meta.in_channels}, H, W), got {tiles.shape}")
        batch = torch.from_numpy(np.ascontiguousarray(tiles, np.float32)).to(self.device)
        with torch.inference_mode():
            outputs = self.network(list(batch))
        return [self._instances(out, tiles.shape[2], tiles.shape[3]) for out in outputs]

    def _instances(self, out: dict[str, torch.Tensor], height: int, width: int) -> TileInstances:
        keep = out["scores"] >= self.score_threshold
        masks = (out["masks"][keep, 0] >= self.mask_threshold).cpu().numpy()
        scores = out["scores"][keep].float().cpu().numpy()
        labels = out["labels"][keep].cpu().numpy()
        solid = masks.any(axis=(1, 2))
        if not solid.any():
            return TileInstances.empty(height, width)
        return TileInstances(masks[solid], scores[solid].astype(np.float32),
                             self.class_ids[labels[solid] - 1].astype(np.int32))


def load_instance_detector(path: str | os.PathLike, device: str | torch.device = "cpu",
                           score_threshold: float | None = None, mask_threshold: float | None = None,
                           max_per_tile: int = DETECTIONS_PER_TILE) -> MaskRCNNDetector:
    """The detector of an instance bundle (``.safetensors``); any other model is refused, saying what it is."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        raise ModelError(f"{path}: instance models run from their .safetensors bundle only (geoseg does not "
                         "export Mask R-CNN to ONNX); pass the .safetensors file")
    check_task(read_bundle_meta(path), path, "instance")         # before reading the weights
    return MaskRCNNDetector(load_bundle(path), device, score_threshold, mask_threshold, max_per_tile)
