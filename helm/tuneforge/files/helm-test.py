"""`helm test` check for TuneForge (standard library only; runs in the operator image).

1. The FineTuneJob CRD is installed and served: list FineTuneJobs in this namespace.
2. The operator answers on its liveness endpoint.
Each failure prints what is wrong and how to fix it, then exits non-zero.
"""

import json
import os
import ssl
import sys
import urllib.error
import urllib.request

SA_DIR = os.environ.get("TUNEFORGE_TEST_SA_DIR", "/var/run/secrets/kubernetes.io/serviceaccount")
API = os.environ.get("TUNEFORGE_TEST_API") or "https://{}:{}".format(
    os.environ.get("KUBERNETES_SERVICE_HOST", "kubernetes.default.svc"),
    os.environ.get("KUBERNETES_SERVICE_PORT", "443"),
)
HEALTH_URL = os.environ["TUNEFORGE_TEST_HEALTH_URL"]
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def read(name):
    with open(os.path.join(SA_DIR, name)) as handle:
        return handle.read().strip()


def fail(message):
    print("FAIL: " + message, file=sys.stderr)
    sys.exit(1)


def check_crd():
    namespace = read("namespace")
    url = "{}/apis/tuneforge.io/v1alpha1/namespaces/{}/finetunejobs?limit=1".format(API, namespace)
    request = urllib.request.Request(url, headers={"Authorization": "Bearer " + read("token")})
    context = ssl.create_default_context(cafile=os.path.join(SA_DIR, "ca.crt"))
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    try:
        with opener.open(request, timeout=10) as response:
            items = json.load(response).get("items", [])
    except urllib.error.HTTPError as error:
        if error.code == 404:
            fail(
                "the FineTuneJob CRD is not served (404): install it with "
                "`kubectl apply --server-side -f crds/` from the chart"
            )
        fail("listing FineTuneJobs in {} answered {}: {}".format(namespace, error.code, error.read()[:300]))
    except OSError as error:
        fail("cannot reach the Kubernetes API at {}: {}".format(API, error))
    print("ok: FineTuneJob CRD served ({} job(s) listed in {})".format(len(items), namespace))


def check_liveness():
    try:
        with NO_PROXY.open(HEALTH_URL, timeout=10) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except OSError as error:
        fail(
            "the operator's liveness endpoint {} does not answer ({}): see "
            "`kubectl logs deploy/<release>-tuneforge-operator`".format(HEALTH_URL, error)
        )
    if status != 200:
        fail("the operator's liveness endpoint {} answered {}".format(HEALTH_URL, status))
    print("ok: operator liveness endpoint answered 200")


if __name__ == "__main__":
    check_crd()
    check_liveness()
    print("TuneForge is installed and its operator is alive.")
