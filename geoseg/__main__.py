"""``python -m geoseg`` is the ``geoseg`` command (the QGIS plugin's worker runs it this way)."""
from geoseg.cli import main

main()
