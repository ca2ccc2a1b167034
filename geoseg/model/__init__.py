"""What a model is and how it is loaded: metadata and its upgraders (``meta``), the safetensors bundle
(``bundle``), the ONNX form (``onnx``), networks built from a spec (``networks``), pruning widths
(``channels``), normalisation (``normalise``), and whether a scene fits a model (``fit``).
"""
