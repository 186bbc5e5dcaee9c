#!/usr/bin/env bash
# Builds the node binaries of the real single-node test cluster (kubelet, kube-scheduler,
# kube-proxy v1.20.2) from Debian's `kubernetes` source package, with the same fixes as
# scripts/build-kube-assets.sh (GOPATH mode, Debian's reflect2, CGO_ENABLED=0, version
# ldflags; the kubelet needs no generated openapi), and caches them like that script does.
# ../shared/SERVICES.md, "A real kubelet, containers and pods", holds the measured recipe.
#
# Usage: scripts/cluster/build-node-assets.sh     prints the folder (builds on a cache miss,
#        ~5 minutes on 2 cores). TUNEFORGE_NODE_ASSETS, when set and complete, is used as is.
set -euo pipefail
binaries=(kubelet kube-scheduler kube-proxy)
complete() { local b; for b in "${binaries[@]}"; do [ -x "$1/$b" ] || return 1; done; }
if [ -n "${TUNEFORGE_NODE_ASSETS:-}" ] && complete "$TUNEFORGE_NODE_ASSETS"; then
  echo "$TUNEFORGE_NODE_ASSETS"; exit 0
fi

here="$(cd "$(dirname "$0")" && pwd)"
TF_LOG_TAG=node-assets
# shellcheck source=../images/lib.sh
. "$here/../images/lib.sh"
ensure_debs golang-go dpkg-dev golang-github-modern-go-reflect2-dev
if ! apt-cache showsrc kubernetes >/dev/null 2>&1 || [ -z "$(apt-cache showsrc kubernetes 2>/dev/null)" ]; then
  log "no deb-src entry for the kubernetes source package: run scripts/build-kube-assets.sh first (it adds one)"
  exit 1
fi

src_version=$(apt-cache showsrc kubernetes 2>/dev/null | awk '/^Version:/{print $2; exit}')
go_version=$(go version | awk '{print $3}')
script_hash=$(sha256sum "$0" | cut -c1-12)
key="k8s-node-${src_version}-${go_version}-${script_hash}"
cache_root="$tf_cache_root/node-assets"
dest="$cache_root/$key"
if complete "$dest"; then echo "$dest"; exit 0; fi

mkdir -p "$cache_root"
exec 9>"$cache_root/.build.lock"
flock 9
if complete "$dest"; then echo "$dest"; exit 0; fi

log "cache miss ($key): building ${binaries[*]} (~5 minutes)"
work=$(mktemp -d /tmp/tuneforge-node-build.XXXXXX)
trap 'rc=$?; if [ $rc -eq 0 ]; then rm -rf "$work"; else log "failed (rc=$rc); build tree kept in $work"; fi' EXIT
cd "$work"
apt-get source --download-only kubernetes >/dev/null 2>&1
dpkg-source -x "$(ls kubernetes_*.dsc | head -1)" src >/dev/null
export GOPATH="$work/gopath" GO111MODULE=off CGO_ENABLED=0 GOFLAGS="" GOCACHE="$work/gocache"
mkdir -p "$GOPATH/src/k8s.io"
ln -s "$work/src" "$GOPATH/src/k8s.io/kubernetes"
cd "$GOPATH/src/k8s.io/kubernetes"
# reflect2 v1.0.1 segfaults under Go >= 1.18.
r2=vendor/github.com/modern-go/reflect2
rm -f "$r2"/*.go "$r2"/*.s
cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go "$r2"/
cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.s "$r2"/ 2>/dev/null || true
vendored=k8s.io/kubernetes/vendor/k8s.io
ldflags="-s -w"
for pkg in client-go/pkg/version component-base/version; do
  ldflags+=" -X ${vendored}/${pkg}.gitVersion=v1.20.2 -X ${vendored}/${pkg}.gitMajor=1"
  ldflags+=" -X ${vendored}/${pkg}.gitMinor=20 -X ${vendored}/${pkg}.gitTreeState=clean"
done
mkdir -p "$work/out"
for cmd in "${binaries[@]}"; do
  log "building $cmd"
  go build -tags selinux,notest -ldflags "$ldflags" -o "$work/out/$cmd" "./cmd/$cmd" >&2
  reported=$("$work/out/$cmd" --version)
  if [ "$reported" != "Kubernetes v1.20.2" ]; then
    log "$cmd reports '$reported', expected 'Kubernetes v1.20.2' (version ldflags wrong)"; exit 1
  fi
done
rm -rf "$dest.tmp"; mv "$work/out" "$dest.tmp"; mv "$dest.tmp" "$dest"
log "built into $dest"
echo "$dest"
