# SPDX-License-Identifier: GPL-2.0-or-later
"""The Processing provider: geoseg in the modeler, batch mode and ``qgis_process``."""
