"""The admission webhook's certificates, with no manual step: a self-signed CA kept in a Secret.

The first replica to start creates a CA and a serving certificate for the webhook Service's
names, stores both in one Secret (so every replica serves the same certificate), and patches
the CA into the `caBundle` of the chart's ValidatingWebhookConfiguration. The serving
certificate is renewed `renew_before` ahead of its expiry, signed by the same CA (nothing to
re-trust); the CA itself is replaced a year before it expires, and the bundle trusts the old CA
too until it does. Concurrent replicas write the Secret with a resourceVersion precondition:
the loser reads the winner's certificate.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tuneforge_operator.kubeapi import AlreadyExists, KubeApi, KubeApiError

CA_DAYS = 3650
CA_RENEW_BEFORE = dt.timedelta(days=365)
CERT_FILE, KEY_FILE, CA_FILE = "tls.crt", "tls.key", "ca.crt"
_CA_KEY, _OLD_CA = "ca.key", "ca-previous.crt"


@dataclass(frozen=True)
class Material:
    """PEM bytes of the CA (and the previous CA while it is valid) and the serving pair."""

    ca_cert: bytes
    ca_key: bytes
    cert: bytes
    key: bytes
    previous_ca: bytes = b""

    @property
    def ca_bundle(self) -> bytes:
        """What the API server must trust: the current CA, and the previous one if any."""
        return self.ca_cert + self.previous_ca

    def to_secret_data(self) -> dict[str, str]:
        """The Secret's `data` (base64)."""
        raw = {
            CERT_FILE: self.cert,
            KEY_FILE: self.key,
            CA_FILE: self.ca_cert,
            _CA_KEY: self.ca_key,
            _OLD_CA: self.previous_ca,
        }
        return {k: base64.b64encode(v).decode() for k, v in raw.items()}

    @classmethod
    def from_secret(cls, secret: dict[str, object]) -> Material | None:
        """Read back a Secret written by `to_secret_data` (None when a part is missing)."""
        data = secret.get("data") or {}
        assert isinstance(data, dict)
        if not all(data.get(k) for k in (CERT_FILE, KEY_FILE, CA_FILE, _CA_KEY)):
            return None
        part = {k: base64.b64decode(str(data.get(k) or "")) for k in data}
        return cls(part[CA_FILE], part[_CA_KEY], part[CERT_FILE], part[KEY_FILE], part[_OLD_CA])

    def write(self, directory: Path) -> None:
        """Write `tls.crt`, `tls.key` and `ca.crt` (only the ones that changed)."""
        directory.mkdir(parents=True, exist_ok=True)
        for name, content in (
            (CERT_FILE, self.cert),
            (KEY_FILE, self.key),
            (CA_FILE, self.ca_bundle),
        ):
            path = directory / name
            if not path.exists() or path.read_bytes() != content:
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(content)
                tmp.chmod(0o600)
                tmp.replace(path)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _key() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key, pem


def new_ca() -> tuple[bytes, bytes]:
    """A self-signed CA certificate and key (PEM), valid `CA_DAYS`."""
    key, key_pem = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tuneforge-webhook-ca")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def new_serving_cert(
    ca_cert_pem: bytes, ca_key_pem: bytes, hosts: Iterable[str], days: int
) -> tuple[bytes, bytes]:
    """A serving certificate for `hosts` (DNS names or IP addresses) signed by the CA."""
    hosts = list(hosts)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key, key_pem = _key()
    names = [_general_name(host) for host in hosts]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tuneforge-webhook")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _expires(pem: bytes) -> dt.datetime:
    return x509.load_pem_x509_certificate(pem).not_valid_after_utc


def _sans(pem: bytes) -> set[str]:
    ext = x509.load_pem_x509_certificate(pem).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    return {str(v) for v in ext.value.get_values_for_type(x509.DNSName)} | {
        str(v) for v in ext.value.get_values_for_type(x509.IPAddress)
    }


def renewed(
    current: Material | None,
    hosts: list[str],
    days: int,
    renew_before: dt.timedelta,
) -> Material | None:
    """New material when there is none, it expires within `renew_before` (the CA within a
    year), or it lacks one of `hosts`; None when `current` is good as it is."""
    now = _now()
    ca_cert, ca_key, previous = (
        (current.ca_cert, current.ca_key, current.previous_ca) if current else (b"", b"", b"")
    )
    if not current or _expires(ca_cert) - now < CA_RENEW_BEFORE:
        previous = ca_cert if current else b""
        ca_cert, ca_key = new_ca()
    elif previous and _expires(previous) < now:
        previous = b""
    unchanged_ca = current is not None and ca_cert == current.ca_cert
    if (
        unchanged_ca
        and current is not None
        and previous == current.previous_ca
        and _expires(current.cert) - now > renew_before
        and set(hosts) <= _sans(current.cert)
    ):
        return None
    cert, key = new_serving_cert(ca_cert, ca_key, hosts, days)
    return Material(ca_cert, ca_key, cert, key, previous)


def secret_path(namespace: str, name: str | None = None) -> str:
    """Path of the Secret collection, or of one Secret."""
    base = f"/api/v1/namespaces/{namespace}/secrets"
    return f"{base}/{name}" if name else base


def configuration_path(name: str) -> str:
    """Path of one ValidatingWebhookConfiguration."""
    return f"/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{name}"


async def ensure_secret(
    api: KubeApi,
    namespace: str,
    name: str,
    hosts: list[str],
    days: int,
    renew_before: dt.timedelta,
) -> Material:
    """The certificate in the Secret, created or renewed first when it needs to be."""
    for _ in range(5):
        secret = await api.get(secret_path(namespace, name))
        current = Material.from_secret(secret) if secret else None
        fresh = renewed(current, hosts, days, renew_before)
        if fresh is None and current is not None:
            return current
        assert fresh is not None
        body = {"type": "kubernetes.io/tls", "data": fresh.to_secret_data()}
        try:
            if secret is None:
                await api.create(
                    secret_path(namespace),
                    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, **body},
                )
            else:
                version = secret["metadata"]["resourceVersion"]
                await api.merge_patch(
                    secret_path(namespace, name),
                    {"metadata": {"resourceVersion": version}, **body},
                )
        except AlreadyExists:
            continue  # another replica created it first: use theirs
        except KubeApiError as error:
            if error.status != 409:
                raise
            continue  # another replica renewed it first: use theirs
        return fresh
    raise RuntimeError(f"Secret {namespace}/{name} kept changing under the webhook's writes")


async def patch_ca_bundle(api: KubeApi, configuration: str, bundle: bytes) -> bool:
    """Set `caBundle` on every webhook of the configuration; False when already set."""
    current = await api.get(configuration_path(configuration))
    if current is None:
        raise RuntimeError(
            f"ValidatingWebhookConfiguration {configuration} not found: install the chart with "
            "webhook.enabled=true, or set TUNEFORGE_OPERATOR_WEBHOOK_CONFIGURATION to its name"
        )
    encoded = base64.b64encode(bundle).decode()
    webhooks = current.get("webhooks") or []
    if all((w.get("clientConfig") or {}).get("caBundle") == encoded for w in webhooks):
        return False
    for webhook in webhooks:
        webhook.setdefault("clientConfig", {})["caBundle"] = encoded
    version = current["metadata"]["resourceVersion"]
    await api.merge_patch(
        configuration_path(configuration),
        {"metadata": {"resourceVersion": version}, "webhooks": webhooks},
    )
    return True
