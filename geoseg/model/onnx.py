"""The ONNX form of a model bundle: an ONNX graph whose ``metadata_props["geoseg"]`` holds the bundle JSON.

Why a second form: onnxruntime runs it without torch (light installs, other runtimes, other languages),
and int8 models — quantised graphs that safetensors weights plus a torch architecture cannot express —
can only live here. The metadata is the very same :class:`BundleMeta` JSON as in a ``.safetensors``
header, validated and upgraded by the same code, so an ONNX file says as fully how to use it.

The graph takes normalised pixels ``input`` (batch, bands, height, width) float32 and returns ``logits``
(batch, classes, height, width); batch, height and width are dynamic. ``onnx`` is imported only here and
only when needed: it is the optional ``[onnx]`` extra.
"""
from __future__ import annotations

import importlib
import io
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from geoseg import __version__
from geoseg.errors import InputError, ModelError, OutputError
from geoseg.io.outputs import atomic_output, check_writable
from geoseg.model.bundle import ModelBundle
from geoseg.model.meta import METADATA_KEY, BundleMeta, parse_meta

if TYPE_CHECKING:
    import onnx

#: Opset 17 runs on every onnxruntime from 1.13 on (we require >= 1.18) and has every op an smp U-Net needs.
ONNX_OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


@dataclass
class OnnxBundle:
    """Metadata plus a serialised ONNX graph (fp32 export or int8 quantised)."""

    meta: BundleMeta
    graph: bytes
    path: Path | None = None


def require_onnx(module: str = "onnx") -> Any:
    """``onnx`` or ``onnxruntime`` (the ``[onnx]`` extra), or a clear message on how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(f"ONNX support needs {module}; install it with: pip install 'geoseg[onnx]'") from None


def to_onnx(bundle: ModelBundle) -> "onnx.ModelProto":
    """Export the bundle's network (fp32, CPU) with dynamic batch/height/width and attach its metadata.

    The TorchScript-based exporter (``dynamo=False``) is used on purpose: it handles the U-Nets'
    size-dependent upsampling with dynamic axes on every torch we support (>= 2.4) and needs no extra
    package, whereas the torch.export-based one needs ``onnxscript``. It is deprecated, hence the filter.
    """
    import torch

    if bundle.meta.task == "instance":
        raise ModelError(f"{bundle.path or bundle.meta.name}: instance models (Mask R-CNN) are not exported to ONNX: "
                         "their per-object outputs have no ONNX form that geoseg reads back; use the .safetensors "
                         "bundle")
    onnx = require_onnx()
    from geoseg.model.networks import size_multiple  # torch: imported with it, only for export

    network = bundle.build().float().cpu().eval()
    side = max(bundle.meta.tile_size // size_multiple(bundle.meta), 1) * size_multiple(bundle.meta)
    example = torch.zeros(1, bundle.meta.in_channels, side, side)
    axes = {0: "batch", 2: "height", 3: "width"}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*legacy TorchScript-based ONNX")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(network, (example,), buffer, dynamo=False, opset_version=ONNX_OPSET,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes})
    proto = onnx.load_from_string(buffer.getvalue())
    attach_meta(proto, bundle.meta)
    return proto


def attach_meta(proto: "onnx.ModelProto", meta: BundleMeta) -> None:
    """Write (or replace) the bundle JSON in the graph's ``metadata_props``."""
    meta = meta.model_copy(update={"geoseg_version": meta.geoseg_version or __version__})
    kept = [p for p in proto.metadata_props if p.key != METADATA_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, meta.model_dump_json()
    proto.producer_name = "geoseg"
    proto.producer_version = __version__


def save_onnx(proto: "onnx.ModelProto", path: str | os.PathLike, overwrite: bool = False,
              inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """Write atomically; refuses a suffix other than ``.onnx`` (the loader dispatches on it)."""
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise OutputError(f"{path}: ONNX models must be written to a .onnx file; change the output name")
    with atomic_output(path, overwrite, inputs=inputs) as tmp:
        tmp.write_bytes(proto.SerializeToString())
    return path


def _paths(path: Path | None) -> list[Path]:
    return [path] if path is not None else []


def export_onnx(bundle: ModelBundle, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """``geoseg export --onnx``: the bundle as a self-describing ONNX file."""
    check_writable(path, overwrite, inputs=_paths(bundle.path))
    return save_onnx(to_onnx(bundle), path, overwrite, inputs=_paths(bundle.path))


def is_quantised(graph: bytes) -> bool:
    """Whether the serialised graph computes in int8 (QDQ or integer ops), for what predict reports."""
    ops = {node.op_type for node in require_onnx().load_from_string(graph).graph.node}
    return bool(ops & {"QuantizeLinear", "QLinearConv", "ConvInteger", "DynamicQuantizeLinear"})


def read_onnx_meta(path: str | os.PathLike) -> BundleMeta:
    return load_onnx(path).meta


def load_onnx(path: str | os.PathLike) -> OnnxBundle:
    """Read and validate an ONNX model that geoseg wrote (metadata present, input/output shapes fit it)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found; pass an existing .onnx model")
    onnx = require_onnx()
    data = path.read_bytes()
    try:
        proto = onnx.load_from_string(data)
    except Exception as err:  # protobuf raises its own DecodeError types
        raise ModelError(f"{path}: not an ONNX model ({type(err).__name__}); pass a .onnx file written by geoseg") from err
    props = {p.key: p.value for p in proto.metadata_props}
    if METADATA_KEY not in props:
        raise ModelError(f"{path}: ONNX model without geoseg metadata; export it with 'geoseg export --onnx'")
    meta = parse_meta(props[METADATA_KEY], path)
    _check_graph(proto, meta, path)
    return OnnxBundle(meta, data, path)


def _check_graph(proto: "onnx.ModelProto", meta: BundleMeta, path: Path) -> None:
    """The graph's input bands and output classes must be what the metadata says."""
    graph = proto.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise ModelError(f"{path}: expected one input and one output, found {len(graph.input)} and "
                         f"{len(graph.output)}; export the model with geoseg")
    for value, expected, what in ((graph.input[0], meta.in_channels, "bands"),
                                  (graph.output[0], meta.num_classes, "classes")):
        dims = value.type.tensor_type.shape.dim
        if len(dims) != 4:
            raise ModelError(f"{path}: {value.name} has rank {len(dims)}, expected 4 (batch, channels, height, "
                             "width); export the model with geoseg")
        if dims[1].HasField("dim_value") and dims[1].dim_value != expected:
            raise ModelError(f"{path}: the graph has {dims[1].dim_value} {what} but its metadata says {expected}; "
                             "the file is damaged or mislabelled")
