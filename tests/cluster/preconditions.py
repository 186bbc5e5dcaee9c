"""What this machine must offer for the real single-node cluster, checked before anything starts.

Each failed precondition is one sentence naming the thing and what to change, so the tier
fails (never skips or passes) on a machine where the recipe cannot work (docs/pods.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CGROUP_V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "pids", "devices", "freezer", "cpuset")
TOOLS = ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "nsenter", "unshare", "ip",
         "iptables", "iptables-save", "iptables-restore", "podman", "conntrack")  # fmt: skip
CNI_PLUGINS = ("bridge", "host-local", "portmap", "loopback")
CNI_BIN_DIR = Path("/usr/lib/cni")


def _filesystems() -> set[str]:
    return {line.split()[-1] for line in Path("/proc/filesystems").read_text().splitlines()}


def _private_netns() -> bool:
    """Inside scripts/netns-run's namespace: its marker is set and only loopback exists."""
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    # (/sys/class/net shows the host's links: sysfs is not remounted in the namespace.)
    links = [line.split(":")[1].split("@")[0].strip() for line in out.splitlines()]
    return os.environ.get("TUNEFORGE_IN_PRIVATE_NETNS") == "1" and links == ["lo"]


def failed_preconditions() -> list[str]:
    """Every unmet precondition of the cluster tier, as actionable sentences (empty: all met)."""
    failed: list[str] = []
    if os.geteuid() != 0:
        failed.append(
            f"root is needed (containerd, the kubelet, cgroups); running as uid {os.geteuid()}"
        )
    if not _private_netns():
        failed.append(
            "the tests must run inside a private network namespace holding only loopback "
            "(`make test-cluster`, or scripts/netns-run): the cluster adds interfaces, routes "
            "and iptables rules"
        )
    hierarchies = Path("/sys/fs/cgroup")
    missing = [c for c in CGROUP_V1_CONTROLLERS if not (hierarchies / c / "tasks").exists()]
    if missing:
        failed.append(
            f"cgroup v1 hierarchies missing for {', '.join(missing)} under /sys/fs/cgroup: the "
            "v1.20 kubelet needs cgroup v1 (its cgroup v2 support is alpha); a pure cgroup-v2 "
            "machine cannot run this tier"
        )
    if "overlay" not in _filesystems():
        failed.append(
            "the overlay filesystem is not available (containerd's overlayfs snapshotter)"
        )
    failed += [
        f"`{tool}` is not on PATH: `make cluster-assets` installs it (apt-get)"
        for tool in TOOLS
        if shutil.which(tool) is None
    ]
    failed += [
        f"CNI plugin {CNI_BIN_DIR / plugin} is missing: install containernetworking-plugins"
        for plugin in CNI_PLUGINS
        if not (CNI_BIN_DIR / plugin).is_file()
    ]
    return failed
