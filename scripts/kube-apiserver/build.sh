#!/usr/bin/env bash
# Builds a real kube-apiserver (v1.20.2) and etcd (3.4.23) from Debian bookworm packages only,
# into $W/bin, for the deployment tests (tests/deploy). Debian source package `kubernetes` built
# with Debian's Go 1.19; no system changes (debs are unpacked with dpkg -x, apt state under $W).
# Cold: about 4 minutes and 2.2 GB of disk (1.1 GB is Go build cache). Skips the build when
# $W/bin already holds both binaries (pass FORCE=1 to rebuild).
# Usage: W=/path/to/cache bash build.sh   (default W=$HOME/.cache/dcsa-tools/kube-apiserver-1.20)
set -euo pipefail
W=${W:-$HOME/.cache/dcsa-tools/kube-apiserver-1.20}
if [[ -z "${FORCE:-}" && -x $W/bin/kube-apiserver && -x $W/bin/etcd ]]; then
  echo "kube-apiserver already built in $W/bin"; exit 0
fi
rm -rf "$W"; mkdir -p "$W"/apt/lists/partial "$W"/apt/parts "$W"/debs "$W"/root "$W"/src "$W"/bin
sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > "$W"/apt/parts/src.sources
APTO=(-o Dir::Etc::sourcelist=/dev/null -o "Dir::Etc::sourceparts=$W/apt/parts"
      -o "Dir::State::lists=$W/apt/lists" -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=)
apt-get "${APTO[@]}" -qq update
(cd "$W"/src && apt-get "${APTO[@]}" -qq source --download-only kubernetes 2>/dev/null)
(cd "$W"/debs && apt-get -qq download golang-1.19-go golang-1.19-src etcd-server rsync libpopt0 \
   golang-github-modern-go-reflect2-dev 2>/dev/null)
for d in "$W"/debs/*.deb; do dpkg -x "$d" "$W"/root; done
mkdir -p "$W"/gopath/src/k8s.io && tar xzf "$W"/src/kubernetes_*.orig.tar.gz -C "$W"/src
ln -s "$W"/src/kubernetes-1.20.2 "$W"/gopath/src/k8s.io/kubernetes
# reflect2 v1.0.1 (vendored) crashes under Go >= 1.18; swap in Debian's v1.0.2
rm -rf "$W"/src/kubernetes-1.20.2/vendor/github.com/modern-go/reflect2
cp -r "$W"/root/usr/share/gocode/src/github.com/modern-go/reflect2 \
  "$W"/src/kubernetes-1.20.2/vendor/github.com/modern-go/
rm -f "$W"/src/kubernetes-1.20.2/vendor/github.com/modern-go/reflect2/go.mod
export GOROOT=$W/root/usr/lib/go-1.19 GOCACHE=$W/gocache GOPROXY=off CGO_ENABLED=0 GOFLAGS=
export PATH=$GOROOT/bin:$W/root/usr/bin:$PATH
export LD_LIBRARY_PATH=$W/root/lib/x86_64-linux-gnu:$W/root/usr/lib/x86_64-linux-gnu
cd "$W"/gopath/src/k8s.io/kubernetes
make gen_openapi >/dev/null          # pkg/generated/openapi is not shipped in the tarball
V=k8s.io/kubernetes/vendor/k8s.io
LDFLAGS="-s -w"
for pkg in component-base/version client-go/pkg/version; do
  LDFLAGS+=" -X $V/$pkg.gitVersion=v1.20.2 -X $V/$pkg.gitMajor=1 -X $V/$pkg.gitMinor=20"
done
LDFLAGS+=" -X $V/component-base/version.gitTreeState=clean"
GOPATH=$W/gopath GO111MODULE=off go build -ldflags "$LDFLAGS" \
  -o "$W"/bin/kube-apiserver.tmp k8s.io/kubernetes/cmd/kube-apiserver
cp "$W"/root/usr/bin/etcd "$W"/bin/
mv "$W"/bin/kube-apiserver.tmp "$W"/bin/kube-apiserver
"$W"/bin/kube-apiserver --version; "$W"/bin/etcd --version | head -1
