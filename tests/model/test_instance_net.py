"""Mask R-CNN bundles: metadata (task, thresholds, upgrade of older bundles), round trip, the detector
contract, and clear refusals where a model of the other task is passed."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from geoseg.errors import ModelError
from geoseg.io.legend import ClassInfo, ClassScheme
from geoseg.model.bundle import load_bundle
from geoseg.model.instance_net import MaskRCNNDetector, load_instance_detector
from geoseg.model.instances import TileInstances
from geoseg.model.loading import load_model, read_meta
from geoseg.model.meta import METADATA_KEY, BandSpec, BundleMeta, ModelSpec
from geoseg.model.networks import build_model
from geoseg.model.onnx import export_onnx

from tests.conftest import tiny_bundle, tiny_meta


def instance_meta(**overrides: object) -> BundleMeta:
    """A small Mask R-CNN (ResNet-18, 16-channel FPN) for one band and two classes with ids 3 and 7."""
    fields: dict = dict(name="tiny-buildings", task="instance",
                        model=ModelSpec(architecture="MaskRCNN", encoder="resnet18", decoder_channels=[16]),
                        bands=[BandSpec(name="pan", mean=400.0, std=150.0)], input_dtype="uint16",
                        scheme=ClassScheme(classes=[ClassInfo(id=3, name="building", color="#d62728"),
                                                    ClassInfo(id=7, name="pond", color="#1f77b4")]),
                        tile_size=64, overlap=16, gsd=0.5, score_threshold=0.0)
    fields.update(overrides)
    return BundleMeta(**fields)


@pytest.fixture(scope="module")
def instance_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("instances") / "buildings.safetensors"
    tiny_bundle(instance_meta()).save(path)
    return path


def _raw(meta: BundleMeta) -> dict:
    return json.loads(meta.model_dump_json())


def test_bundles_of_format_1_load_as_semantic_models(tmp_path: Path) -> None:
    raw = _raw(tiny_meta(["a"], 2))
    for key in ("task", "score_threshold", "mask_threshold"):
        del raw[key]
    raw["format_version"] = 1
    path = tmp_path / "old.safetensors"
    save_file({"w": torch.zeros(1)}, str(path), metadata={METADATA_KEY: json.dumps(raw)})
    meta = read_meta(path)
    assert (meta.task, meta.format_version) == ("semantic", 2)


def test_the_task_must_fit_the_architecture_and_thresholds_are_checked() -> None:
    with pytest.raises(ValueError, match="task 'semantic' does not fit architecture 'MaskRCNN'"):
        instance_meta(task="semantic")
    with pytest.raises(ValueError, match="task 'instance' does not fit architecture 'Unet'"):
        instance_meta(model=ModelSpec(architecture="Unet"))
    with pytest.raises(ValueError, match="class ids start at 1"):
        instance_meta(scheme=ClassScheme(classes=[ClassInfo(id=0, name="building", color="#d62728")]))
    for field, value in (("score_threshold", 1.5), ("mask_threshold", 0.0), ("mask_threshold", 1.0)):
        with pytest.raises(ValueError, match=field):
            instance_meta(**{field: value})


def test_round_trip_keeps_metadata_and_detections(instance_path: Path) -> None:
    loaded = load_bundle(instance_path)
    assert loaded.meta.model_dump(exclude={"geoseg_version", "created"}) == instance_meta().model_dump(
        exclude={"geoseg_version", "created"})
    tiles = np.random.default_rng(0).normal(size=(2, 1, 64, 64)).astype(np.float32)
    first, again = (MaskRCNNDetector(load_bundle(instance_path), max_per_tile=10).detect(tiles) for _ in range(2))
    for a, b in zip(first, again):
        assert np.array_equal(a.masks, b.masks) and np.array_equal(a.scores, b.scores)


def test_detect_keeps_the_contract(instance_path: Path) -> None:
    detector = MaskRCNNDetector(load_bundle(instance_path), max_per_tile=10)
    tiles = np.random.default_rng(1).normal(size=(3, 1, 64, 96)).astype(np.float32)
    results = detector.detect(tiles)
    assert len(results) == 3 and all(isinstance(r, TileInstances) for r in results)
    found = [r for r in results if len(r.scores)]
    assert found, "an untrained net with score threshold 0 finds something"
    for r in results:
        assert r.masks.shape[1:] == (64, 96) and r.masks.dtype == bool       # tiles are not resized
        assert r.scores.dtype == np.float32 and r.class_ids.dtype == np.int32
        assert set(r.class_ids.tolist()) <= {3, 7}                           # the bundle's ids, never 0
        assert r.masks.reshape(len(r.scores), -1).any(1).all()               # no empty object
        assert (np.diff(r.scores) <= 0).all()
    top = max(float(r.scores.max()) for r in found)
    strict = MaskRCNNDetector(load_bundle(instance_path), score_threshold=top + 1e-6, max_per_tile=10)
    assert all(len(r.scores) == 0 for r in strict.detect(tiles))
    loose, tight = (load_instance_detector(instance_path, mask_threshold=t, max_per_tile=10).detect(tiles[:1])[0]
                    for t in (0.01, 0.99))
    assert loose.masks.sum() > tight.masks.sum()


def test_wrong_tiles_are_refused(instance_path: Path) -> None:
    with pytest.raises(ValueError, match=r"expected tiles \(N, 1, H, W\)"):
        load_instance_detector(instance_path, max_per_tile=10).detect(np.zeros((1, 3, 64, 64), np.float32))


def test_a_model_of_the_other_task_is_refused_saying_what_it_is(tmp_path: Path, instance_path: Path) -> None:
    semantic = tiny_bundle(tiny_meta(["a"], 2)).save(tmp_path / "landcover.safetensors")
    with pytest.raises(ModelError, match=r"landcover.safetensors: a semantic segmentation model \(a class per "
                                         r"pixel: water, developed\); this needs an instance segmentation model"):
        load_instance_detector(semantic)
    with pytest.raises(ModelError, match=r"buildings.safetensors: an instance segmentation model \(objects: "
                                         r"building, pond\); this needs a semantic segmentation model"):
        load_model(instance_path)
    with pytest.raises(ModelError, match="run from their .safetensors bundle only"):
        load_instance_detector(tmp_path / "buildings.onnx")


def test_onnx_export_is_refused_clearly(tmp_path: Path, instance_path: Path) -> None:
    with pytest.raises(ModelError, match="instance models \\(Mask R-CNN\\) are not exported to ONNX"):
        export_onnx(load_model(instance_path, task=None), tmp_path / "b.onnx")
    assert not (tmp_path / "b.onnx").exists()


def test_unknown_backbone_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="MaskRCNN backbone 'efficientnet-b0' is not available"):
        build_model(instance_meta(model=ModelSpec(architecture="MaskRCNN", encoder="efficientnet-b0")))


def test_info_says_what_the_model_finds(instance_path: Path) -> None:
    from io import StringIO

    from rich.console import Console

    from geoseg.info import bundle, print_human

    out = StringIO()
    print_human(bundle(instance_path), Console(file=out, width=200))
    assert "instance (objects scoring >= 0.0, masks at 0.5)" in out.getvalue()
