# SPDX-License-Identifier: GPL-2.0-or-later
"""geoseg for QGIS: segment a raster layer with geoseg running in its own Python environment."""
from pathlib import Path

#: The plugin's icon: toolbar action, Processing provider and each algorithm (not the generic gear).
ICON = str(Path(__file__).resolve().parent / "icon.svg")


def classFactory(iface):  # noqa: N802 - the name QGIS looks for
    from .plugin import GeosegPlugin

    return GeosegPlugin(iface)
