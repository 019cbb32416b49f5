#!/usr/bin/env bash
# Create .venv/ with PyTorch 2.13.0 and sb3-distill (editable) with all its extras.
# Safe to run again: it only installs what is missing.
#
# torch is installed first, pinned, so that the extras' dependencies find it and do not pull another build.
# From the public PyPI index, torch==2.13.0 on Linux x86_64 is the CUDA build: a download of several GB (the
# nvidia-* CUDA libraries), which also runs on a machine without a GPU. For the CPU-only build (a few hundred MB),
# point pip at PyTorch's CPU index:
#     TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/setup.sh
# TORCH_INDEX_URL is passed to pip as --index-url for the torch step only, and only when it is set. It changes
# nothing once a torch 2.13.0 is in .venv/: delete .venv/ first to switch builds.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet torch==2.13.0 ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
.venv/bin/python -m pip install --quiet -e ".[all]"
