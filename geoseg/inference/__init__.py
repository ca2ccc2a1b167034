"""Scene -> tiles -> model -> blended class map: the tile grid (``tiling``), the threads that overlap reading,
the model and writing (``stages``), blending (``stitch``), device and precision (``device``), where the
network runs (``backends``) and the orchestration (``predictor``).
"""
