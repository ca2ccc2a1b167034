"""Scene -> tiles -> model -> blended class map: the settings (``config``), every window iterator (``tiling``),
the one read path from scene to model input (``source``), the threads that overlap reading, the model and
writing (``stages``), blending (``stitch``), device and precision (``device``), where the network runs
(``backends``) and the orchestration (``predictor``).
"""
