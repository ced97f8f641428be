#!/usr/bin/env bash
# Install the benchmark peers that cannot share the project's environment (docs/benchmarks.md).
#
#   bash benchmarks/install_peers.sh [peers|katib|all]      (default: all)
#
# peers: benchmarks/.venv-peers with HEBO 0.3.6 and BoTorch. HEBO's own pins (old numpy, pandas,
#   torch) do not install on Python 3.11, so it goes in with --no-deps and then the libraries it
#   imports, at versions that work (seen 2026-11-29). grpcio/protobuf match the project's, because
#   benchmarks/peer_service.py serves the peers with the project's generated stubs.
# katib: benchmarks/.venv-katib with the pins of Katib's Optuna suggestion image
#   (cmd/suggestion/optuna/v1beta1/requirements.txt: optuna 3.3.0, protobuf < 5),
#   benchmarks/.venv-katib-skopt with those of its skopt image (cmd/suggestion/skopt/v1beta1:
#   numpy 1.23.5, scikit-learn <= 1.3.0, scikit-optimize, protobuf < 5) and a Katib source
#   tree in benchmarks/.katib-src, from $KATIB_SRC (a checkout), $KATIB_GIT_DIR (a clone, bare or
#   not: its HEAD is exported) or a shallow clone of github.com/kubeflow/katib.
# Both run with the interpreter $PYTHON (default: python3.11, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
GRPC_PINS="grpcio==1.85.1 protobuf==7.36.2"

install_peers() {
  local venv=benchmarks/.venv-peers
  "$PYTHON" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q --no-deps hebo==0.3.6
  "$venv/bin/pip" install -q torch==2.13.0 pandas pymoo gpytorch scikit-learn disjoint-set \
    catboost numpy scipy $GRPC_PINS
  "$venv/bin/python" -c "from hebo.optimizers.hebo import HEBO; print('hebo ok')"
  if "$venv/bin/pip" install -q botorch; then
    "$venv/bin/python" -c "import botorch; print('botorch', botorch.__version__, 'ok')"
  else
    echo "botorch did not install: the botorch arm is unavailable" >&2
  fi
}

install_katib() {
  local src=benchmarks/.katib-src venv=benchmarks/.venv-katib
  if [[ ! -d $src/pkg ]]; then
    rm -rf "$src" && mkdir -p "$src"
    if [[ -n ${KATIB_SRC:-} ]]; then
      cp -r "$KATIB_SRC"/pkg "$KATIB_SRC"/cmd "$src"/
    elif [[ -n ${KATIB_GIT_DIR:-} ]]; then
      git --git-dir="$KATIB_GIT_DIR" archive HEAD pkg/apis/manager pkg/suggestion/v1beta1 \
        cmd/suggestion/optuna cmd/suggestion/skopt | tar -x -C "$src"
      git --git-dir="$KATIB_GIT_DIR" rev-parse HEAD > "$src/COMMIT"
    else
      git clone -q --depth 1 https://github.com/kubeflow/katib "$src.tmp"
      git -C "$src.tmp" rev-parse HEAD > "$src/COMMIT"
      mv "$src.tmp"/pkg "$src.tmp"/cmd "$src"/ && rm -rf "$src.tmp"
    fi
  fi
  "$PYTHON" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -r "$src/cmd/suggestion/optuna/v1beta1/requirements.txt"
  PYTHONPATH="$src:$src/pkg/apis/manager/v1beta1/python:$src/pkg/apis/manager/health/python" \
    "$venv/bin/python" -c "from pkg.suggestion.v1beta1.optuna.service import OptunaService; print('katib optuna ok')"
  venv=benchmarks/.venv-katib-skopt
  "$PYTHON" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -r "$src/cmd/suggestion/skopt/v1beta1/requirements.txt"
  PYTHONPATH="$src:$src/pkg/apis/manager/v1beta1/python:$src/pkg/apis/manager/health/python" \
    "$venv/bin/python" -c "from pkg.suggestion.v1beta1.skopt.service import SkoptService; print('katib skopt ok')"
}

case $what in
  peers) install_peers ;;
  katib) install_katib ;;
  all) install_peers; install_katib ;;
  *) echo "usage: $0 [peers|katib|all]" >&2; exit 2 ;;
esac
