# Two commands matter (see README.md):
#   make demo   set everything up, then run the main job
#   make test   set everything up, then run every test
PY      := .venv/bin/python
STAMP   := .venv/.installed

.PHONY: setup demo test check clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml codecs/python/pyproject.toml package.json package-lock.json
	bash tools/setup.sh
	touch $(STAMP)

demo: setup
	.venv/bin/vistelse demo

check: setup
	.venv/bin/vistelse selfcheck

test: setup
	$(PY) -m pytest

clean:
	rm -rf .venv node_modules
