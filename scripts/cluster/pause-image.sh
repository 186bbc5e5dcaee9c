#!/usr/bin/env bash
# Builds the sandbox ("pause") image of the test cluster without a registry: busybox-static's
# binary in an image FROM scratch whose entry point sleeps forever, saved as a docker archive
# for `ctr images import`.
#
# Usage: scripts/cluster/pause-image.sh     prints: REFERENCE ARCHIVE
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
TF_LOG_TAG=pause-image
# shellcheck source=../images/lib.sh
. "$here/../images/lib.sh"
require_root
ensure_debs busybox-static buildah podman
key=$( (cat "$0"; sha256sum /bin/busybox) | sha256sum | cut -c1-16)
ref="localhost/tuneforge-pause:$key"
archive="$tf_cache_root/images/pause-$key.tar"
if [ ! -f "$archive" ]; then
  mkdir -p "$tf_cache_root/images"
  container=$(buildah from scratch)
  buildah copy "$container" /bin/busybox /busybox >/dev/null
  buildah config --entrypoint '["/busybox", "sleep", "infinity"]' --cmd '' "$container"
  buildah commit --quiet --rm "$container" "$ref" >/dev/null
  podman save --quiet --format docker-archive -o "$archive.tmp" "$ref"
  mv "$archive.tmp" "$archive"
  log "built $ref"
fi
echo "$ref $archive"
