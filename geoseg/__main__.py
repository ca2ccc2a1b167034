"""``python -m geoseg`` is the ``geoseg`` command (the QGIS plugin's worker runs it this way).

Signals are handled before the CLI's imports (a second or two): a SIGTERM during start-up also ends with
one line and exit code 143, not a silent kill or a traceback from inside an import.
"""
from geoseg.interrupts import exit_interrupted, raise_on_signals

raise_on_signals()
try:
    from geoseg.cli import main
except KeyboardInterrupt as err:
    exit_interrupted(err)

main()
