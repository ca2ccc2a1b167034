"""Bad input, as a new or hostile user gives it, to every command.

Every case must end with exit code 2 and exactly one line on stderr (``geoseg: error: ...``) that names
the file or flag at fault; no traceback; nothing new left in the working folder; every file that was
there before (inputs, existing outputs, a folder's contents) unchanged, byte for byte.
"""
from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import LANDSAT7_FRAME, NAIP, ROOT, ZION, ZION_LABELS, tiny_bundle, tiny_meta


@dataclass(frozen=True)
class Case:
    name: str
    args: tuple[str, ...]
    message: str                    # a regex the error line must match (file or flag, and the fix)


def _case(name: str, args: str, message: str) -> Case:
    return Case(name, tuple(args.split()), message)


CASES = [
    # predict: paths
    _case("predict-missing-scene", "predict nothere.tif -o out.tif", r"nothere.tif: file not found"),
    _case("predict-text-scene", "predict notes.dat -o out.tif", r"notes.dat: not a raster"),
    _case("predict-list-into-a-file", "predict notes.txt -o out.tif",
          r"--output out.tif: many scenes go into a folder"),
    _case("predict-onto-its-input", "predict scene.tif -o scene.tif --overwrite", r"scene.tif: is also an input"),
    _case("predict-existing-output", "predict scene.tif -o existing.tif", r"existing.tif: output exists; pass --overwrite"),
    _case("predict-into-a-folder", "predict scene.tif -o results --overwrite", r"results: is a folder"),
    _case("predict-missing-folder", "predict scene.tif -o nowhere/out.tif", r"nowhere does not exist"),
    _case("predict-probs-same-as-map", "predict scene.tif -o out.tif --probabilities out.tif",
          r"out.tif: .*another file"),
    _case("predict-probs-onto-input", "predict scene.tif -o out.tif --probabilities scene.tif --overwrite",
          r"scene.tif: is also an input"),
    _case("predict-polygons-exist", "predict scene.tif -o out.tif --polygons existing.gpkg",
          r"existing.gpkg: output exists; pass --overwrite"),
    _case("predict-polygons-onto-input", "predict scene.tif -o out.tif --polygons scene.tif --overwrite",
          r"scene.tif: is also an input"),
    _case("predict-png-output", "predict scene.tif -o map.png", r"map.png: .*GeoTIFF.*\.tif"),
    # predict: numbers and choices
    _case("predict-tile-zero", "predict scene.tif -o out.tif --tile 0", r"--tile 0: "),
    _case("predict-tile-too-small", "predict scene.tif -o out.tif --tile 4", r"--tile 4: "),
    _case("predict-tile-huge", "predict scene.tif -o out.tif --tile 32768", r"--tile 32768: .*memory"),
    _case("predict-overlap-too-big", "predict scene.tif -o out.tif --tile 64 --overlap 40", r"--overlap 40: "),
    _case("predict-overlap-negative", "predict scene.tif -o out.tif --overlap -1", r"--overlap -1: "),
    _case("predict-batch-zero", "predict scene.tif -o out.tif --batch-size 0", r"--batch-size 0: "),
    _case("predict-output-block", "predict scene.tif -o out.tif --output-block 3", r"--output-block 3: "),
    _case("predict-device", "predict scene.tif -o out.tif --device tpu", r"--device tpu: "),
    _case("predict-precision", "predict scene.tif -o out.tif --precision fp8", r"--precision fp8: "),
    _case("predict-fp16-on-cpu", "predict scene.tif -o out.tif --device cpu --precision fp16", r"--precision fp16: "),
    _case("predict-bands-count", "predict scene.tif -o out.tif --bands 1,2", r"--bands"),
    _case("predict-bands-range", "predict scene.tif -o out.tif --bands 1,2,3,9", r"band numbers \[9\]"),
    _case("predict-bands-text", "predict scene.tif -o out.tif --bands a,b", r"--bands a,b: "),
    _case("predict-bands-repeated", "predict scene.tif -o out.tif --bands 1,1,1,1", r"--bands .*repeat.*--repeat-bands"),
    _case("predict-method-unknown", "predict scene.tif -o out.tif --method magic", r"--method magic"),
    _case("predict-method-with-model", "predict scene.tif -o out.tif --method ndwi-otsu --model model.safetensors",
          r"--method ndwi-otsu: "),
    # predict: models and scenes that do not fit
    _case("predict-missing-model", "predict scene.tif -o out.tif --model nothere.safetensors",
          r"nothere.safetensors: model file not found"),
    _case("predict-text-model", "predict scene.tif -o out.tif --model fake.safetensors",
          r"fake.safetensors: not a safetensors model bundle"),
    _case("predict-three-band-scene", "predict frame.tif -o out.tif", r"frame.tif: .*3 bands.*--bands"),
    _case("predict-far-resolution", "predict naip.tif -o out.tif", r"naip.tif: .*resolution"),
    _case("predict-other-value-scale", "predict reflectance.tif -o out.tif", r"reflectance.tif: .*values"),
    _case("predict-complex-scene", "predict complex.tif -o out.tif", r"complex.tif: .*complex"),
    # vectorize
    _case("vectorize-missing", "vectorize nothere.tif -o p.gpkg", r"nothere.tif: file not found"),
    _case("vectorize-scene-not-classes", "vectorize scene.tif -o p.gpkg", r"scene.tif: "),
    _case("vectorize-existing", "vectorize classes.tif -o existing.gpkg", r"existing.gpkg: output exists"),
    _case("vectorize-onto-input", "vectorize classes.tif -o classes.tif --format gpkg --overwrite",
          r"classes.tif: is also an input"),
    _case("vectorize-into-folder", "vectorize classes.tif -o results --format gpkg --overwrite",
          r"results: is a folder"),
    _case("vectorize-format", "vectorize classes.tif -o p.gpkg --format xyz", r"--format xyz: "),
    _case("vectorize-suffix", "vectorize classes.tif -o p.xyz", r"p.xyz: .*--format"),
    _case("vectorize-min-area", "vectorize classes.tif -o p.gpkg --min-area -5", r"--min-area -5"),
    _case("vectorize-min-area-huge", "vectorize classes.tif -o p.gpkg --min-area 1e15",
          r"--min-area 10+\.0: .*whole class map"),
    _case("vectorize-simplify", "vectorize classes.tif -o p.gpkg --simplify -1", r"--simplify -1"),
    _case("vectorize-block", "vectorize classes.tif -o p.gpkg --block-size 1", r"--block-size 1: "),
    _case("vectorize-workers", "vectorize classes.tif -o p.gpkg --workers 0", r"--workers 0: "),
    _case("vectorize-classes", "vectorize classes.tif -o p.gpkg --classes lava", r"--classes .*lava"),
    # evaluate
    _case("evaluate-missing-labels", "evaluate default scene.tif nothere.tif -o report", r"nothere.tif: .*not found"),
    _case("evaluate-undeclared-ids", "evaluate default scene.tif odd_labels.gpkg -o report",
          r"odd_labels.gpkg: label ids 42 .*--ignore-ids"),
    _case("evaluate-report-is-file", "evaluate default scene.tif labels.tif -o notes.txt", r"notes.txt: .*not a folder"),
    _case("evaluate-missing-model", "evaluate nothere.safetensors scene.tif labels.tif -o report",
          r"nothere.safetensors: model file not found"),
    _case("evaluate-method-classes", "evaluate default scene.tif labels.tif -o report --method-classes 1",
          r"--method-classes 1: "),
    _case("evaluate-ignore-ids", "evaluate default scene.tif labels.tif -o report --ignore-ids x", r"--ignore-ids x: "),
    # info
    _case("info-missing", "info nothere.tif", r"nothere.tif: file not found"),
    _case("info-text", "info notes.txt", r"notes.txt: not a raster"),
    _case("info-fake-model", "info fake.safetensors", r"fake.safetensors: not a safetensors model bundle"),
    # train
    _case("train-missing-config", "train nothere.yaml", r"nothere.yaml: config not found"),
    _case("train-bad-yaml", "train broken.yaml", r"broken.yaml: not valid YAML"),
    _case("train-unknown-key", "train misspelt.yaml", r"misspelt.yaml: unknown key 'epoch'"),
    _case("train-newer-config", "train future.yaml", r"future.yaml: training config format 99 is newer"),
    _case("train-missing-scene", "train lost.yaml", r"lost.yaml: scenes\[0\].scene: .*lost_scene.tif not found"),
    # export, quantize, prune
    _case("export-missing", "export nothere.safetensors --onnx m.onnx", r"nothere.safetensors: model file not found"),
    _case("export-existing", "export model.safetensors --onnx existing.onnx", r"existing.onnx: output exists"),
    _case("export-onto-input", "export model.safetensors --onnx model.safetensors --overwrite",
          r"model.safetensors: is also an input"),
    _case("prune-amount-high", "prune model.safetensors -o p.safetensors --amount 1.5", r"--amount 1.5: "),
    _case("prune-amount-negative", "prune model.safetensors -o p.safetensors --amount -0.1", r"--amount -0.1: "),
    _case("prune-onto-input", "prune model.safetensors -o model.safetensors --overwrite",
          r"model.safetensors: is also an input"),
    _case("quantize-existing", "quantize model.safetensors -o existing.onnx", r"existing.onnx: output exists"),
    _case("quantize-missing-calibration", "quantize model.safetensors -o q.onnx --calibration nothere.tif",
          r"nothere.tif: file not found"),
]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files every case starts from: scenes, labels, a model, existing outputs, broken files."""
    import geopandas as gpd
    import numpy as np
    import rasterio
    from shapely.geometry import box

    work = tmp_path_factory.mktemp("template")
    shutil.copy(ZION, work / "scene.tif")
    shutil.copy(ZION_LABELS, work / "labels.tif")
    shutil.copy(ZION_LABELS, work / "classes.tif")
    shutil.copy(LANDSAT7_FRAME, work / "frame.tif")
    shutil.copy(NAIP, work / "naip.tif")
    meta = tiny_meta(["blue", "green", "red", "nir"], 4, gsd=30.0, mean=10000.0, std=2500.0, input_dtype="uint16")
    tiny_bundle(meta).save(work / "model.safetensors")
    for name in ("existing.tif", "existing.gpkg", "existing.onnx", "notes.txt", "notes.dat"):
        (work / name).write_text("precious")
    (work / "fake.safetensors").write_text("not a model")
    (work / "results").mkdir()
    (work / "results" / "keep.txt").write_text("precious")
    with rasterio.open(ZION) as src:
        profile, data, crs, bounds = src.profile.copy(), src.read(), src.crs, src.bounds
    profile.update(dtype="float32")
    with rasterio.open(work / "reflectance.tif", "w", **profile) as dst:      # 0..1 instead of DN
        dst.write((data / 65535.0).astype("float32"))
    profile.update(dtype="complex64")
    with rasterio.open(work / "complex.tif", "w", **profile) as dst:
        dst.write(data.astype("complex64"))
    gpd.GeoDataFrame({"class": [1, 42]}, geometry=[box(bounds.left, bounds.top - 900, bounds.left + 900, bounds.top),
                                                    box(bounds.left + 1800, bounds.top - 900, bounds.left + 2700,
                                                        bounds.top)], crs=crs).to_file(work / "odd_labels.gpkg")
    config = yaml.safe_load((ROOT / "configs" / "zion_landcover.yaml").read_text())
    config["scenes"] = [{"scene": "scene.tif", "labels": "labels.tif"}]
    (work / "misspelt.yaml").write_text(yaml.safe_dump({**config, "epoch": 3}))
    (work / "future.yaml").write_text(yaml.safe_dump({**config, "format_version": 99}))
    (work / "lost.yaml").write_text(yaml.safe_dump({**config, "scenes": [{"scene": "lost_scene.tif",
                                                                          "labels": "labels.tif"}]}))
    (work / "broken.yaml").write_text("name: [unclosed\n")
    assert np.iscomplexobj(np.zeros(1, "complex64"))
    return work


def _checksums(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_line_exit_2_and_nothing_lost(case: Case, template: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    shutil.copytree(template, work)
    before = _checksums(work)
    result = subprocess.run([sys.executable, "-m", "geoseg", *case.args], cwd=work, capture_output=True,
                            text=True, timeout=300)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1 and lines[0].startswith("geoseg: error: "), result.stderr
    assert re.search(case.message, lines[0]), lines[0]
    assert _checksums(work) == before, "a file was created, changed or removed"
