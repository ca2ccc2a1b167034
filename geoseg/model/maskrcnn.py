"""torchvision's Mask R-CNN as geoseg builds it from a bundle's metadata (never a download: ``weights=None``).

Two things differ from torchvision's defaults, both so that the model sees exactly what geoseg's read path
gives it:

- the first convolution reads the bundle's bands (any count, not RGB);
- the internal transform neither normalises (geoseg's :class:`~geoseg.model.normalise.Normaliser` already
  did, with the bundle's statistics) nor resizes (a 0.5 m tile must stay 0.5 m: objects keep the size in
  pixels they had in training, whatever the tile size).

Backbone: a torchvision ResNet (``model.encoder``: resnet18, resnet34 or resnet50) with BatchNorm (trained
from scratch: frozen BatchNorm, torchvision's default for fine-tuning, would be an identity here) and an FPN
of ``model.decoder_channels[0]`` channels; the heads scale with it (mask head convolutions of that width,
box features of four times it: torchvision's 1024 for its 256-channel FPN).
:func:`geoseg.model.networks.build_model` calls it for ``MaskRCNN`` bundles, so a bundle's ``build()``
loads its weights like any other.
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from geoseg.errors import ModelError
from geoseg.model.meta import BundleMeta

#: Anchor side (px) per FPN level, finest first: objects of about 10 to 400 px (5 m to 200 m at 0.5 m).
DEFAULT_ANCHOR_SIZES = (16, 32, 64, 128, 256)
DEFAULT_FPN_CHANNELS = 256
#: Channels after each ResNet stage (layer1..layer4), for the FPN's inputs.
_STAGE_CHANNELS = {"resnet18": (64, 128, 256, 512), "resnet34": (64, 128, 256, 512),
                   "resnet50": (256, 512, 1024, 2048)}
#: Side of the pooled features of each box (torchvision's MultiScaleRoIAlign for boxes).
_BOX_POOL = 7
#: Objects one tile may hold, at most (after the score threshold and NMS).
DETECTIONS_PER_TILE = 300


class _TilesAsTheyAre(GeneralizedRCNNTransform):
    """Batches tiles (padding to a multiple of 32) without normalising or resizing them."""

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        return image

    def resize(self, image: torch.Tensor, target: dict[str, torch.Tensor] | None = None
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        return image, target


def build_instance_network(meta: BundleMeta) -> MaskRCNN:
    """A randomly initialised Mask R-CNN for ``meta`` (bands in, ``len(classes) + 1`` box classes out)."""
    spec = meta.model
    encoder = spec.encoder or "resnet18"
    if encoder not in _STAGE_CHANNELS:
        raise ModelError(f"model '{meta.name}': MaskRCNN backbone {encoder!r} is not available; use one of "
                         f"{', '.join(_STAGE_CHANNELS)}")
    width = (spec.decoder_channels or [DEFAULT_FPN_CHANNELS])[0]
    body = getattr(resnet, encoder)(weights=None, norm_layer=nn.BatchNorm2d)
    body.conv1 = nn.Conv2d(meta.in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(body.conv1.weight, mode="fan_out", nonlinearity="relu")
    backbone = BackboneWithFPN(body, {f"layer{i}": str(i - 1) for i in range(1, 5)},
                               list(_STAGE_CHANNELS[encoder]), width, extra_blocks=LastLevelMaxPool())
    anchors = AnchorGenerator(tuple((s,) for s in (spec.anchor_sizes or DEFAULT_ANCHOR_SIZES)),
                              ((0.5, 1.0, 2.0),) * 5)
    classes = meta.num_classes + 1                       # + the background
    model = MaskRCNN(backbone, num_classes=None, rpn_anchor_generator=anchors,
                     mask_head=MaskRCNNHeads(width, (width,) * 4, 1),
                     mask_predictor=MaskRCNNPredictor(width, width, classes),
                     box_score_thresh=meta.score_threshold, box_detections_per_img=DETECTIONS_PER_TILE,
                     rpn_pre_nms_top_n_train=1000, rpn_post_nms_top_n_train=500, box_batch_size_per_image=128,
                     box_head=TwoMLPHead(width * _BOX_POOL ** 2, 4 * width),
                     box_predictor=FastRCNNPredictor(4 * width, classes))
    model.transform = _TilesAsTheyAre(min_size=meta.tile_size, max_size=meta.tile_size,
                                      image_mean=[0.0] * meta.in_channels, image_std=[1.0] * meta.in_channels)
    return model
