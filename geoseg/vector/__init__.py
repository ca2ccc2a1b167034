"""Class map -> polygons: blocks polygonized in worker processes (``workers``, ``polygonize``, ``flat``),
seams merged exactly, sieve and areas, and the output formats (``formats``); ``vectorize`` orchestrates.
"""
