"""What the cluster changes on the machine, recorded before it starts and checked after it stops.

The kubelet sets kernel sysctls machine-wide (kernel.panic=10 and kernel.panic_on_oops=1 would
reboot the machine on an oops), so they are recorded and restored. Cgroups under the cluster's
own `--cgroup-root` are emptied (their processes killed by PID) and removed. Everything else
the node writes (mounts, /var/log/pods, /var/lib/kubelet, /run/netns) lives in a private mount
namespace that disappears with its last process; interfaces and iptables rules live in the
tests' private network namespace and are put back as they were.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

# Every sysctl the v1.20 kubelet (setupKernelTunables) and kube-proxy may set outside a netns.
RECORDED_SYSCTLS = (
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "net.netfilter.nf_conntrack_max",
)
CGROUP_ROOT = Path("/sys/fs/cgroup")
# Paths the node would write on the host if it were not in its own mount namespace.
HOST_PATHS = ("/var/log/pods", "/var/log/containers", "/var/lib/kubelet", "/var/lib/cni",
              "/run/netns", "/run/containerd", "/var/lib/containerd", "/opt/containerd")  # fmt: skip


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctls() -> dict[str, str]:
    """The recorded sysctls' current values (those this kernel has)."""
    return {
        name: _sysctl_path(name).read_text().strip()
        for name in RECORDED_SYSCTLS
        if _sysctl_path(name).exists()
    }


def restore_sysctls(saved: dict[str, str]) -> list[str]:
    """Write back every saved value that changed; returns the names it had to restore."""
    changed = [name for name, value in read_sysctls().items() if saved.get(name) != value]
    for name in changed:
        _sysctl_path(name).write_text(saved[name] + "\n")
    return changed


def cgroup_dirs(cgroup_name: str) -> list[Path]:
    """The cluster's cgroup folders in every hierarchy, deepest first."""
    found: list[Path] = []
    for hierarchy in CGROUP_ROOT.iterdir():
        top = hierarchy / cgroup_name
        if top.is_dir() and not top.is_symlink():
            found += [Path(d) for d, _, _ in os.walk(top)]
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def cgroup_pids(cgroup_name: str) -> set[int]:
    """Every process in the cluster's cgroups (containers, pause processes)."""
    pids: set[int] = set()
    for folder in cgroup_dirs(cgroup_name):
        with contextlib.suppress(OSError):
            pids |= {int(p) for p in (folder / "cgroup.procs").read_text().split()}
    return pids


def kill_cgroup_processes(cgroup_name: str, timeout_s: float = 20.0) -> None:
    """SIGKILL every process in the cluster's cgroups until none is left."""
    deadline = time.monotonic() + timeout_s
    while pids := cgroup_pids(cgroup_name):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes {sorted(pids)} in cgroup {cgroup_name} survive SIGKILL")
        time.sleep(0.2)


def remove_cgroups(cgroup_name: str) -> None:
    """rmdir the cluster's (empty) cgroups, deepest first."""
    for folder in cgroup_dirs(cgroup_name):
        for _ in range(50):
            try:
                folder.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.1)  # a just-killed process may take a moment to leave


def kill_mount_namespace(namespace: str, grace_s: float = 5.0, timeout_s: float = 20.0) -> None:
    """Wait for the processes in a mount namespace to exit; SIGKILL them after grace_s."""
    started = time.monotonic()
    while pids := mount_namespace_pids(namespace):
        waited = time.monotonic() - started
        if waited > timeout_s:
            raise RuntimeError(f"processes {sorted(pids)} survive in mount namespace {namespace}")
        if waited > grace_s:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def mount_namespace_pids(namespace: str) -> set[int]:
    """Processes whose mount namespace is `namespace` (e.g. 'mnt:[4026532]')."""
    pids: set[int] = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(entry / "ns" / "mnt") == namespace:
                    pids.add(int(entry.name))
    return pids


_IPTABLES = ("iptables", "ip6tables")
_TABLES = ("filter", "nat", "mangle", "raw")


def _iptables_rules(tool: str) -> str:
    """`<tool>-save` without comments, counters and tables that hold only empty built-ins."""
    out = subprocess.run([f"{tool}-save"], capture_output=True, text=True, check=True).stdout
    kept: list[str] = []
    for block in out.split("*")[1:]:
        lines = [line for line in block.splitlines() if line and not line.startswith("#")]
        meaningful = [
            line for line in lines[1:] if line != "COMMIT" and not line.endswith(" ACCEPT [0:0]")
        ]
        if meaningful:
            kept += [f"*{lines[0]}", *(line.split(" [")[0] for line in lines[1:])]
    return "\n".join(kept)


def _iptables() -> str:
    return "\n".join(f"## {tool}\n{_iptables_rules(tool)}" for tool in _IPTABLES)


def _restore_iptables(saved: str) -> None:
    """Flush every table, then load the saved rules (per tool)."""
    for section in saved.split("## ")[1:]:
        tool, _, rules = section.partition("\n")
        for table in _TABLES:
            for flag in ("-F", "-X"):
                subprocess.run([tool, "-t", table, flag], capture_output=True, check=False)
        if rules.strip():
            subprocess.run([f"{tool}-restore"], input=rules + "\n", text=True, check=True)


@dataclass(frozen=True)
class HostSnapshot:
    """The machine as the cluster found it."""

    sysctls: dict[str, str]
    links: str
    iptables: str
    host_paths: dict[str, bool]
    mounts: frozenset[str]

    @classmethod
    def take(cls) -> HostSnapshot:
        """Record sysctls, links, iptables rules, the node's host paths and the mount table."""
        return cls(
            sysctls=read_sysctls(),
            links=_links(),
            iptables=_iptables(),
            host_paths={p: os.path.lexists(p) for p in HOST_PATHS},
            mounts=_mount_points(),
        )

    def restore_network(self) -> None:
        """Put the (private) namespace's iptables and ip6tables rules back as they were."""
        _restore_iptables(self.iptables)

    def settled_differences(self, cgroup_name: str, timeout_s: float = 15.0) -> list[str]:
        """differences(), polled until empty or timeout_s (pod links vanish asynchronously)."""
        deadline = time.monotonic() + timeout_s
        while (found := self.differences(cgroup_name)) and time.monotonic() < deadline:
            time.sleep(0.5)
        return found

    def differences(self, cgroup_name: str) -> list[str]:
        """Everything that is not as it was (empty: the machine is back as it was)."""
        now = HostSnapshot.take()
        found = [
            f"sysctl {name} is {value}, was {self.sysctls.get(name)}"
            for name, value in now.sysctls.items()
            if self.sysctls.get(name) != value
        ]
        if now.links != self.links:
            found.append(f"network links differ:\nbefore:\n{self.links}\nafter:\n{now.links}")
        if now.iptables != self.iptables:
            found.append(
                f"iptables rules differ:\nbefore:\n{self.iptables}\nafter:\n{now.iptables}"
            )
        found += [
            f"{path} exists now and did not before"
            for path, existed in now.host_paths.items()
            if existed != self.host_paths[path]
        ]
        found += [f"mount left behind: {m}" for m in sorted(now.mounts - self.mounts)]
        found += [f"cgroup left behind: {d}" for d in cgroup_dirs(cgroup_name)]
        return found


def _links() -> str:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    return "\n".join(
        sorted(line.split("link/")[0].split(":")[1].strip() for line in out.splitlines())
    )


def _mount_points() -> frozenset[str]:
    """Mount points where the node could leave mounts on the host: the node's paths and /tmp
    (the work dirs). Other mounts change with unrelated work on the machine (podman builds)."""
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    watched = (*HOST_PATHS, "/tmp/", "/sys/fs/cgroup/")
    return frozenset(
        point for point in (line.split()[4] for line in lines) if point.startswith(watched)
    )
