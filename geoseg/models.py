"""Build the torch network a bundle describes, without any network access (random init, then weights)."""
from __future__ import annotations

import torch
from torch import nn

from geoseg.bundle import BundleMeta, ModelSpec
from geoseg.channels import apply_widths
from geoseg.errors import InputError

SMP_ARCHITECTURES = ("Unet", "UnetPlusPlus", "FPN", "DeepLabV3", "DeepLabV3Plus", "Linknet", "MAnet", "PAN",
                     "PSPNet", "UPerNet", "Segformer")


class SimpleFCN(nn.Module):
    """A small fully convolutional net: 3x3 conv + ReLU layers, then a 1x1 classifier.

    Its receptive field is exactly ``2·len(hidden)+1`` px, which makes it the reference network for
    proving that tiling and blending are exact, and a fast per-pixel-with-context baseline.
    """

    def __init__(self, in_channels: int, num_classes: int, hidden: list[int]):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_channels
        for h in hidden:
            layers += [nn.Conv2d(width, h, 3, padding=1), nn.ReLU(inplace=True)]
            width = h
        layers.append(nn.Conv2d(width, num_classes, 1))
        self.net = nn.Sequential(*layers)

    @property
    def receptive_radius(self) -> int:
        return sum(1 for m in self.net if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_model(meta: BundleMeta) -> nn.Module:
    """A freshly initialised network for ``meta`` (no pretrained download, ever), pruned widths applied."""
    module = _build_full(meta)
    apply_widths(module, meta.model.pruned, f"model '{meta.name}'")
    return module


def _build_full(meta: BundleMeta) -> nn.Module:
    spec: ModelSpec = meta.model
    if spec.architecture == "SimpleFCN":
        return SimpleFCN(meta.in_channels, meta.num_classes, spec.hidden or [32, 32])
    if spec.architecture not in SMP_ARCHITECTURES:
        raise InputError(f"model '{meta.name}': unknown architecture {spec.architecture!r}; "
                         f"use one of {', '.join(SMP_ARCHITECTURES + ('SimpleFCN',))}")
    kwargs: dict = {}
    if spec.encoder_depth is not None:
        kwargs["encoder_depth"] = spec.encoder_depth
    if spec.decoder_channels is not None:
        kwargs["decoder_channels"] = spec.decoder_channels
    import segmentation_models_pytorch as smp  # heavy (timm): only when an smp model is built

    try:
        return smp.create_model(spec.architecture, encoder_name=spec.encoder or "resnet18", encoder_weights=None,
                                in_channels=meta.in_channels, classes=meta.num_classes, **kwargs)
    except (KeyError, ValueError, TypeError) as err:
        raise InputError(f"model '{meta.name}': cannot build {spec.architecture}/{spec.encoder} ({err}); "
                         "check the encoder name and options") from err


def size_multiple(meta: BundleMeta) -> int:
    """Tile sides must be a multiple of this (the encoder's total downsampling)."""
    if meta.model.architecture == "SimpleFCN":
        return 1
    return 2 ** (meta.model.encoder_depth or 5)
