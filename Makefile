# geoseg: the two set-up commands are `make demo` and `make test` (each installs what it needs first).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
QGIS_VENV ?= .venv-qgis
DEMO_OUT ?= demo_out

.PHONY: install demo test test-core test-plugin bench plugin-zip clean

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

# Plugin tests run inside a real headless QGIS (Debian's python3-qgis); .ci/install_qgis.sh sets it up.
test-plugin: $(PY)
	@if [ -d qgis_plugin/tests ]; then \
	  if [ -x $(QGIS_VENV)/bin/python ]; then \
	    QT_QPA_PLATFORM=offscreen GEOSEG_PYTHON=$(abspath $(PY)) $(QGIS_VENV)/bin/python -m pytest qgis_plugin/tests; \
	  else echo "plugin tests skipped: no QGIS test environment; run 'bash .ci/install_qgis.sh' to install headless QGIS"; fi; \
	fi

bench: $(PY)
	$(PY) benchmarks/bench_memory.py
	$(PY) benchmarks/bench_vectorize.py

clean:
	rm -rf $(DEMO_OUT) .pytest_cache build dist *.egg-info
