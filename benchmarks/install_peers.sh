#!/usr/bin/env bash
# Install the benchmark peers that cannot share the project's environment (docs/benchmarks.md).
#
#   bash benchmarks/install_peers.sh [peers|katib|hyperband|all]      (default: all)
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
# hyperband: benchmarks/.venv-katib-hyperband with the pins of Katib's hyperband suggestion image
#   (cmd/suggestion/hyperband/v1beta1/requirements.txt: numpy >= 1.25.2, scikit-learn, protobuf < 5,
#   ...), for benchmarks/multi_fidelity.py; the same Katib source tree (cmd/suggestion/hyperband is
#   added to a tree that lacks it). Part of `katib` and `all`.
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

KATIB_PATHS="pkg/apis/manager pkg/suggestion/v1beta1 cmd/suggestion/optuna cmd/suggestion/skopt cmd/suggestion/hyperband"

# The Katib source tree in benchmarks/.katib-src; a tree from before the hyperband peer gets its
# cmd/suggestion/hyperband from the same source (pkg/suggestion/v1beta1/hyperband is in every tree).
katib_source() {
  local src=benchmarks/.katib-src
  if [[ -d $src/pkg && ! -d $src/cmd/suggestion/hyperband ]]; then
    if [[ -n ${KATIB_SRC:-} ]]; then
      mkdir -p "$src/cmd/suggestion" && cp -r "$KATIB_SRC"/cmd/suggestion/hyperband "$src/cmd/suggestion/"
    elif [[ -n ${KATIB_GIT_DIR:-} ]]; then
      git --git-dir="$KATIB_GIT_DIR" archive "$(cat "$src/COMMIT" 2>/dev/null || echo HEAD)" \
        cmd/suggestion/hyperband | tar -x -C "$src"
    else
      rm -rf "$src.tmp"
      git clone -q --depth 1 https://github.com/kubeflow/katib "$src.tmp"
      mkdir -p "$src/cmd/suggestion" && mv "$src.tmp"/cmd/suggestion/hyperband "$src/cmd/suggestion/"
      rm -rf "$src.tmp"
    fi
  fi
  if [[ ! -d $src/pkg ]]; then
    rm -rf "$src" && mkdir -p "$src"
    if [[ -n ${KATIB_SRC:-} ]]; then
      cp -r "$KATIB_SRC"/pkg "$KATIB_SRC"/cmd "$src"/
    elif [[ -n ${KATIB_GIT_DIR:-} ]]; then
      # shellcheck disable=SC2086
      git --git-dir="$KATIB_GIT_DIR" archive HEAD $KATIB_PATHS | tar -x -C "$src"
      git --git-dir="$KATIB_GIT_DIR" rev-parse HEAD > "$src/COMMIT"
    else
      git clone -q --depth 1 https://github.com/kubeflow/katib "$src.tmp"
      git -C "$src.tmp" rev-parse HEAD > "$src/COMMIT"
      mv "$src.tmp"/pkg "$src.tmp"/cmd "$src"/ && rm -rf "$src.tmp"
    fi
  fi
}

install_hyperband() {
  local src=benchmarks/.katib-src venv=benchmarks/.venv-katib-hyperband
  katib_source
  "$PYTHON" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -r "$src/cmd/suggestion/hyperband/v1beta1/requirements.txt"
  PYTHONPATH="$src:$src/pkg/apis/manager/v1beta1/python:$src/pkg/apis/manager/health/python" \
    "$venv/bin/python" -c "from pkg.suggestion.v1beta1.hyperband.service import HyperbandService; print('katib hyperband ok')"
}

install_katib() {
  local src=benchmarks/.katib-src venv=benchmarks/.venv-katib
  katib_source
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
  katib) install_katib; install_hyperband ;;
  hyperband) install_hyperband ;;
  all) install_peers; install_katib; install_hyperband ;;
  *) echo "usage: $0 [peers|katib|hyperband|all]" >&2; exit 2 ;;
esac
