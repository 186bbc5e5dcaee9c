"""etcd, kube-apiserver, kube-controller-manager and kube-scheduler for the real test node.

Unlike the operator tests' control plane (tests/fixtures/_kube_start.py, loopback only), this
apiserver is reached by pods: it listens on every address of the tests' private network
namespace and advertises the node's address, so the `kubernetes` Service's endpoint is real
and kube-proxy routes 10.0.0.1:443 to it. Clients on the node still use https://127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.cluster.images import REPO_ROOT
from tests.fixtures._kube_cluster import KubeCluster, write_kubeconfig
from tests.fixtures._kube_crds import install_crds, kuberay_crds
from tests.fixtures._kube_pki import ADMIN_USER, make_pki
from tests.fixtures._kube_start import _start_controller_manager, _start_etcd, resolve_assets
from tests.fixtures._procs import LOOPBACK, ManagedProcess, free_port

SERVICE_CIDR = "10.0.0.0/24"
APISERVER_TIMEOUT_S = 90.0


def child_env() -> dict[str, str]:
    """The environment of every cluster process: no proxies."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["NO_PROXY"] = env["no_proxy"] = "*"
    return env


def start_control_plane(work: Path, node_ip: str) -> KubeCluster:
    """etcd, the apiserver (KubeRay's CRDs installed), the controller-manager, the scheduler."""
    assets = resolve_assets()
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    pki = make_pki(work / "pki")
    port = free_port()
    host = f"https://{LOOPBACK}:{port}"
    cluster = KubeCluster(
        host=host,
        token=pki.admin_token,
        ca_file=pki.ca_cert,
        kubeconfig=write_kubeconfig(
            work / "kubeconfig", host, pki.ca_cert, pki.admin_token, ADMIN_USER
        ),
        work_dir=work,
        assets_dir=assets,
    )
    try:
        etcd_url = _start_etcd(cluster, assets, logs)
        cert_dir = work / "apiserver-certs"
        cert_dir.mkdir(exist_ok=True)
        apiserver = ManagedProcess(
            "kube-apiserver",
            [
                str(assets / "kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                "--bind-address=0.0.0.0",  # inside the private network namespace only
                f"--advertise-address={node_ip}",
                f"--secure-port={port}",
                "--insecure-port=0",
                f"--cert-dir={cert_dir}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_cert}",
                f"--token-auth-file={pki.token_file}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki.sa_public_key}",
                f"--service-account-signing-key-file={pki.sa_private_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--kubelet-preferred-address-types=InternalIP",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=1",
            ],
            logs / "kube-apiserver.log",
            env=child_env(),
        )
        cluster.processes["kube-apiserver"] = apiserver

        def ready() -> bool:
            try:
                response = cluster.rest.request("GET", "/readyz", timeout_s=3)
            except OSError:
                return False
            return response.status == 200 and response.body == "ok"

        cluster.startup_seconds["kube-apiserver"] = apiserver.wait_ready(
            ready, APISERVER_TIMEOUT_S, "/readyz says ok"
        )
        install_crds(cluster.rest, kuberay_crds())
        _start_controller_manager(cluster, assets, logs, pki)
        cluster.processes["kube-scheduler"] = ManagedProcess(
            "kube-scheduler",
            [
                str(_node_asset("kube-scheduler")),
                f"--kubeconfig={cluster.kubeconfig}",
                "--leader-elect=false",
                "--port=0",
                f"--bind-address={LOOPBACK}",
                f"--secure-port={free_port()}",
                "--v=1",
            ],
            logs / "kube-scheduler.log",
            env=child_env(),
        )
    except BaseException:
        print(f"control plane failed to start:\n{cluster.log_tails()}")
        cluster.stop()
        raise
    cluster.startup_seconds["control plane"] = time.monotonic() - started
    return cluster


def node_assets() -> Path:
    """The folder with kubelet, kube-scheduler and kube-proxy (scripts/cluster/build-node-assets.sh)."""
    given = os.environ.get("TUNEFORGE_NODE_ASSETS")
    if given:
        return Path(given)
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "cluster" / "build-node-assets.sh")],
        capture_output=True,
        text=True,
        check=False,
        timeout=40 * 60,
    )
    if result.returncode != 0:
        raise RuntimeError(
            "scripts/cluster/build-node-assets.sh failed: run `make cluster-assets` outside the "
            f"private network namespace first.\n{result.stderr[-3000:]}"
        )
    return Path(result.stdout.split()[-1])


def _node_asset(name: str) -> Path:
    path = node_assets() / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: rerun `make cluster-assets`")
    return path
