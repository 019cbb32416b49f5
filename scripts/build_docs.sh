#!/usr/bin/env bash
# Build the Sphinx site into docs/_build/html, offline, with warnings as errors.
# Needs the docs extra: pip install -e ".[docs]" (scripts/setup.sh installs it with ".[all]").
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m sphinx -W --keep-going -b html docs docs/_build/html "$@"
