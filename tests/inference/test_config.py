"""PredictorConfig: the one place a predictor's settings are checked, and where their defaults come from."""
from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from geoseg.errors import ParameterError
from geoseg.inference.config import PREDICTOR_OPTIONS, PredictorConfig
from geoseg.inference.device import DeviceRequest, parse_device
from geoseg.inference.predictor import Predictor
from geoseg.model.bundle import load_bundle

from tests.conftest import ZION, tiny_meta


def test_defaults_come_from_the_bundle_and_the_device(zion_bundle_path: Path) -> None:
    bundle = load_bundle(zion_bundle_path)
    settings = PredictorConfig().for_model(bundle)
    assert (settings.tile, settings.overlap) == (bundle.meta.tile_size, bundle.meta.overlap) == (64, 32)
    assert settings.for_device("cpu").batch_size == 1 and settings.for_device("cuda").batch_size == 8
    assert PredictorConfig(batch_size=3).for_device("cuda").batch_size == 3
    assert PredictorConfig(tile=128, overlap=0).for_model(bundle).tile == 128


def test_config_and_keywords_make_the_same_predictor(zion_bundle_path: Path) -> None:
    by_config = Predictor(zion_bundle_path, PredictorConfig(tile=96, overlap=24, blend="gaussian"))
    by_keywords = Predictor(zion_bundle_path, tile=96, overlap=24, blend="gaussian")
    assert by_config.config == by_keywords.config
    assert (by_config.tile, by_config.overlap, by_config.batch_size, by_config.blend) == (96, 24, 1, "gaussian")
    mixed = Predictor(zion_bundle_path, PredictorConfig(tile=96, overlap=24), overlap=8)
    assert (mixed.tile, mixed.overlap) == (96, 8)


@pytest.mark.parametrize(("options", "message"), [
    ({"tile": 64, "overlap": 40}, "^overlap 40: must be between 0 and half of tile 64$"),
    ({"tile": 0}, "^tile 0: must be at least 16 px for SimpleFCN"),
    ({"overlap": -1}, "^overlap -1: must be between 0 and half of tile 64$"),
    ({"overlap": 33}, "^overlap 33: must be between 0 and half of tile 64$"),     # the bundle's tile
    ({"tile": 48}, "^tile 48: is smaller than twice the model's overlap of 32 px; give overlap"),
    ({"batch_size": 0}, "^batch_size 0: must be at least 1$"),
    ({"blend": "fancy"}, "^blend fancy: unknown; use hann, gaussian, none$"),
    ({"precision": "fp8"}, "^precision fp8: unknown; use auto, fp32, fp16 or bf16$"),
    ({"backend": "tensorrt"}, "^backend tensorrt: unknown; use auto, torch, onnx$"),
    ({"device": "tpu"}, "^device tpu: unknown device; use auto, cpu, cuda or cuda:N$"),
    ({"device": "cudax"}, "^device cudax: unknown device"),
    ({"tile": "big"}, "^tile big: input should be a valid integer"),
])
def test_bad_settings_are_parameter_errors(options: dict, message: str, zion_bundle_path: Path) -> None:
    with pytest.raises(ParameterError, match=message):
        PredictorConfig(**options).for_model(load_bundle(zion_bundle_path))
    with pytest.raises(ParameterError, match=message):
        Predictor(zion_bundle_path, **options)


def test_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="unexpected option 'tiles'"):
        PredictorConfig(tiles=64)
    assert set(PREDICTOR_OPTIONS) == {"tile", "overlap", "batch_size", "blend", "precision", "backend", "device", "tta"}


def test_refuse_changes_names_the_setting_that_differs(zion_bundle_path: Path) -> None:
    config = Predictor(zion_bundle_path, tile=64, overlap=16).config
    config.refuse_changes(tile=64, overlap=16, blend="hann", batch_size=None)       # the same: accepted
    config.refuse_changes(PredictorConfig(tile=64))
    with pytest.raises(ParameterError, match="^tile 128: the Predictor given was made with 64"):
        config.refuse_changes(tile=128)
    with pytest.raises(ParameterError, match="^device cpu: the Predictor given was made with auto"):
        config.refuse_changes(PredictorConfig(device="cpu"))


def test_bundles_follow_the_same_tiling_rule() -> None:
    with pytest.raises(ValidationError, match="overlap 40: must be between 0 and half of tile_size 64"):
        tiny_meta(["red"], tile=64, overlap=40)


def test_device_strings_have_one_parser() -> None:
    assert parse_device("auto") == DeviceRequest("auto")
    assert parse_device("cpu") == DeviceRequest("cpu")
    assert parse_device("cuda") == DeviceRequest("cuda", None)
    assert parse_device("cuda:1") == DeviceRequest("cuda", 1)
    for bad in ("cuda:", "cuda:x", "cpu:0", "gpu", ""):
        with pytest.raises(ParameterError, match="unknown device"):
            parse_device(bad)


def test_predict_takes_a_config_too(tmp_path: Path, zion_bundle_path: Path) -> None:
    from geoseg.inference.predictor import predict

    predict(ZION, tmp_path / "config.tif", zion_bundle_path, config=PredictorConfig(tile=64, overlap=16))
    predict(ZION, tmp_path / "keywords.tif", zion_bundle_path, tile=64, overlap=16)
    assert (tmp_path / "config.tif").read_bytes() == (tmp_path / "keywords.tif").read_bytes()
