"""The webhook's decisions (`tuneforge_operator.admission.review`) and its certificate renewal
(`tuneforge_operator.webhook_tls.renewed`), on plain data; the API server calls them in
tests/integration/operator/test_admission_webhook.py."""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

import pytest
from cryptography import x509

from tests.unit.api.invalid_jobs import ADMISSION_CASES, INVALID_CASES, InvalidCase, valid_manifest
from tuneforge_operator import webhook_tls
from tuneforge_operator.admission import LAST_APPLIED, review
from tuneforge_operator.webhook_tls import Material, new_serving_cert, renewed


def _started(manifest: dict[str, Any]) -> dict[str, Any]:
    started = copy.deepcopy(manifest)
    started["status"] = {"rayJobName": manifest["metadata"]["name"]}
    return started


def test_a_valid_job_is_admitted() -> None:
    assert review("CREATE", valid_manifest(), None) is None


@pytest.mark.parametrize("case", INVALID_CASES + ADMISSION_CASES, ids=lambda c: c.id)
def test_create_is_refused_naming_the_field(case: InvalidCase) -> None:
    message = review("CREATE", case.manifest(), None)
    assert message is not None and case.field in message
    if case.message is not None:
        assert case.message in message


def test_a_misspelt_field_in_the_applied_configuration_is_refused() -> None:
    """The server pruned `alhpa` from the object; kubectl's annotation still has it."""
    sent = valid_manifest()
    sent["spec"]["lora"]["alhpa"] = 32
    stored = valid_manifest()
    stored["metadata"]["annotations"] = {LAST_APPLIED: json.dumps(sent)}
    assert review("CREATE", stored, None) == "spec.lora.alhpa: unknown field (did you mean alpha?)"


def test_an_unchanged_applied_configuration_is_not_checked_again() -> None:
    """A job applied before the webhook existed can still get finalizers and labels."""
    sent = valid_manifest()
    sent["spec"]["lora"]["alhpa"] = 32
    old = valid_manifest()
    old["metadata"]["annotations"] = {LAST_APPLIED: json.dumps(sent)}
    new = copy.deepcopy(old)
    new["metadata"]["finalizers"] = ["tuneforge.io/finalizer"]
    assert review("UPDATE", new, old) is None


def test_metadata_only_updates_and_deletions_of_a_stored_invalid_job_are_admitted() -> None:
    old = valid_manifest("x" * 70)
    new = copy.deepcopy(old)
    new["metadata"]["labels"] = {"team": "a"}
    assert review("UPDATE", new, old) is None
    new["metadata"]["deletionTimestamp"] = "2026-12-01T00:00:00Z"
    new["spec"]["method"] = "hypernetwork"
    assert review("UPDATE", new, old) is None


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("method",), "dreambooth", "spec.method"),
        (("dataset", "uri"), "s3://datasets/cats/", "spec.dataset"),
        (("training", "maxSteps"), 200, "spec.training"),
        (("baseModel",), {"uri": "s3://models/sd15"}, "spec.baseModel"),
        (("output", "registeredModel"), "cats-lora", "spec.output"),
    ],
)
def test_spec_changes_after_the_rayjob_exists_are_refused(
    path: tuple[str, ...], value: Any, field: str
) -> None:
    old = _started(valid_manifest())
    new = copy.deepcopy(old)
    node = new["spec"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    if path == ("method",):
        new["spec"].pop("lora")
    message = review("UPDATE", new, old)
    assert message is not None and field in message.split(":")[0].split(", ")
    assert "cannot change once the RayJob exists (status.rayJobName is valid-job)" in message


def test_suspend_and_spelt_out_defaults_may_change_after_the_rayjob_exists() -> None:
    old = _started(valid_manifest())
    new = copy.deepcopy(old)
    new["spec"]["suspend"] = True
    new["spec"]["training"]["batchSize"] = 1  # the default: no change to what the RayJob runs
    assert review("UPDATE", new, old) is None


def test_spec_may_change_before_the_rayjob_exists() -> None:
    old = valid_manifest()
    new = copy.deepcopy(old)
    new["spec"]["training"]["maxSteps"] = 200
    assert review("UPDATE", new, old) is None


def test_delete_and_connect_are_not_reviewed() -> None:
    assert review("DELETE", None, valid_manifest("x" * 70)) is None


def _material(days_left: float, hosts: list[str]) -> Material:
    fresh = renewed(None, hosts, 90, dt.timedelta(days=30))
    assert fresh is not None
    if days_left >= 89:
        return fresh
    # Re-sign the serving certificate with a shorter life, same CA.
    cert, key = new_serving_cert(fresh.ca_cert, fresh.ca_key, hosts, int(days_left))
    return Material(fresh.ca_cert, fresh.ca_key, cert, key)


def test_new_certificate_names_every_host_and_chains_to_the_ca() -> None:
    material = renewed(None, ["tuneforge-webhook.ns.svc", "127.0.0.1"], 90, dt.timedelta(days=30))
    assert material is not None
    cert = x509.load_pem_x509_certificate(material.cert)
    ca = x509.load_pem_x509_certificate(material.ca_cert)
    cert.verify_directly_issued_by(ca)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["tuneforge-webhook.ns.svc"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert material.ca_bundle == material.ca_cert


def test_a_current_certificate_is_kept() -> None:
    material = _material(90, ["a.svc"])
    assert renewed(material, ["a.svc"], 90, dt.timedelta(days=30)) is None


def test_a_certificate_near_expiry_is_renewed_by_the_same_ca() -> None:
    material = _material(10, ["a.svc"])
    fresh = renewed(material, ["a.svc"], 90, dt.timedelta(days=30))
    assert fresh is not None and fresh.ca_cert == material.ca_cert and fresh.cert != material.cert
    x509.load_pem_x509_certificate(fresh.cert).verify_directly_issued_by(
        x509.load_pem_x509_certificate(material.ca_cert)
    )


def test_a_new_host_gets_a_new_certificate() -> None:
    material = _material(90, ["a.svc"])
    fresh = renewed(material, ["a.svc", "b.svc"], 90, dt.timedelta(days=30))
    assert fresh is not None and fresh.ca_cert == material.ca_cert


def test_the_secret_round_trips() -> None:
    material = _material(90, ["a.svc"])
    assert Material.from_secret({"data": material.to_secret_data()}) == material
    assert Material.from_secret({"data": {}}) is None


def test_a_ca_near_expiry_is_replaced_and_the_bundle_trusts_both_until_the_old_one_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(webhook_tls, "CA_DAYS", 200)  # inside the one-year replacement window
    old = renewed(None, ["a.svc"], 90, dt.timedelta(days=30))
    assert old is not None
    monkeypatch.setattr(webhook_tls, "CA_DAYS", 3650)
    fresh = renewed(old, ["a.svc"], 90, dt.timedelta(days=30))
    assert fresh is not None and fresh.ca_cert != old.ca_cert
    assert fresh.previous_ca == old.ca_cert
    assert fresh.ca_bundle == fresh.ca_cert + old.ca_cert
    x509.load_pem_x509_certificate(fresh.cert).verify_directly_issued_by(
        x509.load_pem_x509_certificate(fresh.ca_cert)
    )
    assert renewed(fresh, ["a.svc"], 90, dt.timedelta(days=30)) is None
