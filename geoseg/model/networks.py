"""Build the torch network a bundle describes, without any network access (random init, then weights)."""
from __future__ import annotations

import torch
from torch import nn

from geoseg.model.meta import BundleMeta, ModelSpec
from geoseg.model.channels import apply_widths
from geoseg.errors import ModelError

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


class ContextFCN(nn.Module):
    """Per-pixel spectral features plus context pooled at 1/4, 1/16, 1/64… resolution, fused per pixel.

    Built for medium-resolution land cover on CPUs: a pixel's class is mostly its spectrum (a 1x1 branch at
    full resolution) refined by its surroundings (3x3 blocks on average-pooled features, upsampled
    bilinearly). Nearly all 3x3 work happens at 1/16 of the pixels or fewer, so it costs ~10x less per
    pixel than a U-Net with a ResNet encoder while seeing several hundred pixels around each one.
    ``hidden[0]`` is the width, ``depth`` the number of context levels (each pools by 4).
    """

    def __init__(self, in_channels: int, num_classes: int, width: int = 32, depth: int = 3):
        super().__init__()
        self.depth = depth

        def block(cin: int, cout: int, kernel: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
                                 nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.pixel = nn.Sequential(block(in_channels, width, 1), block(width, width, 1))
        self.context = nn.ModuleList(nn.Sequential(block(width, width, 3), block(width, width, 3))
                                     for _ in range(depth))
        self.fuse = nn.Sequential(block(width * (depth + 1), width, 1), nn.Conv2d(width, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.pixel(x)
        levels = [features]
        current = features
        for stage in self.context:
            current = stage(nn.functional.avg_pool2d(current, 4))
            levels.append(nn.functional.interpolate(current, size=x.shape[-2:], mode="bilinear",
                                                    align_corners=False))
        return self.fuse(torch.cat(levels, dim=1))


def build_model(meta: BundleMeta) -> nn.Module:
    """A freshly initialised network for ``meta`` (no pretrained download, ever), pruned widths applied."""
    module = _build_full(meta)
    apply_widths(module, meta.model.pruned, f"model '{meta.name}'")
    return module


def _build_full(meta: BundleMeta) -> nn.Module:
    spec: ModelSpec = meta.model
    if meta.task == "instance":
        from geoseg.model.maskrcnn import build_instance_network   # torchvision detection: only when needed

        return build_instance_network(meta)
    if spec.architecture == "SimpleFCN":
        return SimpleFCN(meta.in_channels, meta.num_classes, spec.hidden or [32, 32])
    if spec.architecture == "ContextFCN":
        return ContextFCN(meta.in_channels, meta.num_classes, (spec.hidden or [32])[0], spec.encoder_depth or 3)
    if spec.architecture not in SMP_ARCHITECTURES:
        raise ModelError(f"model '{meta.name}': unknown architecture {spec.architecture!r}; "
                         f"use one of {', '.join(SMP_ARCHITECTURES + ('SimpleFCN', 'ContextFCN'))}")
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
        raise ModelError(f"model '{meta.name}': cannot build {spec.architecture}/{spec.encoder} ({err}); "
                         "check the encoder name and options") from err


def size_multiple(meta: BundleMeta) -> int:
    """Tile sides must be a multiple of this (the encoder's total downsampling)."""
    if meta.model.architecture == "SimpleFCN":
        return 1
    if meta.model.architecture == "ContextFCN":
        return 4 ** (meta.model.encoder_depth or 3)
    return 2 ** (meta.model.encoder_depth or 5)
