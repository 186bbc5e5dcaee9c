#!/usr/bin/env bash
# Builds a registry-free stand-in for ghcr.io/astral-sh/uv:<version> (the Dockerfiles copy
# /uv from it): the uv binary from PyPI's `uv` wheel (downloaded with pip, never installed)
# in an image FROM scratch.
#
# Usage: scripts/images/uv.sh VERSION     prints the image reference
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
TF_LOG_TAG=uv-image
# shellcheck source=lib.sh
. "$here/lib.sh"
version="${1:?usage: uv.sh VERSION, the UV_VERSION of the Dockerfiles}"
ref="localhost/tuneforge-uv:$version"
if podman image exists "$ref"; then echo "$ref"; exit 0; fi

repo_root="$(cd "$here/../.." && pwd)"
python="$repo_root/.venv/bin/python"; [ -x "$python" ] || python=python3
work=$(mktemp -d /tmp/tuneforge-uv.XXXXXX)
trap 'rm -rf "$work"' EXIT
log "downloading the uv $version wheel"
"$python" -m pip download --quiet --no-deps --only-binary=:all: "uv==$version" -d "$work" >&2
"$python" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
  "$(ls "$work"/uv-*.whl)" "$work/x"
binary="$work/x/uv-$version.data/scripts/uv"
chmod +x "$binary"
reported=$("$binary" --version | awk '{print $2}')
if [ "$reported" != "$version" ]; then log "the wheel holds uv $reported, not $version"; exit 1; fi
container=$(buildah from scratch)
buildah copy "$container" "$binary" /uv >/dev/null
buildah commit --quiet --rm "$container" "$ref" >/dev/null
echo "$ref"
