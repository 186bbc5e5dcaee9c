"""A minimal cluster DNS for the test node: `<service>.<namespace>.svc.cluster.local` → ClusterIP.

No CoreDNS image can reach this machine, so this stands in for its `kubernetes` plugin: it
answers A queries for Services from the API (UDP, on the node's address, which the kubelet
hands pods as `--cluster-dns`), NXDOMAIN for other names, and no records for other types
of a Service's name.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable

CLUSTER_DOMAIN = "cluster.local"
_TTL_S = 5
_RCODE_NXDOMAIN = 3
_TYPE_A = 1


def _question(packet: bytes) -> tuple[str, int, int]:
    """The first question's name, type and the offset after it."""
    labels, offset = [], 12
    while packet[offset]:
        length = packet[offset]
        labels.append(packet[offset + 1 : offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length
    qtype = struct.unpack("!H", packet[offset + 1 : offset + 3])[0]
    return ".".join(labels).lower(), qtype, offset + 5


def service_name(name: str) -> tuple[str, str] | None:
    """(service, namespace) when name is `<service>.<namespace>.svc.cluster.local`."""
    suffix = f".svc.{CLUSTER_DOMAIN}"
    if not name.endswith(suffix):
        return None
    parts = name[: -len(suffix)].split(".")
    return (parts[0], parts[1]) if len(parts) == 2 else None


def answer(packet: bytes, lookup: Callable[[str, str], str | None]) -> bytes:
    """The response to one query; lookup(service, namespace) gives a ClusterIP or None."""
    name, qtype, end = _question(packet)
    target = service_name(name)
    address = lookup(*target) if target else None
    flags = 0x8180 if address else 0x8180 | _RCODE_NXDOMAIN
    records = b""
    if address and qtype == _TYPE_A:
        records = b"\xc0\x0c" + struct.pack("!HHIH", _TYPE_A, 1, _TTL_S, 4)
        records += socket.inet_aton(address)
    header = packet[:2] + struct.pack("!HHHHH", flags, 1, 1 if records else 0, 0, 0)
    return header + packet[12:end] + records


class ClusterDns:
    """A UDP DNS server thread on (address, 53) answering from `lookup`."""

    def __init__(self, address: str, lookup: Callable[[str, str], str | None]) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind((address, 53))
        self._lookup = lookup
        self._thread = threading.Thread(target=self._serve, name="cluster-dns", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                packet, client = self._socket.recvfrom(512)
            except OSError:
                return  # closed
            try:
                self._socket.sendto(answer(packet, self._lookup), client)
            except (OSError, IndexError, struct.error):
                continue  # a malformed query gets no answer

    def close(self) -> None:
        """Stop answering and release the port."""
        self._socket.close()
        self._thread.join(timeout=5)
