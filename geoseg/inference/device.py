"""Pick the device and the precision once, by probing the machine rather than assuming.

CUDA: fp16 autocast and channels_last. CPU: fp32 unless bf16 is asked for. bf16 was 1.3x faster with the
default model on a CPU with native bf16 (AVX512-BF16 or AMX) but agreed with fp32 on only 99.8 % of a
100 MP scene's pixels, so choosing it by CPU made the same command give different maps on different
machines; where the CPU lacks native bf16 it is emulated and many times slower. CPU plans also tune
glibc's allocator for large activations (:mod:`geoseg.inference.allocator`).

This module is the one place that reads device and precision strings (:func:`parse_device`,
:func:`check_precision`) and the one autocast context (:meth:`ExecutionPlan.autocast`): the torch and
onnxruntime backends and training all go through it.
"""
from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from geoseg.errors import ParameterError
from geoseg.inference.allocator import keep_large_blocks

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class DeviceRequest:
    """A parsed ``device`` string: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (``index`` None: the current GPU)."""

    kind: Literal["auto", "cpu", "cuda"]
    index: int | None = None

    def torch_device(self) -> torch.device:
        """The torch device of a resolved request (``cuda`` stays ``cuda``, as torch spells it)."""
        return torch.device(self.kind) if self.index is None else torch.device(self.kind, self.index)


def parse_device(device: str) -> DeviceRequest:
    """Read a device string; an unknown one is a :class:`ParameterError` naming ``device``."""
    kind, colon, index = str(device).partition(":")
    if kind in ("auto", "cpu") and not colon:
        return DeviceRequest(kind)  # type: ignore[arg-type]
    if kind == "cuda" and (not colon or index.isdigit()):
        return DeviceRequest("cuda", int(index) if colon else None)
    raise ParameterError("device", device, "unknown device; use auto, cpu, cuda or cuda:N")


def check_precision(precision: str) -> str:
    """``precision`` if it is one geoseg knows (auto, fp32, fp16, bf16), else a :class:`ParameterError`."""
    if precision not in PRECISIONS:
        raise ParameterError("precision", precision, "unknown; use auto, fp32, fp16 or bf16")
    return precision


@dataclass(frozen=True)
class ExecutionPlan:
    device: torch.device
    autocast_dtype: torch.dtype | None
    channels_last: bool

    @property
    def precision(self) -> str:
        return {None: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[self.autocast_dtype]

    def autocast(self) -> contextlib.AbstractContextManager:
        """torch autocast at the planned precision (nothing for fp32): inference and training share it."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags for f in ("avx512_bf16", "amx_bf16"))


def plan_execution(device: str = "auto", precision: str = "auto") -> ExecutionPlan:
    """The torch device and autocast for ``device`` (auto|cpu|cuda|cuda:N) and ``precision`` (auto|fp32|fp16|bf16)."""
    request = parse_device(device)
    check_precision(precision)
    if request.kind == "auto":
        request = DeviceRequest("cuda" if torch.cuda.is_available() else "cpu")
    if request.kind == "cuda" and not torch.cuda.is_available():
        raise ParameterError("device", device, "no CUDA GPU is visible to torch; use {device} cpu or auto")
    dev = request.torch_device()
    if precision == "auto":
        precision = "fp16" if dev.type == "cuda" else "fp32"     # the same map on every CPU
    if dev.type == "cpu" and precision == "fp16":
        raise ParameterError("precision", precision, "not supported on CPU; use bf16 or fp32")
    autocast = _AUTOCAST_DTYPES[precision]
    if dev.type == "cpu":
        keep_large_blocks()              # 2.2x faster CPU forward passes (see geoseg.inference.allocator)
    return ExecutionPlan(dev, autocast, channels_last=autocast is not None)


def available_devices() -> list[dict[str, object]]:
    """What ``geoseg info`` reports: the CPU and every CUDA GPU."""
    devices: list[dict[str, object]] = [{"name": "cpu", "threads": torch.get_num_threads(),
                                         "native_bf16": cpu_has_native_bf16()}]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            devices.append({"name": f"cuda:{i}", "model": props.name,
                            "memory_gib": round(props.total_memory / 2**30, 1)})
    return devices
