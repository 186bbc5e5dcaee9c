#!/usr/bin/env bash
# Installs the Debian packages the real test node runs on (outside any private network
# namespace): containerd, runc, the CNI plugins, iptables, conntrack, podman/buildah (image
# archives) and busybox-static (the pause image).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
TF_LOG_TAG=node-deps
# shellcheck source=../images/lib.sh
. "$here/../images/lib.sh"
require_root
ensure_debs containerd runc containernetworking-plugins iptables conntrack podman buildah \
  busybox-static util-linux iproute2
