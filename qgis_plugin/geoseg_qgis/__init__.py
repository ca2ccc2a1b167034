# SPDX-License-Identifier: GPL-2.0-or-later
"""geoseg for QGIS: segment a raster layer with geoseg running in its own Python environment."""


def classFactory(iface):  # noqa: N802 - the name QGIS looks for
    from .plugin import GeosegPlugin

    return GeosegPlugin(iface)
