#!/usr/bin/env bash
# Regenerate the service image's lock files (hashes for every package) from pyproject.toml:
#   requirements/service.txt  the base dependencies + the k8s extra (what `dcsa serve` and
#                             `dcsa katib-config` need; no rich, matplotlib or pip)
#   requirements/build.txt    setuptools and wheel, to build the package without build isolation
# Run on Linux x86_64 with Python 3.11 (the image's), with pip-tools installed:
#   python -m pip install pip-tools && bash scripts/lock.sh
set -euo pipefail
cd "$(dirname "$0")/.."
compile=(pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links)
"${compile[@]}" --extra k8s -o requirements/service.txt pyproject.toml
printf 'setuptools>=77\nwheel\n' > requirements/build.in
"${compile[@]}" -o requirements/build.txt requirements/build.in
