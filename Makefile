SHELL := /bin/bash
PACKAGE := sb3_distill

.PHONY: test test-all lint type format check-codestyle docs

# The fast suite: what CI runs
test:
	python -m pytest -m "not slow" -v

# Including the slow checks
test-all:
	python -m pytest -v

lint:
	ruff check $(PACKAGE) tests setup.py tuning benchmarks docs/conf.py docs/generate_results.py

type:
	mypy $(PACKAGE)

format:
	ruff format $(PACKAGE) tests setup.py tuning benchmarks
	ruff check --fix $(PACKAGE) tests setup.py tuning benchmarks

check-codestyle:
	ruff format --check $(PACKAGE) tests setup.py tuning benchmarks

# The Sphinx site in docs/_build/html (offline, warnings as errors)
docs:
	bash scripts/build_docs.sh
