"""Build ``dist/geoseg_qgis.zip`` for Plugins > Install from ZIP (``make plugin-zip``).

The zip holds one top-level folder named like the plugin package, as QGIS requires; caches, tests and
anything else that is not the plugin stay out. The plugin's licence (GPL-2.0-or-later, it imports QGIS) is
``geoseg_qgis/LICENSE`` and travels with the folder; the repository's root LICENSE is the library's (MIT).
"""
from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = HERE / "geoseg_qgis"
LICENSE = PACKAGE / "LICENSE"
SKIP_DIRS = {"__pycache__"}
SKIP_SUFFIXES = {".pyc", ".pyo"}


def plugin_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*") if p.is_file() and not SKIP_DIRS & set(p.parts)
                  and p.suffix not in SKIP_SUFFIXES)


def build(dest: Path) -> Path:
    """Write the zip to ``dest`` (replacing it) and return its path; refused without the licence file."""
    if not LICENSE.is_file():
        raise FileNotFoundError(f"{LICENSE}: the plugin's licence is missing; a plugin zip must carry it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in plugin_files():
            archive.write(path, Path(PACKAGE.name) / path.relative_to(PACKAGE))
    tmp.replace(dest)
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-o", "--output", type=Path, default=HERE.parent / "dist" / "geoseg_qgis.zip")
    print(build(parser.parse_args().output))


if __name__ == "__main__":
    main()
