"""Where the operator looks for (and creates) kopf's peering objects."""

from __future__ import annotations

from tuneforge_operator.kubeapi import KubeApiError, peering_path
from tuneforge_operator.peering import _refusal, peering_targets


def test_targets_are_the_listed_namespaces_or_the_cluster() -> None:
    assert peering_targets([]) == [None]
    assert peering_targets(["team-a", "team-b"]) == ["team-a", "team-b"]
    assert peering_targets(["team-a", "ml-*"]) == ["team-a"]  # a pattern names no object


def test_paths_are_namespaced_or_cluster_scoped() -> None:
    assert peering_path("team-a", "tuneforge") == (
        "/apis/kopf.dev/v1/namespaces/team-a/kopfpeerings/tuneforge"
    )
    assert peering_path(None) == "/apis/kopf.dev/v1/clusterkopfpeerings"


def test_refusal_says_what_is_waited_for_and_how_to_end_the_wait() -> None:
    forbidden = _refusal("tuneforge", "team-a", KubeApiError(403, "Forbidden", "no"))
    assert forbidden.startswith("Paused: KopfPeering team-a/tuneforge is missing")
    assert "create` on kopfpeerings" in forbidden and "PEERING_NAME=''" in forbidden
    no_crd = _refusal("tuneforge", None, KubeApiError(404, "NotFound", "no"))
    assert "ClusterKopfPeering tuneforge" in no_crd and "crds/peering.yaml" in no_crd
