"""The serving pods take what a platform team sets on its workloads, and the API can be routed.

Scheduling (affinity, priorityClassName), identity (ServiceAccount annotations for cloud IAM),
pod labels and annotations, a configurable but hardened securityContext, a PodDisruptionBudget
over the GPU workers, an Ingress or a Gateway API HTTPRoute, mixed batching and the adapter
limits, each read back from the rendered manifests (and the app args by ServingConfig itself).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.helm.helmchart import find, one, render, template

ZONE_SPREAD = {
    "podAntiAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {
                "weight": 100,
                "podAffinityTerm": {
                    "topologyKey": "topology.kubernetes.io/zone",
                    "labelSelector": {"matchLabels": {"app.kubernetes.io/component": "serving"}},
                },
            }
        ]
    }
}
PLATFORM: dict[str, Any] = {
    "serving": {
        "enabled": True,
        "auth": {"existingSecret": "serving-token"},
        "priorityClassName": "inference-high",
        "podLabels": {"team": "ml-platform"},
        "podAnnotations": {"prometheus.io/scrape": "true"},
        "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x"}},
        "securityContext": {"readOnlyRootFilesystem": True},
        "podSecurityContext": {"runAsUser": 2000},
        "gpuWorkers": {"affinity": ZONE_SPREAD},
        "head": {"affinity": {"nodeAffinity": {}}},
    }
}


def _pods(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The head's and the GPU workers' pod templates."""
    cluster = one(docs, "RayService")["spec"]["rayClusterConfig"]
    return {
        "head": cluster["headGroupSpec"]["template"],
        "worker": cluster["workerGroupSpecs"][0]["template"],
    }


def _app_args(docs: list[dict[str, Any]]) -> Any:
    from tuneforge_serving.config import ServingConfig

    serve_config = yaml.safe_load(one(docs, "RayService")["spec"]["serveConfigV2"])
    return ServingConfig.model_validate(serve_config["applications"][0]["args"])


def test_serving_pods_take_scheduling_labels_and_annotations(chart: Path) -> None:
    pods = _pods(render(chart, PLATFORM))
    for role, pod in pods.items():
        assert pod["spec"]["priorityClassName"] == "inference-high", role
        assert pod["metadata"]["labels"]["team"] == "ml-platform", role
        assert pod["metadata"]["labels"]["tuneforge.io/ray-node-type"] == role
        assert pod["metadata"]["annotations"] == {"prometheus.io/scrape": "true"}, role
    assert pods["worker"]["spec"]["affinity"] == ZONE_SPREAD
    assert pods["head"]["spec"]["affinity"] == {"nodeAffinity": {}}


def test_security_context_is_configurable_and_stays_hardened(chart: Path) -> None:
    default_pods = _pods(
        render(chart, {"serving": {"enabled": True, "auth": {"existingSecret": "serving-token"}}})
    )
    for pod in _pods(render(chart, PLATFORM)).values():
        spec = pod["spec"]
        assert spec["securityContext"]["runAsUser"] == 2000
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        (container,) = spec["containers"]
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
    for pod in default_pods.values():
        assert "readOnlyRootFilesystem" not in pod["spec"]["containers"][0]["securityContext"]
        assert pod["spec"]["securityContext"]["runAsUser"] == 1000


def test_serving_service_account_carries_cloud_iam_annotations(chart: Path) -> None:
    account = one(render(chart, PLATFORM), "ServiceAccount", "-serving")
    assert account["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x"
    }
    assert account["automountServiceAccountToken"] is False


def test_pdb_covers_the_gpu_workers_only(chart: Path) -> None:
    docs = render(chart, PLATFORM)
    pdb = one(docs, "PodDisruptionBudget", "-serving")
    assert pdb["apiVersion"] == "policy/v1" and pdb["spec"]["maxUnavailable"] == 1
    selector = pdb["spec"]["selector"]["matchLabels"]
    pods = _pods(docs)
    assert selector.items() <= pods["worker"]["metadata"]["labels"].items()
    assert not selector.items() <= pods["head"]["metadata"]["labels"].items()
    off = {
        "serving": {
            "enabled": True,
            "auth": {"existingSecret": "serving-token"},
            "podDisruptionBudget": {"enabled": False},
        }
    }
    assert not find(render(chart, off), "PodDisruptionBudget")


def test_ingress_and_httproute_route_to_kuberays_serve_service(chart: Path) -> None:
    assert not find(
        render(chart, {"serving": {"enabled": True, "auth": {"existingSecret": "serving-token"}}}),
        "Ingress",
    )
    values = {
        "serving": {
            "enabled": True,
            "auth": {"existingSecret": "serving-token"},
            "ingress": {
                "enabled": True,
                "className": "nginx",
                "tls": [{"secretName": "sd-tls", "hosts": ["sd.example.com"]}],
                "hosts": [{"host": "sd.example.com", "paths": [{"path": "/"}]}],
            },
            "httpRoute": {
                "enabled": True,
                "parentRefs": [{"name": "public", "namespace": "gw"}],
                "hostnames": ["sd.example.com"],
            },
        }
    }
    docs = render(chart, values, release="tf")
    service = {"name": "tf-tuneforge-serving-serve-svc", "port": {"number": 8000}}
    ingress = one(docs, "Ingress")["spec"]
    assert ingress["ingressClassName"] == "nginx"
    (rule,) = ingress["rules"]
    assert rule["http"]["paths"][0]["backend"]["service"] == service
    assert rule["http"]["paths"][0]["pathType"] == "Prefix"
    assert ingress["tls"] == [{"secretName": "sd-tls", "hosts": ["sd.example.com"]}]
    route = one(docs, "HTTPRoute")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] == [{"name": "public", "namespace": "gw"}]
    (backend,) = route["spec"]["rules"][0]["backendRefs"]
    assert backend == {"name": "tf-tuneforge-serving-serve-svc", "port": 8000}


def test_mixed_batching_can_be_enabled(chart: Path) -> None:
    mixed = {"enabled": True, "maxBatchSize": 8, "maxWaitS": 0.05, "maxCombinedLoras": 3}
    config = _app_args(
        render(
            chart,
            {
                "serving": {
                    "enabled": True,
                    "auth": {"existingSecret": "serving-token"},
                    "app": {"mixedBatching": mixed},
                }
            },
        )
    )
    assert config.mixed_batching.enabled is True
    assert (config.mixed_batching.max_batch_size, config.mixed_batching.max_wait_s) == (8, 0.05)
    assert config.mixed_batching.max_combined_loras == 3


@pytest.mark.parametrize("lru", [1, 2, 5])
def test_lowering_adapter_lru_size_alone_works(chart: Path, lru: int) -> None:
    config = _app_args(
        render(
            chart,
            {
                "serving": {
                    "enabled": True,
                    "auth": {"existingSecret": "serving-token"},
                    "app": {"adapterLruSize": lru},
                }
            },
        )
    )
    assert config.adapter_lru_size == lru
    assert config.max_adapters_per_request == lru


def test_an_explicit_adapter_limit_is_kept_and_checked(chart: Path) -> None:
    app = {"adapterLruSize": 4, "limits": {"maxAdaptersPerRequest": 2}}
    config = _app_args(
        render(
            chart,
            {"serving": {"enabled": True, "auth": {"existingSecret": "serving-token"}, "app": app}},
        )
    )
    assert config.max_adapters_per_request == 2
    app = {"adapterLruSize": 2, "limits": {"maxAdaptersPerRequest": 3}}
    result = template(
        chart,
        {"serving": {"enabled": True, "auth": {"existingSecret": "serving-token"}, "app": app}},
    )
    assert result.returncode != 0
    assert "maxAdaptersPerRequest (3) exceeds serving.app.adapterLruSize (2)" in result.output
    assert "leave maxAdaptersPerRequest unset" in result.output


@pytest.mark.parametrize(
    ("serving", "complaint"),
    [
        ({"httpRoute": {"enabled": True}}, "serving.httpRoute.parentRefs is empty"),
        ({"ingress": {"enabled": True, "hosts": []}}, "serving.ingress.hosts is empty"),
        (
            {"serviceAccount": {"create": False, "annotations": {"a": "b"}}},
            "serving.serviceAccount.create is false",
        ),
        ({"ingress": {"enabled": True, "hots": []}}, "hots"),
        ({"securityContext": {"readOnlyRootFileSystem": True}}, "readOnlyRootFileSystem"),
    ],
)
def test_serving_values_that_cannot_work_fail_by_name(
    chart: Path, serving: dict[str, Any], complaint: str
) -> None:
    result = template(
        chart,
        {"serving": {"enabled": True, "auth": {"existingSecret": "serving-token"}, **serving}},
    )
    assert result.returncode != 0 and complaint in result.output, result.output


def test_serving_auth_is_on_by_default_and_fails_closed(chart: Path) -> None:
    from tests.unit.helm.helmchart import template

    refused = template(chart, {"serving": {"enabled": True}})
    assert refused.returncode != 0
    assert "serving.auth.existingSecret is empty" in refused.output
    assert "serving.auth.enabled: false" in refused.output

    docs = render(chart, {"serving": {"enabled": True, "auth": {"existingSecret": "sd-token"}}})
    config = _app_args(docs)
    assert config.auth.enabled and config.auth.token_env == "TUNEFORGE_SERVING_TOKEN"
    for pod in _pods(docs).values():
        (container,) = pod["spec"]["containers"]
        token = next(e for e in container["env"] if e["name"] == "TUNEFORGE_SERVING_TOKEN")
        assert token["valueFrom"]["secretKeyRef"]["name"] == "sd-token"

    docs = render(chart, {"serving": {"enabled": True, "auth": {"enabled": False}}})
    assert _app_args(docs).auth.load_token() is None  # said explicitly: served openly
    for pod in _pods(docs).values():
        names = {e["name"] for e in pod["spec"]["containers"][0]["env"]}
        assert "TUNEFORGE_SERVING_TOKEN" not in names


def test_per_caller_tokens_reach_the_app_and_the_pods_from_their_secrets(
    chart: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tuneforge_serving.callers import Authenticator

    callers = [
        {"name": "team-a", "existingSecret": "a-token", "adapterPrefixes": ["team-a."]},
        {"name": "team-b", "existingSecret": "b-token", "secretKey": "k", "adapters": ["dogs"]},
    ]
    auth = {"existingSecret": "sd-token", "callers": callers}
    docs = render(chart, {"serving": {"enabled": True, "auth": auth}})
    for pod in _pods(docs).values():
        env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
        refs = [env[f"TUNEFORGE_SERVING_TOKEN_{i}"]["valueFrom"]["secretKeyRef"] for i in (0, 1)]
        assert refs == [{"name": "a-token", "key": "token"}, {"name": "b-token", "key": "k"}]
    config = _app_args(docs)
    for variable, token in (
        ("TUNEFORGE_SERVING_TOKEN", "main"),
        ("TUNEFORGE_SERVING_TOKEN_0", "ta"),
    ):
        monkeypatch.setenv(variable, token)
    monkeypatch.setenv("TUNEFORGE_SERVING_TOKEN_1", "tb")
    authenticator = Authenticator(config.auth.load_token(), config.auth.load_callers())
    team_a = authenticator.authenticate("ta")
    assert team_a.name == "team-a" and team_a.allows("team-a.dogs") and not team_a.allows("dogs")
    assert authenticator.authenticate("tb").allows("dogs")
    assert authenticator.authenticate("main").allows("anything")

    refused = template(
        chart, {"serving": {"enabled": True, "auth": {"enabled": False, "callers": callers}}}
    )
    assert refused.returncode != 0 and "needs serving.auth.enabled" in refused.output
    bad = [{"name": "team-a", "adapterPrefixes": ["team-a."]}]  # no Secret named
    refused = template(
        chart, {"serving": {"enabled": True, "auth": {"existingSecret": "s", "callers": bad}}}
    )
    assert refused.returncode != 0 and "existingSecret" in refused.output


def test_the_serving_ray_cluster_uses_kuberay_token_auth(chart: Path) -> None:
    docs = render(chart, {"serving": {"enabled": True, "auth": {"existingSecret": "sd-token"}}})
    assert one(docs, "RayService")["spec"]["rayClusterConfig"]["authOptions"] == {"mode": "token"}
