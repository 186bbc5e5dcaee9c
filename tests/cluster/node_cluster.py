"""A real single-node Kubernetes cluster: containerd, kube-proxy and a kubelet beside the
control plane (control_plane.py), all inside the tests' private network namespace.

The node processes (containerd, kubelet, kube-proxy) share a private mount namespace whose
/var/log, /var/lib and /run are folders of the cluster's work dir, so their mounts, pod logs,
kubelet state and network-namespace pins vanish with that namespace. Pods run in their own
cgroup root (`/tuneforge-<pid>`) and get addresses on a CNI bridge. See docs/pods.md.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.cluster import host_state
from tests.cluster.cluster_dns import CLUSTER_DOMAIN, ClusterDns
from tests.cluster.control_plane import child_env, node_assets, start_control_plane
from tests.cluster.images import LocalImage
from tests.cluster.node_config import POD_SUBNET, containerd_config, resolv_conf
from tests.cluster.preconditions import failed_preconditions
from tests.fixtures._kube_cluster import KubeCluster
from tests.fixtures._procs import LOOPBACK, ManagedProcess, free_port

NODE_NAME = "tuneforge-node"
NODE_IP = "10.250.0.1"
_NODE_PEER_IP = "10.250.0.2"  # the default route's gateway: the other end of the node's veth
_NODE_LINK, _PEER_LINK = "tf-node0", "tf-node1"
NODE_READY_TIMEOUT_S = 120.0
NODE_CPU_SHARES = 8192
"""CPU weight of the node's cgroup root (cgroup v1 `cpu.shares`; a process outside has 1024).

A real node runs little besides its pods; here the pods share 2 cores with whatever else the
machine runs (other test runs, builds). At the default weight, ten busy processes outside left
the pods about a sixth of the CPU, and Ray's head then missed `ray start`'s fixed 30 s wait
for its raylet to register ("The current node timed out during startup"). With this weight
the pods come first, as on a node of their own; nothing outside is starved while they idle."""
_MOUNT_HOLDER = """set -e
for d in var-log var-lib run; do mkdir -p "$1/$d"; done
mount --bind "$1/var-log" /var/log
mount --bind "$1/var-lib" /var/lib
mount --bind "$1/run" /run
echo $$ > "$1/holder.pid"
exec sleep infinity
"""


class PreconditionError(RuntimeError):
    """The machine cannot run the cluster; the message lists every unmet precondition."""


@dataclass
class NodeCluster:
    """The running cluster: the control plane's `kube` handle plus the node's processes."""

    kube: KubeCluster
    work: Path
    snapshot: host_state.HostSnapshot
    cgroup_name: str
    containerd_socket: Path
    mount_namespace: str = ""
    node_processes: dict[str, ManagedProcess] = field(default_factory=dict)
    dns: ClusterDns | None = None
    images: dict[str, LocalImage] = field(default_factory=dict)
    """The images loaded into containerd, by name (`pause`, `operator`, ...)."""
    stopped: bool = False

    def ctr(self, *args: str) -> str:
        """Run `ctr` against the node's containerd (namespace k8s.io); returns stdout."""
        command = ["ctr", "--address", str(self.containerd_socket), "-n", "k8s.io", *args]
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
        return result.stdout

    def load_images(self, images: list[LocalImage]) -> None:
        """Import podman-saved archives into the node's containerd."""
        for image in images:
            self.ctr("images", "import", str(image.archive))
            self.images[image.name] = image

    def log_tails(self) -> str:
        """The last lines of every service's log, for failure reports."""
        node = "\n".join(
            f"--- {name} ({p.log_path}) ---\n{p.log_tail()}"
            for name, p in self.node_processes.items()
        )
        return f"{self.kube.log_tails()}\n{node}"

    def stop(self) -> list[str]:
        """Tear everything down; returns what is still not as before (empty: nothing left)."""
        if self.stopped:
            return self.snapshot.settled_differences(self.cgroup_name)
        self.stopped = True
        if self.dns is not None:
            self.dns.close()
        for name in ("kubelet", "kube-proxy"):
            if name in self.node_processes:
                self.node_processes[name].stop()
        host_state.kill_cgroup_processes(self.cgroup_name)
        for process in reversed(list(self.node_processes.values())):
            process.stop()
        self.kube.stop()
        if self.mount_namespace:
            host_state.kill_mount_namespace(self.mount_namespace)
        host_state.remove_cgroups(self.cgroup_name)
        restored = host_state.restore_sysctls(self.snapshot.sysctls)
        if restored:
            print(f"restored sysctls the kubelet changed: {', '.join(restored)}")
        _remove_links()
        self.snapshot.restore_network()
        return self.snapshot.settled_differences(self.cgroup_name)


def start_node_cluster(work: Path, images: list[LocalImage]) -> NodeCluster:
    """Start the control plane and the node, load `images`, wait for the node to be Ready."""
    failed = failed_preconditions()
    if failed:
        raise PreconditionError(
            "this machine cannot run the cluster tier:\n- " + "\n- ".join(failed)
        )
    assets = node_assets()
    snapshot = host_state.HostSnapshot.take()
    _add_node_links()
    cluster = NodeCluster(
        kube=None,  # type: ignore[arg-type]  # set just below, once the control plane is up
        work=work,
        snapshot=snapshot,
        cgroup_name=f"tuneforge-{os.getpid()}",
        containerd_socket=work / "containerd.sock",
    )
    try:
        cluster.kube = start_control_plane(work, NODE_IP)
        _start_node(cluster, assets, images)
    except BaseException:
        if cluster.kube is not None:
            print(f"cluster failed to start:\n{cluster.log_tails()}")
            cluster.stop()
        else:
            _remove_links()
            snapshot.restore_network()
        raise
    return cluster


def _start_node(cluster: NodeCluster, assets: Path, images: list[LocalImage]) -> None:
    work, logs = cluster.work, cluster.work / "logs"
    holder = ManagedProcess(
        "mount-namespace",
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", _MOUNT_HOLDER, "holder",
         str(work / "node-root")],
        logs / "mount-namespace.log",
    )  # fmt: skip
    cluster.node_processes["mount-namespace"] = holder
    pid_file = work / "node-root" / "holder.pid"
    holder.wait_ready(pid_file.exists, 30, "the node's mount namespace is set up")
    namespace_path = f"/proc/{pid_file.read_text().strip()}/ns/mnt"
    cluster.mount_namespace = os.readlink(namespace_path)

    def in_node(name: str, command: list[str]) -> ManagedProcess:
        process = ManagedProcess(
            name, ["nsenter", f"--mount={namespace_path}", "--", *command], logs / f"{name}.log",
            env=child_env(),
        )  # fmt: skip
        cluster.node_processes[name] = process
        return process

    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        if (hierarchy / "tasks").exists() and not hierarchy.is_symlink():
            (hierarchy / cluster.cgroup_name).mkdir(exist_ok=True)
    shares = Path("/sys/fs/cgroup/cpu") / cluster.cgroup_name / "cpu.shares"
    if shares.exists():
        shares.write_text(str(NODE_CPU_SHARES))
    pause = next(i for i in images if i.name == "pause")
    config = containerd_config(work, cluster.containerd_socket, pause.reference)
    containerd = in_node("containerd", ["containerd", "--config", str(config)])
    containerd.wait_ready(lambda: _ctr_answers(cluster), 60, "its socket answers")
    started = time.monotonic()
    cluster.load_images(images)
    cluster.kube.startup_seconds["image import"] = time.monotonic() - started
    kube = cluster.kube
    in_node("kube-proxy", [
        str(assets / "kube-proxy"), f"--kubeconfig={kube.kubeconfig}", "--proxy-mode=iptables",
        "--masquerade-all", f"--cluster-cidr={POD_SUBNET}", f"--hostname-override={NODE_NAME}",
        "--conntrack-max-per-core=0", "--conntrack-tcp-timeout-established=0s",
        "--conntrack-tcp-timeout-close-wait=0s", "--oom-score-adj=0",
        f"--healthz-bind-address={LOOPBACK}:{free_port()}",
        f"--metrics-bind-address={LOOPBACK}:{free_port()}", "--v=1",
    ])  # fmt: skip
    kubelet_root = work / "kubelet"
    kubelet = in_node("kubelet", [
        str(assets / "kubelet"), f"--kubeconfig={kube.kubeconfig}", f"--root-dir={kubelet_root}",
        f"--cert-dir={kubelet_root / 'pki'}", "--container-runtime=remote",
        f"--container-runtime-endpoint=unix://{cluster.containerd_socket}",
        f"--image-service-endpoint=unix://{cluster.containerd_socket}",
        "--cgroup-driver=cgroupfs", f"--cgroup-root=/{cluster.cgroup_name}",
        f"--node-ip={NODE_IP}", f"--hostname-override={NODE_NAME}",
        # This machine lacks CAP_SYS_RESOURCE: a negative oom_score_adj is denied.
        "--oom-score-adj=0", "--read-only-port=0", "--healthz-port=0",
        "--image-gc-high-threshold=100", "--image-gc-low-threshold=99",
        "--eviction-hard=memory.available<100Mi,nodefs.available<1%,imagefs.available<1%",
        "--fail-swap-on=false", f"--cluster-dns={NODE_IP}", f"--cluster-domain={CLUSTER_DOMAIN}",
        f"--resolv-conf={resolv_conf(work)}",
        f"--volume-plugin-dir={kubelet_root / 'volume-plugins'}", "--serialize-image-pulls=false",
        "--v=1",
    ])  # fmt: skip
    cluster.dns = ClusterDns(NODE_IP, lambda name, ns: _cluster_ip(kube, name, ns))
    started = time.monotonic()
    kubelet.wait_ready(lambda: _node_ready(kube), NODE_READY_TIMEOUT_S, "the node is Ready")
    kube.startup_seconds["node ready"] = time.monotonic() - started


def _ctr_answers(cluster: NodeCluster) -> bool:
    if not cluster.containerd_socket.exists():
        return False
    try:
        cluster.ctr("version")
    except RuntimeError:
        return False
    return True


def _node_ready(kube: KubeCluster) -> bool:
    response = kube.rest.request("GET", f"/api/v1/nodes/{NODE_NAME}", timeout_s=5)
    if response.status != 200:
        return False
    conditions = response.body.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _cluster_ip(kube: KubeCluster, name: str, namespace: str) -> str | None:
    response = kube.rest.request("GET", f"/api/v1/namespaces/{namespace}/services/{name}")
    if response.status != 200:
        return None
    address = response.body.get("spec", {}).get("clusterIP")
    return address if address and address != "None" else None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _add_node_links() -> None:
    """The node's address: one end of a veth pair, with a default route (kubelet and apiserver
    need one to pick their address). Both ends stay in the tests' private network namespace."""
    _ip("link", "add", _NODE_LINK, "type", "veth", "peer", "name", _PEER_LINK)
    _ip("addr", "add", f"{NODE_IP}/24", "dev", _NODE_LINK)
    _ip("link", "set", _NODE_LINK, "up")
    _ip("link", "set", _PEER_LINK, "up")
    _ip("route", "add", "default", "via", _NODE_PEER_IP, "dev", _NODE_LINK)


def _remove_links() -> None:
    for link in (_NODE_LINK, "tf-cni0"):
        subprocess.run(["ip", "link", "del", link], capture_output=True, check=False)
