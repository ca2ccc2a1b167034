#!/usr/bin/env bash
# Install a headless QGIS and the plugin-test venv (.venv-qgis). Idempotent: each step is skipped when done.
#
# Why a separate venv: Debian's QGIS Python bindings live in the system Python (3.11) with their own
# GDAL/PROJ/numpy; pip cannot install into it, so tests run in a --system-site-packages venv on
# /usr/bin/python3 that adds only pytest, pytest-qgis and jsonschema. geoseg itself runs in its own venv
# (the worker).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! /usr/bin/python3 -c "import qgis.core" 2>/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3-qgis python3-venv >/dev/null
fi

if [ ! -x .venv-qgis/bin/python ]; then
    /usr/bin/python3 -m venv --system-site-packages .venv-qgis
fi

# jsonschema: the plugin tests check geoseg's JSON events against geoseg_qgis/events.schema.json
if ! .venv-qgis/bin/python -c "import pytest, pytest_qgis, jsonschema" 2>/dev/null; then
    .venv-qgis/bin/python -m pip install -q --disable-pip-version-check pytest pytest-qgis pytest-timeout jsonschema
fi

QT_QPA_PLATFORM=offscreen .venv-qgis/bin/python -c \
    "from qgis.core import Qgis; print('QGIS', Qgis.QGIS_VERSION, 'ready in .venv-qgis')"
