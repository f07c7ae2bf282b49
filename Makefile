# os-xenapi developer entry points. Every target sets up .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo lint bench clean rpm deb dist

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	sh scripts/install-system-deps.sh
	$(PY) -m pytest -q -p no:cacheprovider tests

demo: $(STAMP)
	$(VENV)/bin/os-xenapi demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench tools

bench: $(STAMP)
	$(PY) bench/run.py

# The dom0 plugins' packages, in $(PKG_OUT) (tools/build_dom0_package.py).
PKG_OUT ?= build/packages
PKG_WORK ?= build/dom0-packages

rpm:
	$(PYTHON) tools/build_dom0_package.py rpm --out $(PKG_OUT) --work $(PKG_WORK)

deb:
	$(PYTHON) tools/build_dom0_package.py deb --out $(PKG_OUT) --work $(PKG_WORK)

# The sdist and the wheel, in dist/; the wheel carries the dom0 plugins (see README.md).
dist: $(STAMP)
	$(PY) -m build --outdir dist .

clean:
	rm -rf $(VENV) build dist *.egg-info src/*.egg-info
