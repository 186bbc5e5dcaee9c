"""The test node's DNS answers Service names with their ClusterIP and nothing else."""

from __future__ import annotations

import socket
import struct

import pytest

from tests.cluster.cluster_dns import answer, service_name

pytestmark = pytest.mark.cluster

NXDOMAIN = 3


def _query(name: str, qtype: int = 1) -> bytes:
    header = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return header + labels + struct.pack("!HH", qtype, 1)


def _lookup(service: str, namespace: str) -> str | None:
    return "10.0.0.7" if (service, namespace) == ("tf-operator", "ns1") else None


def _header(response: bytes) -> tuple[int, int, int]:
    ident, flags, _, answers, _, _ = struct.unpack("!HHHHHH", response[:12])
    return ident, flags & 0xF, answers


def test_a_service_name_resolves_to_its_cluster_ip() -> None:
    response = answer(_query("tf-operator.ns1.svc.cluster.local"), _lookup)
    assert _header(response) == (0x1234, 0, 1)
    assert socket.inet_ntoa(response[-4:]) == "10.0.0.7"


@pytest.mark.parametrize(
    "name",
    ["tf-operator.ns1.svc.ns1.svc.cluster.local", "other.ns1.svc.cluster.local", "example.com"],
)
def test_other_names_are_nxdomain(name: str) -> None:
    assert _header(answer(_query(name), _lookup)) == (0x1234, NXDOMAIN, 0)


def test_aaaa_for_a_service_is_an_empty_answer() -> None:
    assert _header(answer(_query("tf-operator.ns1.svc.cluster.local", 28), _lookup)) == (
        0x1234,
        0,
        0,
    )


def test_service_name_parsing() -> None:
    assert service_name("a.b.svc.cluster.local") == ("a", "b")
    assert service_name("a.svc.cluster.local") is None
