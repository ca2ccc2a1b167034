"""Rasters and files in and out: open and read windows (``rasters``), write class-map COGs (``cog``), atomic
outputs that never clobber (``outputs``), the class legend (``legend``), QGIS styles (``qml``), previews.

The lowest layer: it knows nothing of models or tiling.
"""
