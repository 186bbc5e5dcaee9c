#!/usr/bin/env bash
# Builds the three TuneForge images (docker/Dockerfile.{operator,trainer,serving}) with buildah
# on a local Debian base, without any image registry, and caches each as a `podman save`
# archive keyed by a hash of its Dockerfile, pyproject.toml, README.md, .dockerignore, the
# hashed locks (docker/requirements), the four source folders, these scripts and the base
# image. The trainer and serving images get this machine's CPU torch wheel (TORCH_BUILD=cpu:
# the build fails on a CUDA torch).
#
# Usage: scripts/images/build.sh [NAME...]     (default: operator trainer serving)
# Prints one line per image: NAME REFERENCE ARCHIVE SIZE_MB. Run it outside any private
# network namespace: apt-get and pip reach the registries during the build. With
# TUNEFORGE_IMAGES_CACHED_ONLY=1 a cache miss is an error instead of a build (tests run it so,
# inside the private network namespace). With TUNEFORGE_IMAGES_ALLOW_STALE=1 as well, a miss
# uses the newest cached archive of that image (built from other sources) and says so on
# stderr ("STALE IMAGE: ..."): for developing the cluster tier while the sources change.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo_root="$(cd "$here/../.." && pwd)"
TF_LOG_TAG=images
# shellcheck source=lib.sh
. "$here/lib.sh"
require_root
ensure_debs podman buildah runc

names=("$@")
[ ${#names[@]} -gt 0 ] || names=(operator trainer serving)
for name in "${names[@]}"; do
  [ -f "$repo_root/docker/Dockerfile.$name" ] || { log "no docker/Dockerfile.$name (operator, trainer or serving)"; exit 1; }
done

base=$("$here/base.sh")
cd "$repo_root"
sources_key=$(hash_files pyproject.toml README.md .dockerignore docker/requirements sdk operator trainer serving \
  "$here/build.sh" "$here/lib.sh")
# The wheels pip finds on this machine's disk (torch's CPU build among them).
wheels_dir=/opt/wheels
pypi_dir=/opt/pypi

# build_args NAME: fills the array `args` with the local build's arguments for that image.
build_args() {
  args=()
  case "$1" in
    operator) args=(--build-arg "BASE_IMAGE=$base") ;;
    trainer|serving)
      local uv_version uv
      uv_version=$(sed -n 's/^ARG UV_VERSION=//p' "docker/Dockerfile.$1")
      uv=$("$here/uv.sh" "$uv_version")
      args=(--build-arg "CUDA_IMAGE=$base" --build-arg "UV_IMAGE=$uv"
            --build-arg UV_PYTHON_PREFERENCE=only-system --build-arg TORCH_BUILD=cpu
            --build-arg "TORCH_INDEX_URL=file://$pypi_dir/simple"
            --build-arg "TORCH_FIND_LINKS=$wheels_dir"
            --volume "$wheels_dir:$wheels_dir:ro" --volume "$pypi_dir:$pypi_dir:ro") ;;
  esac
}

mkdir -p "$tf_cache_root/images"
for name in "${names[@]}"; do
  key=$(printf '%s %s %s' "$sources_key" "$base" "$(sha256sum "docker/Dockerfile.$name")" \
    | sha256sum | cut -c1-16)
  ref="localhost/tuneforge-$name:$key"
  archive="$tf_cache_root/images/$name-$key.tar"
  if ! podman image exists "$ref"; then
    exec 9>"$tf_cache_root/images/.$name.lock"
    flock 9
    if [ -f "$archive" ]; then
      log "$name: loading the cached $archive"
      podman load --quiet --input "$archive" >/dev/null
    elif [ "${TUNEFORGE_IMAGES_CACHED_ONLY:-0}" = 1 ] && [ "${TUNEFORGE_IMAGES_ALLOW_STALE:-0}" = 1 ] \
        && stale=$(ls -t "$tf_cache_root/images/$name"-*.tar 2>/dev/null | head -n 1) && [ -n "$stale" ]; then
      # Development only (the cluster tier, TUNEFORGE_IMAGES_ALLOW_STALE=1): the newest cached
      # archive, built from OTHER sources than these; said loudly, never silently.
      stale_key=$(basename "$stale" .tar); stale_key=${stale_key#"$name-"}
      log "STALE IMAGE: $name from $stale (sources key $stale_key; the current sources are $key)"
      ref="localhost/tuneforge-$name:$stale_key"
      archive="$stale"
      podman image exists "$ref" || podman load --quiet --input "$archive" >/dev/null
    elif [ "${TUNEFORGE_IMAGES_CACHED_ONLY:-0}" = 1 ]; then
      log "$name: no image built from these sources ($key): run \`make images\` first" \
          "(outside any private network namespace; it needs the registries)," \
          "or set TUNEFORGE_IMAGES_ALLOW_STALE=1 to use the newest cached archive (development)"
      exit 1
    elif ! podman image exists "$ref"; then
      log "$name: cache miss ($key), building (minutes)"
      started=$SECONDS
      build_args "$name"
      buildah bud --layers --network host "${TF_ULIMITS[@]}" "${args[@]}" \
        -f "docker/Dockerfile.$name" -t "$ref" . >&2
      podman save --quiet --format docker-archive -o "$archive.tmp" "$ref"
      mv "$archive.tmp" "$archive"
      log "$name: built in $((SECONDS - started)) s"
      # Older builds of this image (other source hashes) are dropped from the cache and storage.
      for old in "$tf_cache_root/images/$name"-*.tar; do
        [ "$old" = "$archive" ] || rm -f "$old"
      done
      podman images --format '{{.Repository}}:{{.Tag}}' "localhost/tuneforge-$name" \
        | { grep -vxF "$ref" || true; } | xargs -r podman rmi --force >/dev/null
    fi
    exec 9>&-
  fi
  size=$(podman image inspect --format '{{.Size}}' "$ref")
  echo "$name $ref $archive $((size / 1000000))"
done
