#!/usr/bin/env bash
# What the trial image tests need beyond `pip install -e '.[dev,trial]'`, installed into the
# active virtual environment. Idempotent: each step checks first, so a second run does nothing.
#   - torch 2.13.0 and mnist1d (normally already there through the trial extra);
#   - tensorboard, only to read the event files the trial writes the way Katib's
#     TensorFlowEvent collector reads them (the trial itself writes them without it).
set -euo pipefail

if [ -z "${VIRTUAL_ENV:-}" ]; then
  echo "scripts/install/trial.sh: activate the project's virtual environment first" >&2
  exit 1
fi

have() { python -c "import $1" >/dev/null 2>&1; }

# Never an unpinned torch: that pulls the CUDA build and gigabytes of libraries.
if ! python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
  python -m pip install -q "torch==2.13.0"
fi
have mnist1d || python -m pip install -q "mnist1d==0.0.2.post1"
have tensorboard || python -m pip install -q "tensorboard==2.21.0"

python - <<'PY'
import mnist1d, tensorboard, torch
print(f"trial: torch {torch.__version__}, mnist1d, tensorboard {tensorboard.__version__}")
PY
