"""The `helm test` pod's check, run exactly as rendered, against the test apiserver.

The pod runs `python /scripts/helm-test.py` from the rendered ConfigMap with the test
ServiceAccount's token. Here the same script runs as a process with that token laid out like a
mounted ServiceAccount, and a local HTTP server stands in for the operator's liveness endpoint.
"""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.kube import KubeCluster
from tests.integration.helm.apply import apply_all, write_service_account_dir
from tests.unit.helm.helmchart import find, is_hook, one, render

pytestmark = pytest.mark.integration


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        code = self.status if self.path == "/healthz" else 404
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def liveness() -> Iterator[tuple[str, type[_Health]]]:
    """A stand-in for kopf's liveness endpoint on 127.0.0.1 (its status code is settable)."""
    handler = type("Health", (_Health,), {"status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/healthz", handler
    server.shutdown()
    server.server_close()


def _run(
    script: Path, kube: KubeCluster, sa_dir: Path, health_url: str
) -> subprocess.CompletedProcess[str]:
    env = {
        "TUNEFORGE_TEST_API": kube.host,
        "TUNEFORGE_TEST_SA_DIR": str(sa_dir),
        "TUNEFORGE_TEST_HEALTH_URL": health_url,
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(
        [sys.executable, str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_helm_test_script_passes_and_fails_for_the_right_reasons(
    kube: KubeCluster,
    kube_namespace: str,
    chart: Path,
    tmp_path: Path,
    liveness: tuple[str, type[_Health]],
) -> None:
    docs = render(chart, namespace=kube_namespace, release="ht")
    hooks = [d for d in docs if is_hook(d)]
    assert {d["kind"] for d in hooks} == {
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Pod",
    }
    pod = one(hooks, "Pod")
    assert pod["spec"]["containers"][0]["command"] == ["python", "/scripts/helm-test.py"]
    health_env = pod["spec"]["containers"][0]["env"]
    assert {
        "name": "TUNEFORGE_TEST_HEALTH_URL",
        "value": f"http://ht-tuneforge-operator.{kube_namespace}.svc:8081/healthz",
    } in health_env
    script = tmp_path / "helm-test.py"
    script.write_text(one(hooks, "ConfigMap")["data"]["helm-test.py"])

    apply_all(kube, [d for d in hooks if d["kind"] in ("ServiceAccount", "Role", "RoleBinding")])
    sa = one(hooks, "ServiceAccount")["metadata"]["name"]
    sa_dir = write_service_account_dir(kube, kube_namespace, sa, tmp_path / "sa")
    url, handler = liveness

    ok = _run(script, kube, sa_dir, url)
    assert ok.returncode == 0, ok.stderr
    assert "FineTuneJob CRD served" in ok.stdout and "liveness endpoint answered 200" in ok.stdout

    handler.status = 503
    sick = _run(script, kube, sa_dir, url)
    assert sick.returncode == 1 and "answered 503" in sick.stderr

    unbound = write_service_account_dir(kube, kube_namespace, "not-the-test-sa", tmp_path / "sa2")
    refused = _run(script, kube, unbound, url)
    assert refused.returncode == 1 and "answered 403" in refused.stderr
    assert not find([d for d in docs if not is_hook(d)], "Pod")
