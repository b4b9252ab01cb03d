#!/usr/bin/env bash
# Snakemake runs this inside the freshly created "report" environment, from the working directory (--directory,
# by default the repository root). --no-deps: report.yaml already pins what this rule group needs, and pyproject.toml's
# full dependency list must not be pulled into every group's environment.
set -euo pipefail
repo="${MEDSYNTH_REPO:-$PWD}"
if ! grep -q '^name = "medsynth"' "$repo/pyproject.toml" 2>/dev/null; then
  echo "medsynth: $repo is not the medsynth repository: run snakemake from its root or set MEDSYNTH_REPO" >&2
  exit 1
fi
python -m pip install --no-deps -e "$repo"
