# geoseg: the two set-up commands are `make demo` and `make test` (each installs what it needs first).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
QGIS_VENV ?= .venv-qgis
DEMO_OUT ?= demo_out

.PHONY: install demo test test-core test-plugin bench plugin-zip desktop-check clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# torch and torchvision as a pair (other pairs break segmentation-models-pytorch's torchvision ops)
	$(PY) -m pip install torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -e '.[dev]'

install: $(PY)

demo: $(PY)
	$(PY) scripts/demo.py --out $(DEMO_OUT)

test: test-core test-plugin

test-core: $(PY)
	$(PY) -m pytest tests

# Plugin tests run inside a real headless QGIS (Debian's python3-qgis) from .venv-qgis, which
# .ci/install_qgis.sh sets up; without it they run from .venv and the QGIS ones skip, saying how to install.
QGIS_PY = $(if $(wildcard $(QGIS_VENV)/bin/python),$(QGIS_VENV)/bin/python,$(PY))
test-plugin: $(PY)
	QT_QPA_PLATFORM=offscreen GEOSEG_PYTHON=$(abspath $(PY)) $(QGIS_PY) -m pytest qgis_plugin/tests

plugin-zip:
	$(PYTHON) qgis_plugin/build_zip.py

# By hand before a plugin release: real QGIS desktop on Xvfb, real clicks, screenshots in docs/desktop/
# (needs qgis, xvfb, xdotool, imagemagick).
desktop-check: $(PY)
	GEOSEG_PYTHON=$(abspath $(PY)) $(PYTHON) qgis_plugin/desktop_check.py

bench: $(PY)
	$(PY) benchmarks/bench_memory.py
	$(PY) benchmarks/bench_vectorize.py

clean:
	rm -rf $(DEMO_OUT) .pytest_cache build dist *.egg-info
