# SPDX-License-Identifier: GPL-2.0-or-later
"""Which bands of a scene are red, green and blue, from the names geoseg knows (pure Python).

QGIS draws a multiband raster with bands 1, 2, 3 as red, green, blue; a Landsat or NAIP file stored as
blue, green, red, NIR then shows blue as red. The band names come from the file's band descriptions or,
where it has none, from the model's bands matched to the scene's (``geoseg info SCENE --json --model M``).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

COLOURS = ("red", "green", "blue")
#: Other names that mean a colour band (lower case).
ALIASES = {"r": "red", "g": "green", "b": "blue"}


def band_names(fit: Mapping[str, Any] | None, model_bands: Sequence[str]) -> dict[int, str]:
    """1-based scene band index -> lower-case name: the file's descriptions, else the model's bands."""
    names: dict[int, str] = {}
    fit = fit or {}
    for index, name in enumerate(fit.get("band_names") or [], start=1):
        if name:
            names[index] = str(name).strip().lower()
    indexes = (fit.get("fits") or {}).get("band_indexes") or []
    for name, index in zip(model_bands, indexes):
        names.setdefault(int(index), str(name).strip().lower())
    return names


def natural_colour(names: Mapping[int, str]) -> tuple[int, int, int] | None:
    """The (red, green, blue) band indexes, or ``None`` unless all three are named and distinct."""
    by_colour: dict[str, int] = {}
    for index, name in sorted(names.items()):
        colour = ALIASES.get(name, name)
        if colour in COLOURS:
            by_colour.setdefault(colour, index)
    if len(by_colour) < 3:
        return None
    red, green, blue = (by_colour[c] for c in COLOURS)
    return red, green, blue
