"""The model bundle: round trip, validation on load, versioning, no code execution."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from geoseg.model.bundle import load_bundle
from geoseg.model.loading import read_meta
from geoseg.model.meta import FORMAT_VERSION, METADATA_KEY
from geoseg.errors import ModelError, OutputExistsError

from tests.conftest import tiny_bundle, tiny_meta


def _write_raw(path: Path, meta: dict, tensors: dict[str, torch.Tensor] | None = None) -> Path:
    save_file(tensors or {"w": torch.zeros(1)}, str(path), metadata={METADATA_KEY: json.dumps(meta)})
    return path


def test_round_trip_keeps_metadata_and_predictions(tmp_path: Path) -> None:
    meta = tiny_meta(["blue", "green", "red", "nir"], 3, gsd=30.0)
    bundle = tiny_bundle(meta)
    bundle.save(tmp_path / "m.safetensors")
    loaded = load_bundle(tmp_path / "m.safetensors")
    assert loaded.meta.model_dump(exclude={"geoseg_version"}) == meta.model_dump(exclude={"geoseg_version"})
    assert loaded.meta.geoseg_version
    x = torch.randn(1, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(bundle.build()(x), loaded.build()(x))


def test_half_precision_halves_the_file_and_keeps_predictions(tmp_path: Path) -> None:
    meta = tiny_meta(["b1", "b2", "b3"], 2, architecture="Unet")
    bundle = tiny_bundle(meta)
    full, half = bundle.save(tmp_path / "f.safetensors"), bundle.save(tmp_path / "h.safetensors", half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = load_bundle(full).build()(x), load_bundle(half).build()(x)
    assert (a.argmax(1) == b.argmax(1)).float().mean() > 0.99


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    bundle = tiny_bundle(tiny_meta(["a"], 2))
    bundle.save(tmp_path / "m.safetensors")
    with pytest.raises(OutputExistsError):
        bundle.save(tmp_path / "m.safetensors")


def test_missing_key_names_the_field(tmp_path: Path) -> None:
    raw = json.loads(tiny_meta(["a"], 2).model_dump_json())
    del raw["scheme"]
    with pytest.raises(ModelError, match=r"m.safetensors: invalid geoseg metadata \(scheme: Field required\)"):
        read_meta(_write_raw(tmp_path / "m.safetensors", raw))


def test_newer_format_asks_for_an_upgrade(tmp_path: Path) -> None:
    raw = json.loads(tiny_meta(["a"], 2).model_dump_json())
    raw["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(ModelError, match="newer than this geoseg reads.*upgrade geoseg"):
        read_meta(_write_raw(tmp_path / "m.safetensors", raw))


def test_weights_that_do_not_match_the_architecture(tmp_path: Path) -> None:
    raw = json.loads(tiny_meta(["a"], 2).model_dump_json())
    bundle = load_bundle(_write_raw(tmp_path / "m.safetensors", raw))
    with pytest.raises(ModelError, match="weights do not match SimpleFCN"):
        bundle.build()


def test_not_a_bundle(tmp_path: Path) -> None:
    (tmp_path / "x.safetensors").write_bytes(b"\x80\x04pickle-ish bytes, never unpickled")
    with pytest.raises(ModelError, match="not a safetensors model bundle"):
        read_meta(tmp_path / "x.safetensors")
    save_file({"w": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ModelError, match="without geoseg metadata"):
        read_meta(tmp_path / "plain.safetensors")
    with pytest.raises(ModelError, match="model file not found"):
        read_meta(tmp_path / "absent.safetensors")


def test_duplicate_class_ids_are_refused() -> None:
    from pydantic import ValidationError

    from geoseg.io.legend import ClassInfo, ClassScheme

    with pytest.raises(ValidationError, match="unique"):
        ClassScheme(classes=[ClassInfo(id=1, name="a"), ClassInfo(id=1, name="b")])
    with pytest.raises(ValidationError, match="also a class id"):
        ClassScheme(classes=[ClassInfo(id=1, name="a")], nodata_id=1)


def test_bundles_follow_the_umask_like_every_output(tmp_path: Path) -> None:
    """safetensors' own writer creates 0600 files; a bundle (trained, pruned) must not be private by accident."""
    import os

    previous = os.umask(0o022)
    try:
        path = tiny_bundle(tiny_meta(["b1"], 2)).save(tmp_path / "m.safetensors")
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o644
    assert load_bundle(path).stored_half is False
    assert load_bundle(tiny_bundle(tiny_meta(["b1"], 2)).save(tmp_path / "h.safetensors", half=True)).stored_half
