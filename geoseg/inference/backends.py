"""Where the network runs: torch or onnxruntime behind one small seam.

A backend turns a normalised batch (n, bands, h, w) float32 into softmax probabilities (n, classes, h, w)
float32 numpy. Everything around it — reading, tiling, blending, writing — is backend independent and
lives in :mod:`geoseg.inference.predictor`, so a backend is only this one call plus what it ran on.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from geoseg.model.bundle import ModelBundle
from geoseg.errors import ModelError, ParameterError
from geoseg.inference.device import ExecutionPlan, parse_device, plan_execution
from geoseg.model.onnx import INPUT_NAME, OUTPUT_NAME, OnnxBundle, is_quantised, require_onnx, to_onnx


class Backend(Protocol):
    plan: ExecutionPlan

    @property
    def precision(self) -> str:
        """What the summary reports: fp32, fp16, bf16 or int8."""

    def forward(self, batch: np.ndarray) -> np.ndarray:
        """Softmax probabilities (n, classes, h, w) float32 for a normalised batch (n, bands, h, w)."""


class TorchBackend:
    """The bundle's torch network on the planned device, with autocast and channels_last where they pay."""

    def __init__(self, bundle: ModelBundle, plan: ExecutionPlan):
        self.plan = plan
        self.network = bundle.build().to(plan.device)
        if plan.channels_last:
            self.network = self.network.to(memory_format=torch.channels_last)

    @property
    def precision(self) -> str:
        return self.plan.precision

    def forward(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(self.plan.device, non_blocking=True)
        if self.plan.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), self.plan.autocast():
            logits = self.network(x)
        return torch.softmax(logits.float(), dim=1).cpu().numpy()


class OnnxBackend:
    """An onnxruntime session: CUDAExecutionProvider when asked for (or on auto when present), else CPU."""

    def __init__(self, model: OnnxBundle, device: str = "auto"):
        ort = require_onnx("onnxruntime")
        providers, self.plan = _onnx_providers(device, ort.get_available_providers())
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # One knob for both runtimes (torch.set_num_threads / OMP_NUM_THREADS): on a shared machine fewer
        # threads than cores can be many times faster, and the backends must be compared at equal threads.
        options.intra_op_num_threads = torch.get_num_threads()
        where = model.path or model.meta.name
        try:
            self.session = ort.InferenceSession(model.graph, options, providers=providers)
        except Exception as err:  # onnxruntime raises its own Fail/InvalidGraph types
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ModelError(f"{where}: onnxruntime cannot load this model ({first}); re-export it with geoseg") from err
        self._int8 = is_quantised(model.graph)

    @property
    def precision(self) -> str:
        return "int8" if self._int8 else "fp32"

    def forward(self, batch: np.ndarray) -> np.ndarray:
        logits = self.session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)})[0]
        return softmax(logits)


def _onnx_providers(device: str, available: list[str]) -> tuple[list, ExecutionPlan]:
    """onnxruntime providers for ``device``; ``auto`` means CUDA when this onnxruntime has its provider."""
    request = parse_device(device)
    cuda = "CUDAExecutionProvider" in available
    if request.kind == "cpu" or (request.kind == "auto" and not cuda):
        return ["CPUExecutionProvider"], ExecutionPlan(torch.device("cpu"), None, channels_last=False)
    if not cuda:
        raise ParameterError("device", device, "this onnxruntime has no CUDA provider; install onnxruntime-gpu "
                             "or use {device} cpu")
    index = request.index or 0
    providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    return providers, ExecutionPlan(torch.device("cuda", index), None, channels_last=False)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over axis 1 in float32, stable for large logits."""
    shifted = logits.astype(np.float32, copy=False) - logits.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


def make_backend(model: ModelBundle | OnnxBundle, backend: str = "auto", device: str = "auto",
                 precision: str = "auto") -> TorchBackend | OnnxBackend:
    """The backend for settings that :class:`~geoseg.inference.config.PredictorConfig` has checked.

    ``auto`` runs ONNX models with onnxruntime and bundles with torch; ``onnx`` exports a bundle first.
    """
    if isinstance(model, ModelBundle) and backend != "onnx":
        return TorchBackend(model, plan_execution(device, precision))
    if isinstance(model, ModelBundle):
        model = OnnxBundle(model.meta, to_onnx(model).SerializeToString(), model.path)
    return OnnxBackend(model, device)
