# Shared helpers for scripts/images/*.sh and scripts/cluster/*.sh (sourced, not run).
# Everything here runs outside any private network namespace: apt-get and pip need the
# registries. See docs/pods.md.

tf_cache_root="${TUNEFORGE_CACHE:-$HOME/.cache/tuneforge}"

log() { echo "[${TF_LOG_TAG:-images}] $*" >&2; }

# ensure_debs PKG...: installs the Debian packages that are missing (apt-get update first).
ensure_debs() {
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
}

# require_root: image builds and the cluster need root in the initial user namespace.
require_root() {
  if [ "$(id -u)" != 0 ]; then
    log "must run as root (podman/buildah storage, debootstrap, containerd); you are uid $(id -u)"
    exit 1
  fi
}

# The podman/buildah limits this machine allows: it lacks CAP_SYS_RESOURCE, so the default
# hard nofile limit (above the current one) cannot be set ("error setting rlimit type 7").
TF_ULIMITS=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096)

# hash_files FILE_OR_DIR...: one sha256 over the paths and contents of every regular file
# (sorted, __pycache__ and *.pyc left out), 16 hex digits.
hash_files() {
  find "$@" -type f -not -path '*/__pycache__/*' -not -name '*.pyc' -not -path '*.egg-info/*' \
    -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
}
