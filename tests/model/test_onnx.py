"""ONNX export and the onnxruntime backend: metadata round trip, dynamic axes, agreement with torch, errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from rasterio.windows import Window

from geoseg.model.bundle import load_bundle
from geoseg.model.loading import read_meta
from geoseg.model.meta import METADATA_KEY
from geoseg.errors import ModelError, OutputError, ParameterError
from geoseg.model.onnx import INPUT_NAME, export_onnx, load_onnx
from geoseg.inference.predictor import Predictor

from tests.conftest import ROOT, ZION, read_band, tiny_bundle, tiny_meta, write_crop

ZION_BANDS = ["blue", "green", "red", "nir"]


@pytest.fixture(scope="module")
def unet_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small smp U-Net (ResNet-18 encoder, depth 3) for the Zion bands, random but fixed weights."""
    meta = tiny_meta(ZION_BANDS, 4, architecture="Unet", tile=128, overlap=32, gsd=30.0, mean=10000.0,
                     std=2500.0, input_dtype="uint16")
    path = tmp_path_factory.mktemp("onnx") / "unet.safetensors"
    tiny_bundle(meta).save(path)
    return path


@pytest.fixture(scope="module")
def onnx_path(unet_path: Path) -> Path:
    return export_onnx(load_bundle(unet_path), unet_path.with_suffix(".onnx"))


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 256 x 384 crop of the real Zion sample (12 tiles of 128 px)."""
    return write_crop(ZION, tmp_path_factory.mktemp("scene") / "zion_crop.tif", Window(300, 100, 384, 256))


def test_metadata_props_round_trip_to_the_bundle_meta(unet_path: Path, onnx_path: Path) -> None:
    proto = onnx.load(str(onnx_path))
    props = {p.key: p.value for p in proto.metadata_props}
    original = read_meta(unet_path)
    assert json.loads(props[METADATA_KEY]) == json.loads(original.model_dump_json())
    assert read_meta(onnx_path) == original  # read_meta dispatches on the suffix
    assert load_onnx(onnx_path).meta == original


def test_dynamic_batch_height_width_and_same_logits_as_torch(unet_path: Path, onnx_path: Path) -> None:
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(3, 4, 64, 96)).astype(np.float32)
    logits = session.run(None, {INPUT_NAME: x})[0]
    assert logits.shape == (3, 4, 64, 96)
    with torch.inference_mode():
        expected = load_bundle(unet_path).build()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=1e-4)


def test_onnx_backend_agrees_with_torch_on_a_real_tile(unet_path: Path, onnx_path: Path, scene: Path,
                                                       tmp_path: Path) -> None:
    torch_map = tmp_path / "torch.tif"
    Predictor(unet_path, backend="torch", precision="fp32").predict(scene, torch_map)  # ONNX runs fp32
    for model, backend in ((unet_path, "onnx"), (onnx_path, "auto"), (onnx_path, "onnx")):
        out = tmp_path / f"{model.suffix[1:]}_{backend}.tif"
        summary = Predictor(model, backend=backend).predict(scene, out)
        assert summary.precision == "fp32" and summary.device == "cpu"
        assert (read_band(out) == read_band(torch_map)).mean() >= 0.999


def test_backend_choices_are_checked(unet_path: Path, onnx_path: Path) -> None:
    with pytest.raises(ParameterError, match="^backend torch: .*only with backend onnx"):
        Predictor(onnx_path, backend="torch")
    with pytest.raises(ParameterError, match="^backend tensorrt: unknown"):
        Predictor(unet_path, backend="tensorrt")
    with pytest.raises(ParameterError, match="^precision bf16: the onnx backend"):
        Predictor(onnx_path, precision="bf16")
    with pytest.raises(ParameterError, match="^precision fp16: the onnx backend"):
        Predictor(unet_path, backend="onnx", precision="fp16")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(ParameterError, match="^device cuda: this onnxruntime has no CUDA provider"):
            Predictor(onnx_path, device="cuda")


def test_unusable_onnx_files_are_refused_with_the_fix(tmp_path: Path, onnx_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf at all")
    with pytest.raises(ModelError, match="junk.onnx: not an ONNX model"):
        load_onnx(junk)
    bare = onnx.load(str(onnx_path))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(ModelError, match="bare.onnx: ONNX model without geoseg metadata"):
        read_meta(tmp_path / "bare.onnx")
    lying = onnx.load(str(onnx_path))
    raw = json.loads(lying.metadata_props[0].value)
    raw["bands"] = raw["bands"][:3]
    lying.metadata_props[0].value = json.dumps(raw)
    onnx.save(lying, str(tmp_path / "lying.onnx"))
    with pytest.raises(ModelError, match="lying.onnx: the graph has 4 bands but its metadata says 3"):
        load_onnx(tmp_path / "lying.onnx")
    with pytest.raises(OutputError, match="must be written to a .onnx file"):
        export_onnx(load_bundle(onnx_path.with_suffix(".safetensors")), tmp_path / "model.bin")


def test_simple_fcn_exports_too(tmp_path: Path) -> None:
    bundle = tiny_bundle(tiny_meta(["a", "b"], 3))
    path = export_onnx(bundle, tmp_path / "fcn.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).normal(size=(1, 2, 17, 23)).astype(np.float32)
    with torch.inference_mode():
        expected = bundle.build()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(session.run(None, {INPUT_NAME: x})[0], expected, atol=1e-5)


def _geoseg(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "geoseg", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_export_predict_and_info(unet_path: Path, scene: Path, tmp_path: Path) -> None:
    done = _geoseg("export", unet_path, "--onnx", tmp_path / "m.onnx", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    again = _geoseg("export", unet_path, "--onnx", tmp_path / "m.onnx", cwd=tmp_path)
    assert again.returncode == 2 and "output exists; pass --overwrite" in again.stderr
    missing = _geoseg("export", tmp_path / "nope.safetensors", "--onnx", tmp_path / "n.onnx", cwd=tmp_path)
    assert missing.returncode == 2 and "nope.safetensors: model file not found" in missing.stderr
    predicted = _geoseg("predict", scene, "-o", tmp_path / "map.tif", "-m", unet_path, "--backend", "onnx",
                        "--progress", "none", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert read_band(tmp_path / "map.tif").shape == (256, 384)
    info = _geoseg("info", tmp_path / "m.onnx", "--json", cwd=tmp_path)
    assert info.returncode == 0 and json.loads(info.stdout)["name"] == "tiny-unet"


@pytest.mark.gpu
@pytest.mark.skipif("CUDAExecutionProvider" not in ort.get_available_providers(),
                    reason="needs onnxruntime-gpu (CUDAExecutionProvider) and a CUDA device")
def test_cuda_provider_agrees_with_cpu(onnx_path: Path, scene: Path, tmp_path: Path) -> None:
    cpu = Predictor(onnx_path, device="cpu").predict(scene, tmp_path / "cpu.tif")
    gpu = Predictor(onnx_path, device="cuda").predict(scene, tmp_path / "gpu.tif")
    assert cpu.device == "cpu" and gpu.device == "cuda:0"
    assert (read_band(tmp_path / "gpu.tif") == read_band(tmp_path / "cpu.tif")).mean() >= 0.999
