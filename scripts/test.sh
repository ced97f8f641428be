#!/usr/bin/env bash
# The project's test command (the README's second command; .ci/run calls it).
# On a fresh machine it creates .venv, installs the package with every extra the tests need, runs
# each scripts/install/*.sh (tools started by the tests: helm, Prometheus, kube-apiserver, ...),
# then lint, formatting, strict typing, the import contracts, the generated-code drift check,
# Dockerfile lint and the whole pytest suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install -q --upgrade pip
# torch is pinned to 2.13.0 (the CPU wheel on these machines) by the trial extra
python -m pip install -q -e '.[dev,trial,k8s]'
for script in scripts/install/*.sh; do
  [ -e "$script" ] || continue
  echo "== $script"
  bash "$script"
done
echo "== ruff";         ruff check . && ruff format --check .
echo "== mypy";         mypy
echo "== import contracts"; lint-imports
echo "== generated code";   python scripts/gen_proto.py --check
dockerfiles=$(git ls-files '*Dockerfile*' | grep -v '\.dockerignore$' || true)
if [ -n "$dockerfiles" ]; then
  echo "== hadolint";   hadolint $dockerfiles
fi
echo "== pytest"
python -m pytest "$@"
