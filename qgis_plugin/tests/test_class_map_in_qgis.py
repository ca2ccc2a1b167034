"""A geoseg class map opened in plain QGIS (no plugin, no geoseg style) shows its class names.

QGIS labels a paletted raster's colour-table entries with GDAL's category names, which geoseg writes into
the map's ``.tif.aux.xml``; and it applies the ``.qml`` that geoseg writes beside the map by default.
"""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("qgis.core", reason="QGIS is not installed: run .ci/install_qgis.sh, then "
                    "QT_QPA_PLATFORM=offscreen .venv-qgis/bin/python -m pytest qgis_plugin/tests")

from qgis.core import QgsPalettedRasterRenderer, QgsRasterLayer  # noqa: E402

from geoseg_qgis.worker import WORKER_CWD, clean_env  # noqa: E402

pytestmark = pytest.mark.qgis


def predict(python: str, scene: Path, output: Path, model: dict[str, Any], *options: str) -> Path:
    """``geoseg predict`` in the geoseg environment, as a user runs it."""
    command = [python, "-m", "geoseg", "predict", str(scene), "-o", str(output), "--quiet", *options]
    if model["path"]:
        command += ["--model", model["path"]]
    proc = subprocess.run(command, capture_output=True, text=True, env=clean_env(), cwd=WORKER_CWD, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return output


def labels(layer: QgsRasterLayer) -> dict[int, str]:
    """Value -> legend label of the layer's paletted renderer."""
    renderer = layer.renderer()
    assert isinstance(renderer, QgsPalettedRasterRenderer), type(renderer).__name__
    return {int(c.value): c.label for c in renderer.classes()}


def test_names_show_without_any_style(qgis_new_project: Any, geoseg_python: str, sample_tile: Path,
                                      model: dict[str, Any], tmp_path: Path) -> None:
    out = predict(geoseg_python, sample_tile, tmp_path / "plain.tif", model, "--no-qml", "--no-stac")
    assert not out.with_suffix(".qml").exists()
    layer = QgsRasterLayer(str(out), "plain")
    assert layer.isValid()
    shown = labels(layer)
    for c in model["classes"]:
        assert shown[c["id"]] == c["name"]
    legend = dict(layer.renderer().legendSymbologyItems())
    assert {c["name"] for c in model["classes"]} <= set(legend)


def test_default_style_lists_exactly_the_classes(qgis_new_project: Any, geoseg_python: str, sample_tile: Path,
                                                 model: dict[str, Any], tmp_path: Path) -> None:
    out = predict(geoseg_python, sample_tile, tmp_path / "styled.tif", model)
    assert out.with_suffix(".qml").is_file()
    layer = QgsRasterLayer(str(out), "styled")         # QGIS loads styled.qml as the layer's default style
    assert layer.isValid()
    assert labels(layer) == {c["id"]: c["name"] for c in model["classes"]}
