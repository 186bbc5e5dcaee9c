#!/usr/bin/env bash
# Builds the local base image the three TuneForge images are built on when no registry is
# reachable: a Debian bookworm root filesystem from debootstrap (minbase) with Python 3.11,
# venv, ca-certificates, wget, bash and tini, imported into podman's storage. It trusts the
# extra certificate authorities this machine trusts (/usr/local/share/ca-certificates: pip and
# uv reach PyPI through the same TLS path as the host), and tells pip and uv to use that
# bundle (/etc/pip.conf, /etc/xdg/uv/uv.toml `native-tls`).
#
# Usage: scripts/images/base.sh     prints the image reference (builds it on a cache miss)
# The root filesystem tarball is cached under ${TUNEFORGE_CACHE:-~/.cache/tuneforge}/images/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
TF_LOG_TAG=base-image
# shellcheck source=lib.sh
. "$here/lib.sh"
require_root
ensure_debs debootstrap podman buildah runc

mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
mirror="${TUNEFORGE_DEBIAN_MIRROR:-${mirror:-http://deb.debian.org/debian}}"
key=$(cat "$0" "$here/lib.sh" | sha256sum | cut -c1-16)
ref="localhost/tuneforge-base:$key"
cache="$tf_cache_root/images/base-$key"
if podman image exists "$ref"; then echo "$ref"; exit 0; fi

mkdir -p "$tf_cache_root/images"
exec 9>"$tf_cache_root/images/.base.lock"
flock 9
if podman image exists "$ref"; then echo "$ref"; exit 0; fi
if [ ! -f "$cache/rootfs.tar" ]; then
  log "cache miss ($key): debootstrap bookworm from $mirror (~1 minute)"
  work=$(mktemp -d /tmp/tuneforge-base.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  if ! debootstrap --variant=minbase \
      --include=python3,python3-venv,python-is-python3,ca-certificates,wget,tini \
      bookworm "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -20 "$work/debootstrap.log" >&2; log "debootstrap failed"; exit 1
  fi
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$work/root/usr/local/share/ca-certificates/"
    chroot "$work/root" update-ca-certificates >/dev/null 2>&1
  fi
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$work/root/etc/pip.conf"
  mkdir -p "$work/root/etc/xdg/uv"
  printf 'native-tls = true\n' >"$work/root/etc/xdg/uv/uv.toml"
  chroot "$work/root" apt-get clean
  rm -rf "$work/root/var/lib/apt/lists/"* "$work/root/var/cache/apt/"*.bin
  mkdir -p "$cache.tmp"
  tar -C "$work/root" --numeric-owner -cf "$cache.tmp/rootfs.tar" .
  rm -rf "$cache"; mv "$cache.tmp" "$cache"
fi
log "importing $ref"
podman import --quiet --change 'CMD ["/bin/bash"]' "$cache/rootfs.tar" "$ref" >/dev/null
echo "$ref"
