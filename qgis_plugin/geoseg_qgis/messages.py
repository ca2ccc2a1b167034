# SPDX-License-Identifier: GPL-2.0-or-later
"""Messages in QGIS's message bar: one short line, the whole text behind a *Details…* button.

A message bar item shows about one line (QGIS caps its text box's height), so a long error or summary was
cut after a line or two. Every message here is a headline that fits, and the full text, where there is
more, opens in a window that can be read and copied.
"""
from __future__ import annotations

import html
from typing import Any

from qgis.gui import QgsMessageBarItem, QgsMessageViewer
from qgis.PyQt.QtWidgets import QPushButton

TITLE = "geoseg"
#: Characters that fit on the message bar's line next to the title and buttons at common window widths.
HEADLINE_CHARS = 110


def headline(text: str, limit: int = HEADLINE_CHARS) -> str:
    """The first line of ``text``, cut at a word boundary with an ellipsis when longer than ``limit``."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    if len(first) <= limit:
        return first
    cut = first[:limit - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip(" ,;:(") + "…"


def push(bar: Any, level: Any, text: str, details: str | None = None, duration: int = 0) -> QgsMessageBarItem:
    """Show ``text`` on the bar as one line; ``details`` (or the whole ``text`` if cut) behind a button.

    The item carries ``text`` and ``details`` as Qt properties ``geoseg_text``/``geoseg_details``, so that
    tests (and other code) can read what was said without parsing the bar's HTML.
    """
    short = headline(text)
    more = details or (text if short != text.strip() else None)
    item = QgsMessageBarItem(TITLE, html.escape(short), level, duration)
    if more:
        button = QPushButton("Details…", item)  # owned by the item: a parentless one is freed by Python
        button.clicked.connect(lambda: show_details(bar, more))
        item.setWidget(button)
    item.setProperty("geoseg_text", text)
    item.setProperty("geoseg_details", more)
    bar.pushItem(item)
    return item


def show_details(parent: Any, text: str) -> QgsMessageViewer:
    """The full message in a window of its own (not modal: the user may keep it open beside the map)."""
    viewer = QgsMessageViewer(parent.window() if parent is not None else None)
    viewer.setTitle(TITLE)
    viewer.setMessageAsPlainText(text)
    viewer.showMessage(False)
    return viewer


def pushed(bar: Any, level: Any | None = None) -> list[tuple[str, str | None]]:
    """``(text, details)`` of the geoseg items on ``bar`` (of one ``level`` when given), oldest first."""
    return [(str(item.property("geoseg_text")), item.property("geoseg_details")) for item in bar.items()
            if item.property("geoseg_text") is not None and (level is None or item.level() == level)]
