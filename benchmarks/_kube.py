"""A throw-away Kubernetes control plane for benchmarks: etcd, kube-apiserver, controller-manager.

The binaries come from `scripts/build-kube-assets.sh` (it prints $KUBEBUILDER_ASSETS when
that holds them, else builds them into a cache). Certificates and the admin token are made
with `openssl`; the FineTuneJob CRD comes from `tuneforge.api.crd` and KubeRay's from
`third_party/kuberay-crds`, trimmed of what the 1.20 API server refuses. Every service is a
child in its own session, stopped by PID. Standard library only (and `yaml`, `tuneforge`).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
KUBERAY_CRDS = ("ray.io_rayclusters.yaml", "ray.io_rayjobs.yaml", "ray.io_rayservices.yaml")
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
START_TIMEOUT_S = 90.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    """A child process in its own session with its output in a log file."""

    name: str
    popen: subprocess.Popen[bytes]

    @classmethod
    def start(cls, name: str, command: list[str], log: Path, env: dict[str, str]) -> Service:
        """Start `command` with stdout and stderr appended to `log`."""
        with log.open("ab") as out:
            popen = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        return cls(name, popen)

    @property
    def pid(self) -> int:
        """The process id (also its session's)."""
        return self.popen.pid

    def wait_ready(self, ready: Callable[[], bool], timeout_s: float = START_TIMEOUT_S) -> None:
        """Poll `ready` (errors count as not ready) until it is true; raise if the child exits."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if ready():
                    return
            except (OSError, urllib.error.URLError):
                pass
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start (exit code {self.popen.poll()})")
            time.sleep(0.2)

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM its process group, then SIGKILL after `grace_s`."""
        for signum in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.pid, signum)
            except ProcessLookupError:
                return
            try:
                self.popen.wait(timeout=grace_s)
                return
            except subprocess.TimeoutExpired:
                continue


@dataclass
class KubeControlPlane:
    """The running services and how to reach the API server as its admin."""

    host: str
    token: str
    ca_file: Path
    kubeconfig: Path
    processes: dict[str, Service] = field(default_factory=dict)

    def __post_init__(self) -> None:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )

    def request(
        self, method: str, path: str, body: Any = None, accept: str = "application/json"
    ) -> tuple[int, Any]:
        """One request as the admin: the status and the JSON (or text) answer, never raising."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.host + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept", accept)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with self.opener.open(request, timeout=30) as response:
                return int(response.status), _decode(response.read())
        except urllib.error.HTTPError as error:
            return int(error.code), _decode(error.read())

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        """Like `request`, but raise unless the answer is 2xx."""
        status, answer = self.request(method, path, body)
        if not 200 <= status < 300:
            raise RuntimeError(f"{method} {path}: {status} {answer}")
        return answer

    def create_namespace(self, prefix: str) -> str:
        """A new namespace `<prefix>-<random>`."""
        name = f"{prefix}-{secrets.token_hex(3)}"
        self.ok("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
        return name

    def stop(self) -> None:
        """Stop every service, newest first."""
        for service in reversed(list(self.processes.values())):
            service.stop()


def start_control_plane(work: Path) -> KubeControlPlane:
    """Start etcd, the API server (with the CRDs) and, when built, the controller-manager."""
    assets = Path(
        subprocess.run(
            ["bash", str(REPO_ROOT / "scripts" / "build-kube-assets.sh")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[-1]
    )
    work.mkdir(parents=True, exist_ok=True)
    token = _make_pki(work)
    port = free_port()
    host = f"https://{LOOPBACK}:{port}"
    plane = KubeControlPlane(host, token, work / "ca.crt", _write_kubeconfig(work, host, token))
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    try:
        etcd_port, peer_url = free_port(), f"http://{LOOPBACK}:{free_port()}"
        etcd_url = f"http://{LOOPBACK}:{etcd_port}"
        plane.processes["etcd"] = etcd = Service.start(
            "etcd",
            [str(assets / "etcd"), f"--data-dir={work / 'etcd'}", "--log-level=warn",
             f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
             f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
             f"--initial-cluster=default={peer_url}", "--name=default"],
            work / "etcd.log", env,
        )  # fmt: skip
        etcd.wait_ready(lambda: _http_ok(f"{etcd_url}/health"))
        plane.processes["kube-apiserver"] = apiserver = Service.start(
            "kube-apiserver",
            [str(assets / "kube-apiserver"), f"--etcd-servers={etcd_url}",
             f"--bind-address={LOOPBACK}", f"--advertise-address={LOOPBACK}",
             f"--secure-port={port}", "--insecure-port=0", f"--cert-dir={work / 'certs'}",
             f"--tls-cert-file={work / 'apiserver.crt'}",
             f"--tls-private-key-file={work / 'apiserver.key'}",
             f"--client-ca-file={work / 'ca.crt'}", f"--token-auth-file={work / 'tokens.csv'}",
             "--authorization-mode=RBAC",
             "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
             f"--service-account-key-file={work / 'sa.pub'}",
             f"--service-account-signing-key-file={work / 'sa.key'}",
             "--service-cluster-ip-range=10.0.0.0/24", "--endpoint-reconciler-type=none",
             "--profiling=false", "--v=1"],
            work / "kube-apiserver.log", env,
        )  # fmt: skip
        apiserver.wait_ready(lambda: plane.request("GET", "/readyz")[1] == "ok")
        _install_crds(plane)
        if (assets / "kube-controller-manager").is_file():
            plane.processes["kube-controller-manager"] = Service.start(
                "kube-controller-manager",
                [str(assets / "kube-controller-manager"), f"--kubeconfig={plane.kubeconfig}",
                 "--controllers=*,-cloud-node-lifecycle,-route,-service",
                 "--use-service-account-credentials=false", "--leader-elect=false",
                 f"--service-account-private-key-file={work / 'sa.key'}",
                 f"--root-ca-file={work / 'ca.crt'}", "--port=0", "--secure-port=0", "--v=1"],
                work / "kube-controller-manager.log", env,
            )  # fmt: skip
    except BaseException:
        plane.stop()
        raise
    return plane


def _make_pki(work: Path) -> str:
    """CA, serving certificate, ServiceAccount key pair and token file; returns the token."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=work, capture_output=True, check=True)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=benchmark-ca", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    openssl("req", "-new", *ec, "-keyout", "apiserver.key", "-out", "apiserver.csr",
            "-subj", "/CN=kube-apiserver")  # fmt: skip
    (work / "apiserver.ext").write_text(
        "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
    )
    openssl("x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "apiserver.crt", "-days", "2",
            "-extfile", "apiserver.ext")  # fmt: skip
    openssl("genrsa", "-out", "sa.key", "2048")
    openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub")
    token = secrets.token_hex(24)
    (work / "tokens.csv").write_text(f'{token},admin,admin,"system:masters"\n')
    return token


def _write_kubeconfig(work: Path, host: str, token: str) -> Path:
    cluster = {"server": host, "certificate-authority": str(work / "ca.crt")}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "bench", "cluster": cluster}],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "admin"}}],
        "current-context": "bench",
    }
    path = work / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def _install_crds(plane: KubeControlPlane) -> None:
    from tuneforge.api.crd import crd_manifest

    crds = [crd_manifest()]
    for name in KUBERAY_CRDS:
        crd = _for_1_20(yaml.safe_load((REPO_ROOT / "third_party" / "kuberay-crds" / name).open()))
        crd["metadata"].pop("annotations", None)
        crds.append(crd)
    for crd in crds:
        plane.ok("POST", CRD_PATH, crd)
    deadline = time.monotonic() + START_TIMEOUT_S
    for crd in crds:
        while not _established(plane.ok("GET", f"{CRD_PATH}/{crd['metadata']['name']}")):
            if time.monotonic() > deadline:
                raise RuntimeError(f"CRD {crd['metadata']['name']} was never Established")
            time.sleep(0.2)


def _established(crd: dict[str, Any]) -> bool:
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


def _for_1_20(node: Any) -> Any:
    """A CRD schema without what the 1.20 API server refuses (see third_party/kuberay-crds)."""
    if isinstance(node, list):
        return [_for_1_20(item) for item in node]
    if not isinstance(node, dict):
        return node
    list_map = node.get("x-kubernetes-list-type") == "map"
    return {
        key: _for_1_20(value)
        for key, value in node.items()
        if key != "x-kubernetes-validations"
        and not (key == "default" and value == "")
        and not (list_map and key in ("x-kubernetes-list-type", "x-kubernetes-list-map-keys"))
    }


def _http_ok(url: str) -> bool:
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=2) as r:
        return int(r.status) == 200


def _decode(raw: bytes) -> Any:
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text
