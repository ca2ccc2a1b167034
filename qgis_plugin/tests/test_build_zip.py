"""The installable zip: one folder named like the package, the plugin's files and nothing else."""
from __future__ import annotations

import configparser
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import build_zip  # noqa: E402
from geoseg_qgis.worker import WHERE  # noqa: E402


def test_zip_holds_the_plugin_folder_only(tmp_path: Path) -> None:
    (build_zip.PACKAGE / "__pycache__").mkdir(exist_ok=True)
    (build_zip.PACKAGE / "__pycache__" / "stale.cpython-311.pyc").write_bytes(b"")
    names = zipfile.ZipFile(build_zip.build(tmp_path / "dist" / "geoseg_qgis.zip")).namelist()
    assert {n.split("/")[0] for n in names} == {"geoseg_qgis"}
    for required in ("LICENSE", "metadata.txt", "__init__.py", "plugin.py", "worker.py", "icon.svg", "events.schema.json",
                     "processing/provider.py", "processing/algorithms.py"):
        assert f"geoseg_qgis/{required}" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "/tests/" in n]


def test_metadata_declares_what_qgis_needs() -> None:
    meta = configparser.ConfigParser()
    meta.read(build_zip.PACKAGE / "metadata.txt")
    general = meta["general"]
    assert general["qgisMinimumVersion"] == "3.22"
    assert general["hasProcessingProvider"] == "yes"
    assert (build_zip.PACKAGE / general["icon"]).is_file()
    for key in ("name", "description", "about", "version", "author", "email", "repository"):
        assert general[key].strip()


def test_zip_carries_the_plugins_gpl_licence(tmp_path: Path) -> None:
    """The plugin imports QGIS (GPL-2.0-or-later), so it is GPL-2.0-or-later too; the library stays MIT."""
    archive = zipfile.ZipFile(build_zip.build(tmp_path / "geoseg_qgis.zip"))
    licence = archive.read("geoseg_qgis/LICENSE").decode("utf-8")
    assert "GNU GENERAL PUBLIC LICENSE" in licence and "Version 2, June 1991" in licence
    assert "any later version" in licence
    meta = configparser.ConfigParser()
    meta.read_string(archive.read("geoseg_qgis/metadata.txt").decode("utf-8"))
    assert meta["general"]["license"] == "GPL-2.0-or-later"
    assert "GPL, version 2 or later" in meta["general"]["about"]
    library = (build_zip.HERE.parent / "LICENSE").read_text(encoding="utf-8")
    assert library.startswith("MIT License")


def test_metadata_points_to_menus_that_exist() -> None:
    """``about`` once sent users to a 'Plugins > geoseg > Settings' menu that the plugin never made."""
    meta = configparser.ConfigParser()
    meta.read(build_zip.PACKAGE / "metadata.txt", encoding="utf-8")
    about = meta["general"]["about"]
    assert "Settings" not in about
    assert "Raster > geoseg > Segment raster" in about and "Raster > geoseg > Segment raster" in WHERE
    assert "'geoseg Python'" in about and "GEOSEG_PYTHON" in about


def test_every_plugin_module_names_its_licence() -> None:
    unmarked = [str(p.relative_to(build_zip.PACKAGE)) for p in build_zip.PACKAGE.rglob("*.py")
                if "__pycache__" not in p.parts
                and not p.read_text(encoding="utf-8").startswith("# SPDX-License-Identifier: GPL-2.0-or-later\n")]
    assert unmarked == []
