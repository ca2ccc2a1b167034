"""Channel surgery for structured pruning: which convolution outputs can be narrowed, and narrowing them.

A :class:`ChannelPair` is a convolution whose output reaches exactly one other convolution, through at
most a BatchNorm and elementwise activations. Removing output channels of the producer and the same
input channels of the consumer changes no other tensor's shape, so residual sums and skip concatenations
stay valid and the pruned net is a real, smaller net — faster without sparse kernels. Pairs are found
only where the forward is known to be that chain, never guessed from a graph:
- inside any ``nn.Sequential`` that keeps Sequential's own forward (nested ones flattened): each child's
  output feeds only the next (SimpleFCN, ContextFCN blocks, deep stems);
- ResNet ``BasicBlock``/``Bottleneck`` of torchvision and timm (conv1→bn1→conv2, conv2→bn2→conv3);
- smp's U-Net decoder block (conv1→conv2).

The same code narrows a trained net (keeping the chosen channels' weights) and rebuilds the narrowed
shapes from bundle metadata (``ModelSpec.pruned``: producer name → kept channels) before loading weights.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from geoseg.errors import ModelError

#: Modules that act on each channel alone and keep the channel count: allowed between producer and consumer.
_ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.SiLU, nn.GELU, nn.Identity, nn.Dropout, nn.Dropout2d)
#: Residual blocks of torchvision and timm ResNets (smp's ``resnet*`` and ``tu-resnet*`` encoders).
_RESNET_BLOCKS = ("BasicBlock", "Bottleneck")
#: smp's U-Net decoder block (named ``DecoderBlock`` before smp 0.5).
_DECODER_BLOCKS = ("UnetDecoderBlock", "DecoderBlock")


@dataclass(frozen=True)
class ChannelPair:
    """Module names: the producer conv whose outputs are pruned, its norm (or None), the consumer conv."""

    producer: str
    norm: str | None
    consumer: str


def prunable_pairs(module: nn.Module) -> list[ChannelPair]:
    """Every pair in ``module``, in module order."""
    pairs: dict[str, ChannelPair] = {}  # by producer: a nested Sequential repeats its parent's pairs
    for name, block in module.named_modules():
        prefix = f"{name}." if name else ""
        kind = type(block).__name__
        found: list[ChannelPair] = []
        if _plain_sequential(block):
            found = _chain_pairs(block, prefix)
        elif kind in _RESNET_BLOCKS:
            between = [getattr(block, a, None) for a in ("drop_block", "aa")]
            if all(m is None or isinstance(m, nn.Identity) for m in between):
                for i in (1, 2):
                    found += _pair(block, prefix, f"conv{i}", f"bn{i}", f"conv{i + 1}")
        elif kind in _DECODER_BLOCKS and _plain_sequential(getattr(block, "conv1", None)):
            norm = "conv1.1" if isinstance(block.conv1[1], nn.BatchNorm2d) else None
            found = _pair(block, prefix, "conv1.0", norm, "conv2.0")
        pairs.update((p.producer, p) for p in found if p.producer not in pairs)
    return list(pairs.values())


def _plain_sequential(module: object) -> bool:
    """A Sequential whose forward is Sequential's: each child's output goes to the next child only."""
    return isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward


def _chain(block: nn.Module, prefix: str) -> list[tuple[str, nn.Module]]:
    """The leaves of a plain Sequential in execution order, nested plain Sequentials flattened."""
    leaves: list[tuple[str, nn.Module]] = []
    for name, child in block.named_children():
        if _plain_sequential(child):
            leaves += _chain(child, f"{prefix}{name}.")
        else:
            leaves.append((prefix + name, child))
    return leaves


def _chain_pairs(block: nn.Module, prefix: str) -> list[ChannelPair]:
    """Conv → [BatchNorm] → elementwise* → Conv runs along a plain Sequential."""
    chain = _chain(block, "")
    found: list[ChannelPair] = []
    for i, (producer, layer) in enumerate(chain):
        if not isinstance(layer, nn.Conv2d):
            continue
        j, norm = i + 1, None
        if j < len(chain) and isinstance(chain[j][1], nn.BatchNorm2d):
            norm, j = chain[j][0], j + 1
        while j < len(chain) and isinstance(chain[j][1], _ELEMENTWISE):
            j += 1
        if j < len(chain) and isinstance(chain[j][1], nn.Conv2d):
            found += _pair(block, prefix, producer, norm, chain[j][0])
    return found


def _pair(block: nn.Module, prefix: str, producer: str, norm: str | None, consumer: str) -> list[ChannelPair]:
    """The pair if its layers are plain, ungrouped Conv2d (+ BatchNorm2d) of matching width, else nothing."""
    try:
        p, c = block.get_submodule(producer), block.get_submodule(consumer)
        n = block.get_submodule(norm) if norm else None
    except AttributeError:
        return []
    plain = type(p) is nn.Conv2d and type(c) is nn.Conv2d and p.groups == 1 and c.groups == 1
    if not plain or p.out_channels != c.in_channels:
        return []
    if n is not None and (type(n) is not nn.BatchNorm2d or n.num_features != p.out_channels):
        return []
    return [ChannelPair(prefix + producer, prefix + norm if norm else None, prefix + consumer)]


def narrow(module: nn.Module, pair: ChannelPair, keep: torch.Tensor) -> None:
    """Keep only channels ``keep`` (sorted indices) between the pair's producer and consumer, in place."""
    producer: nn.Conv2d = module.get_submodule(pair.producer)
    consumer: nn.Conv2d = module.get_submodule(pair.consumer)
    _replace(module, pair.producer, _conv_slice(producer, out_keep=keep))
    _replace(module, pair.consumer, _conv_slice(consumer, in_keep=keep))
    if pair.norm is not None:
        norm: nn.BatchNorm2d = module.get_submodule(pair.norm)
        new = nn.BatchNorm2d(len(keep), eps=norm.eps, momentum=norm.momentum, affine=norm.affine,
                             track_running_stats=norm.track_running_stats)
        with torch.no_grad():
            for name in ("weight", "bias", "running_mean", "running_var"):
                old = getattr(norm, name)
                if old is not None:
                    getattr(new, name).copy_(old[keep])
            if norm.num_batches_tracked is not None:
                new.num_batches_tracked.copy_(norm.num_batches_tracked)
        _replace(module, pair.norm, new.train(norm.training))


def apply_widths(module: nn.Module, widths: dict[str, int], where: str) -> None:
    """Give the producers named in ``widths`` that many output channels (shapes only; weights load later)."""
    if not widths:
        return
    pairs = {p.producer: p for p in prunable_pairs(module)}
    for name, width in widths.items():
        pair = pairs.get(name)
        if pair is None:
            raise ModelError(f"{where}: pruned layer {name!r} is not a prunable layer of this architecture; "
                             "the file is damaged or was pruned by an incompatible geoseg")
        channels = module.get_submodule(name).out_channels
        if not 0 < width <= channels:
            raise ModelError(f"{where}: pruned width {width} of {name!r} must be in 1..{channels}; "
                             "the file is damaged")
        narrow(module, pair, torch.arange(width))


def _conv_slice(conv: nn.Conv2d, out_keep: torch.Tensor | None = None, in_keep: torch.Tensor | None = None
                ) -> nn.Conv2d:
    weight = conv.weight
    if out_keep is not None:
        weight = weight[out_keep]
    if in_keep is not None:
        weight = weight[:, in_keep]
    new = nn.Conv2d(weight.shape[1], weight.shape[0], conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                    bias=conv.bias is not None, padding_mode=conv.padding_mode, device=weight.device,
                    dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if conv.bias is not None:
            new.bias.copy_(conv.bias if out_keep is None else conv.bias[out_keep])
    return new.train(conv.training)


def _replace(module: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(module.get_submodule(parent) if parent else module, child, new)
