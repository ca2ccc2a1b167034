"""The installable zip: one folder named like the package, the plugin's files and nothing else."""
from __future__ import annotations

import configparser
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import build_zip  # noqa: E402


def test_zip_holds_the_plugin_folder_only(tmp_path: Path) -> None:
    (build_zip.PACKAGE / "__pycache__").mkdir(exist_ok=True)
    (build_zip.PACKAGE / "__pycache__" / "stale.cpython-311.pyc").write_bytes(b"")
    names = zipfile.ZipFile(build_zip.build(tmp_path / "dist" / "geoseg_qgis.zip")).namelist()
    assert {n.split("/")[0] for n in names} == {"geoseg_qgis"}
    for required in ("metadata.txt", "__init__.py", "plugin.py", "worker.py", "icon.svg", "events.schema.json",
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
