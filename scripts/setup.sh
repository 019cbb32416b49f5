#!/usr/bin/env bash
# Create .venv/ with the CPU build of PyTorch and sb3-distill (editable) with all its extras.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# Pinned first: the CPU build. An unpinned torch with none installed pulls a CUDA build of several GB.
.venv/bin/python -m pip install --quiet torch==2.13.0
.venv/bin/python -m pip install --quiet -e ".[all]"
