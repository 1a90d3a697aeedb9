"""Published ports: podman's ``-p [IP:][HOSTPORT:]CTRPORT[/PROTO]`` and the host side of forwarding.

There is no bridge on these machines and traffic may only go to loopback, so
ports are published the way rootless podman does it: a forwarder (see
:mod:`kernelext.oci.forwarder`) accepts on the host's ``127.0.0.1:HOSTPORT``
and connects, inside the container's network namespace, to its
``127.0.0.1:CTRPORT``. The host sockets are bound here, by kernelext itself,
so a taken port fails up front with podman's message and nothing half set up.

Only ``127.0.0.1`` may be a host address (omitted means it). ``--network none``
(the default: the container's own namespace) accepts ports; ``host`` has no
namespace to forward into and refuses them.
"""

from __future__ import annotations

import enum
import errno
import os
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from kernelext.errors import InvalidArgumentError, NetworkError

#: The one host address ports may be published on here (the issue's loopback-only rule).
PUBLISH_HOST_IP = "127.0.0.1"
#: podman's way of saying "all addresses", refused here like any non-loopback address.
ALL_ADDRESSES = "0.0.0.0"
MAX_PORT = 65535
#: A host port of 0 asks for a free one, as an omitted one does (docker's spelling; podman's
#: parser refuses 0, but the issue's ``-p 127.0.0.1:0:80`` asks for it).
FREE_PORT = "0"
#: Pending connections a published TCP port queues before the forwarder accepts them.
LISTEN_BACKLOG = 4096


class Protocol(enum.Enum):
    TCP = "tcp"
    UDP = "udp"

    @property
    def socket_type(self) -> int:
        return socket.SOCK_STREAM if self is Protocol.TCP else socket.SOCK_DGRAM


@dataclass(frozen=True)
class PortMapping:
    """One published port: host ``host_ip:host_port`` to the container's ``container_port``.

    ``host_port`` 0 asks for a free port, chosen when the container is created
    (as podman does) and kept from then on, across restarts and restores.
    """

    container_port: int
    host_port: int = 0
    host_ip: str = PUBLISH_HOST_IP
    protocol: Protocol = Protocol.TCP

    @property
    def key(self) -> str:
        """podman's ``80/tcp``."""
        return f"{self.container_port}/{self.protocol.value}"

    def __str__(self) -> str:
        """podman port's ``80/tcp -> 127.0.0.1:8080``."""
        return f"{self.key} -> {self.host_ip}:{self.host_port}"

    def to_json(self) -> dict[str, Any]:
        return {"container_port": self.container_port, "host_port": self.host_port, "host_ip": self.host_ip,
                "protocol": self.protocol.value}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PortMapping:
        return cls(int(data["container_port"]), int(data["host_port"]), str(data["host_ip"]),
                   Protocol(data["protocol"]))


# ----------------------------------------------------------------- parsing
def _port_range(text: str) -> tuple[int, int]:
    """podman's parseAndValidateRange: ``start[-end]`` → (start, length)."""
    parts = text.split("-")
    if len(parts) > 2:
        raise InvalidArgumentError("invalid port format - port ranges are formatted as startPort-stopPort")
    if parts[0] == "":
        raise InvalidArgumentError("port numbers cannot be negative")
    start = _port_number(parts[0])
    if len(parts) == 1:
        return start, 1
    if parts[1] == "":
        raise InvalidArgumentError("must provide ending number for port range")
    end = _port_number(parts[1])
    if end <= start:
        raise InvalidArgumentError(f"the end port of a range must be higher than the start port - "
                                   f"{end} is not higher than {start}")
    return start, end - start + 1


def _port_number(text: str) -> int:
    try:
        number = int(text, 10)
    except ValueError:
        raise InvalidArgumentError(f'invalid port number: strconv.Atoi: parsing "{text}": invalid syntax') from None
    if not 1 <= number <= MAX_PORT:
        raise InvalidArgumentError(f"port numbers must be between 1 and 65535 (inclusive), got {number}")
    return number


def _protocols(text: str | None) -> list[Protocol]:
    if text is None:
        return [Protocol.TCP]
    if text == "":
        raise InvalidArgumentError("must provide a non-empty protocol to publish")
    found: list[Protocol] = []
    for name in text.lower().split(","):
        if name == "sctp":
            raise InvalidArgumentError("protocol SCTP is not allowed for exposed ports")
        try:
            protocol = Protocol(name or "tcp")
        except ValueError:
            raise InvalidArgumentError(f'unrecognized protocol "{name}" in port mapping') from None
        if protocol not in found:
            found.append(protocol)
    return found


def _host_ip(text: str | None) -> str:
    if text is None:
        return PUBLISH_HOST_IP
    if text == "":
        raise InvalidArgumentError("must provide a non-empty container host IP to publish")
    try:
        import ipaddress  # only for a -p with an address: not on the CLI's start-up path

        address = str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        raise InvalidArgumentError(f'cannot parse "{text}" as an IP address') from None
    if address != PUBLISH_HOST_IP:
        raise InvalidArgumentError(f"cannot publish on host IP {address}: only {PUBLISH_HOST_IP} (loopback) "
                                   "is allowed on this host")
    return address


def parse_publish(spec: str) -> list[PortMapping]:
    """One ``-p`` value, podman's grammar: ``[[IP:][HOSTPORT]:]CTRPORT[-END][/PROTO[,PROTO]]``."""
    body, *proto = spec.split("/")
    if len(proto) > 1:
        raise InvalidArgumentError("invalid port format - protocol can only be specified once")
    if body.startswith("["):  # an IPv6 host address: never loopback's 127.0.0.1
        _host_ip(body[1:].partition("]")[0])
    parts = body.split(":")
    if len(parts) > 3:
        raise InvalidArgumentError("invalid port format - format is [[hostIP:]hostPort:]containerPort")
    ctr_text = parts[-1]
    host_text = parts[-2] if len(parts) >= 2 else None
    host_ip = _host_ip(parts[0] if len(parts) == 3 else None)
    if ctr_text == "":
        raise InvalidArgumentError("must provide a non-empty container port to publish")
    try:
        ctr_start, length = _port_range(ctr_text)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"parsing container port: {exc}") from None
    host_start = 0
    if host_text and host_text != FREE_PORT:
        try:
            host_start, host_length = _port_range(host_text)
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"parsing host port: {exc}") from None
        if host_length != length:
            raise InvalidArgumentError(f"host and container port ranges have different lengths: "
                                       f"{host_length} vs {length}")
    return [PortMapping(ctr_start + i, host_start + i if host_start else 0, host_ip, protocol)
            for protocol in _protocols(proto[0] if proto else None) for i in range(length)]


def parse_all(specs: Iterable[str | PortMapping]) -> list[PortMapping]:
    """``-p`` values and :class:`PortMapping` objects, checked together (podman's conflict rule)."""
    mappings: list[PortMapping] = []
    for spec in specs:
        if isinstance(spec, PortMapping):
            _port_number(str(spec.container_port))
            if spec.host_port:
                _port_number(str(spec.host_port))
            mappings.append(replace(spec, host_ip=_host_ip(spec.host_ip)))
        else:
            mappings.extend(parse_publish(spec))
    taken: dict[tuple[int, Protocol], int] = {}
    for mapping in mappings:
        if not mapping.host_port:
            continue
        previous = taken.setdefault((mapping.host_port, mapping.protocol), mapping.container_port)
        if previous != mapping.container_port:
            raise InvalidArgumentError(f"conflicting port mappings for host port {mapping.host_port} "
                                       f"(protocol {mapping.protocol.value})")
    return list(dict.fromkeys(mappings))  # an exact repeat is one mapping


#: podman's create warning for ``-p`` with a network mode that has no ports of its own.
PORTS_DISCARDED = ("Port mappings have been discarded as one of the Host, Container, Pod, and None network modes "
                   "are in use")


def publish(specs: Iterable[str | PortMapping], *, host_network: bool) -> list[PortMapping]:
    """A container's mappings from ``-p`` values, checked, host ports assigned; with the host's network
    none: podman discards them (``PORTS_DISCARDED``)."""
    mappings = parse_all(specs)
    return [] if host_network else assign_free_ports(mappings)


def assign_free_ports(mappings: list[PortMapping]) -> list[PortMapping]:
    """Host port 0 → a port free right now, recorded for good (podman assigns it at create too)."""
    assigned = []
    for mapping in mappings:
        if not mapping.host_port:
            with socket.socket(socket.AF_INET, mapping.protocol.socket_type) as probe:
                probe.bind((mapping.host_ip, 0))
                mapping = replace(mapping, host_port=probe.getsockname()[1])
        assigned.append(mapping)
    return assigned


# ------------------------------------------------------------- host sockets
def _bind(mapping: PortMapping) -> socket.socket:
    sock = socket.socket(socket.AF_INET, mapping.protocol.socket_type)
    try:
        if mapping.protocol is Protocol.TCP:
            # As Go's listeners do: connections of a previous run in TIME_WAIT must not block the port.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((mapping.host_ip, mapping.host_port))
        if mapping.protocol is Protocol.TCP:
            sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        reason = os.strerror(exc.errno or errno.EIO)
        proto = mapping.protocol.value
        raise NetworkError(f"cannot listen on the {proto.upper()} port: listen {proto}4 "
                           f"{mapping.host_ip}:{mapping.host_port}: bind: {reason[:1].lower()}{reason[1:]}",
                           operation="publish") from None
    return sock


@contextmanager
def bound(mappings: list[PortMapping]) -> Iterator[list[socket.socket]]:
    """The host sockets of ``mappings``, all bound or none; closed on leaving (the forwarder keeps its copies)."""
    sockets: list[socket.socket] = []
    try:
        for mapping in mappings:
            sockets.append(_bind(mapping))
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


# ------------------------------------------------------------------ display
def inspect_ports(mappings: Iterable[PortMapping]) -> dict[str, list[dict[str, str]]]:
    """podman's ``NetworkSettings.Ports``: ``{"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}``."""
    ports: dict[str, list[dict[str, str]]] = {}
    for mapping in mappings:
        ports.setdefault(mapping.key, []).append({"HostIp": mapping.host_ip, "HostPort": str(mapping.host_port)})
    return ports


def select(mappings: Iterable[PortMapping], private: str) -> list[PortMapping]:
    """podman port's ``CONTAINER PRIVATE_PORT[/PROTO]`` filter (tcp when no protocol is given)."""
    port_text, _, proto_text = private.partition("/")
    port = _port_number(port_text)
    protocol = _protocols(proto_text or None)[0]
    found = [m for m in mappings if m.container_port == port and m.protocol is protocol]
    if not found:
        raise InvalidArgumentError(f'failed to find published port "{port}/{protocol.value}"')
    return found
