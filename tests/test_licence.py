"""The licence travels with the code: LICENSE in the repository and the wheel, data credits beside the data."""
from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_library_licence_is_an_spdx_expression_with_its_file() -> None:
    project = pyproject()["project"]
    assert project["license"] == "MIT"  # PEP 639 string form; the TOML-table form is deprecated
    assert project["license-files"] == ["LICENSE"]
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "geoseg contributors" in text
    requires = pyproject()["build-system"]["requires"]
    assert "setuptools>=77" in requires  # the first setuptools that reads `license` as SPDX


def test_shipped_data_has_its_credits_beside_it() -> None:
    model = REPO / "geoseg" / "data" / "default_model"
    assert (model / "CREDITS.md").is_file() and list(model.glob("*.safetensors"))
    assert "data/default_model/*.md" in pyproject()["tool"]["setuptools"]["package-data"]["geoseg"]
    credits = (REPO / "sample_tiles" / "CREDITS.md").read_text(encoding="utf-8")
    for tile in (REPO / "sample_tiles").glob("*.tif"):
        assert f"`{tile.name}`" in credits, f"{tile.name} has no line in sample_tiles/CREDITS.md"
