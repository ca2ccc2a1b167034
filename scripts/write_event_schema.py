"""Regenerate the QGIS plugin's copy of the event protocol: ``qgis_plugin/geoseg_qgis/events.schema.json``.

The plugin never imports geoseg, so it validates what ``geoseg ... --progress json`` prints against this
schema, generated from the pydantic models in geoseg/events.py. Run it after changing an event or a run
summary; tests/test_events.py fails until the committed file matches the code. ``--check`` only compares.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the models of this checkout, whichever geoseg is installed

from geoseg.events import event_schema_text  # noqa: E402

SCHEMA_PATH = ROOT / "qgis_plugin" / "geoseg_qgis" / "events.schema.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed schema is out of date")
    args = parser.parse_args()
    text = event_schema_text()
    current = SCHEMA_PATH.read_text(encoding="utf-8") if SCHEMA_PATH.is_file() else None
    if args.check:
        if current != text:
            print(f"{SCHEMA_PATH} is out of date: run python scripts/write_event_schema.py", file=sys.stderr)
            return 1
        return 0
    if current != text:
        SCHEMA_PATH.write_text(text, encoding="utf-8")
        print(f"wrote {SCHEMA_PATH}")
    else:
        print(f"{SCHEMA_PATH} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
