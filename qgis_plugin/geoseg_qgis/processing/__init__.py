"""The Processing provider: geoseg in the modeler, batch mode and ``qgis_process``."""
