#!/usr/bin/env bash
# Builds envtest-style test assets (etcd, kube-apiserver, kube-controller-manager) for the
# operator's integration tests, from Debian's `kubernetes` source package (v1.20) and
# Debian's etcd-server. See ../shared/SERVICES.md §1 for why each step is here.
#
# Usage: scripts/build-kube-assets.sh            prints the assets folder (builds on a cache miss)
# The folder follows envtest's KUBEBUILDER_ASSETS convention. When KUBEBUILDER_ASSETS is set
# and holds the three binaries, it is used as is.
set -euo pipefail

if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/kube-apiserver" ] \
   && [ -x "$KUBEBUILDER_ASSETS/etcd" ]; then
  echo "$KUBEBUILDER_ASSETS"; exit 0
fi

log() { echo "[kube-assets] $*" >&2; }
export DEBIAN_FRONTEND=noninteractive
need_pkgs=(golang-go etcd-server dpkg-dev rsync make golang-github-modern-go-reflect2-dev)
missing=()
for p in "${need_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq >&2
  apt-get install -y -qq "${missing[@]}" >&2
fi

src_list=/etc/apt/sources.list.d/tuneforge-deb-src.sources
if [ ! -f "$src_list" ]; then
  cat > "$src_list" <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  apt-get update -qq >&2
fi

src_version=$(apt-cache showsrc kubernetes 2>/dev/null | awk '/^Version:/{print $2; exit}')
go_version=$(go version | awk '{print $3}')
script_hash=$(sha256sum "$0" | cut -c1-12)
key="k8s-${src_version}-${go_version}-${script_hash}"
cache_root="${TUNEFORGE_CACHE:-$HOME/.cache/tuneforge}/kube-assets"
dest="$cache_root/$key"
if [ -x "$dest/kube-apiserver" ] && [ -x "$dest/kube-controller-manager" ] && [ -x "$dest/etcd" ]; then
  echo "$dest"; exit 0
fi

# One build at a time per cache: a second caller waits for the first, then uses its result.
mkdir -p "$cache_root"
exec 9>"$cache_root/.build.lock"
flock 9
if [ -x "$dest/kube-apiserver" ] && [ -x "$dest/kube-controller-manager" ] && [ -x "$dest/etcd" ]; then
  echo "$dest"; exit 0
fi

log "cache miss ($key): building kube-apiserver and kube-controller-manager (~10 minutes)"
work=$(mktemp -d /tmp/tuneforge-kube-build.XXXXXX)
trap 'rc=$?; if [ $rc -eq 0 ]; then rm -rf "$work"; else log "failed (rc=$rc); build tree kept in $work"; fi' EXIT
cd "$work"
apt-get source --download-only kubernetes >&2
dsc=$(ls kubernetes_*.dsc | head -1)
dpkg-source -x "$dsc" src >&2
export GOPATH="$work/gopath" GO111MODULE=off CGO_ENABLED=0 GOFLAGS="" GOCACHE="$work/gocache"
mkdir -p "$GOPATH/src/k8s.io"
ln -s "$work/src" "$GOPATH/src/k8s.io/kubernetes"
cd "$GOPATH/src/k8s.io/kubernetes"
# reflect2 v1.0.1 segfaults under Go >= 1.18 on the first custom-object create.
r2=vendor/github.com/modern-go/reflect2
rm -f "$r2"/*.go "$r2"/*.s
cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go "$r2"/
cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.s "$r2"/ 2>/dev/null || true
# go-openapi's type check compares reflect.Value structs to spot "zero" data; Go >= 1.19 points
# reflect.Zero("") and the interface holding "" at the same zero buffer, so every empty string
# in a custom object was refused as "must be of type string: null" (1.20 built with Go 1.15
# only treats nil as null). Restore that behaviour.
# Custom objects are checked by kube-openapi's fork of it; patch both copies.
for typego in vendor/k8s.io/kube-openapi/pkg/validation/validate/type.go \
              vendor/github.com/go-openapi/validate/type.go; do
  sed -i 's/if data == nil || reflect.DeepEqual(reflect.Zero(reflect.TypeOf(data)), reflect.ValueOf(data)) {/if data == nil {/' "$typego"
  grep -q 'if data == nil {' "$typego" || { log "could not patch $typego"; exit 1; }
done
log "generating openapi"
make gen_openapi >&2
# GOPATH mode: vendored packages live under k8s.io/kubernetes/vendor/, so the -X paths must
# name them there (as upstream's hack/lib/version.sh does), or the binaries report v0.0.0.
vendored=k8s.io/kubernetes/vendor/k8s.io
ldflags="-s -w"
for pkg in client-go/pkg/version component-base/version; do
  ldflags+=" -X ${vendored}/${pkg}.gitVersion=v1.20.2 -X ${vendored}/${pkg}.gitMajor=1"
  ldflags+=" -X ${vendored}/${pkg}.gitMinor=20 -X ${vendored}/${pkg}.gitTreeState=clean"
done
mkdir -p "$work/out"
for cmd in kube-apiserver kube-controller-manager; do
  log "building $cmd"
  go build -tags selinux,notest -ldflags "$ldflags" -o "$work/out/$cmd" "./cmd/$cmd" >&2
  reported=$("$work/out/$cmd" --version)
  if [ "$reported" != "Kubernetes v1.20.2" ]; then
    log "$cmd reports '$reported', expected 'Kubernetes v1.20.2' (version ldflags wrong)"; exit 1
  fi
done
cp "$(command -v etcd || echo /usr/bin/etcd)" "$work/out/etcd"
mkdir -p "$cache_root"
rm -rf "$dest.tmp"; mv "$work/out" "$dest.tmp"; mv "$dest.tmp" "$dest"
log "built into $dest"
echo "$dest"
