"""Published ports and ReloadNetwork (issue #8): the -p grammar, and forwarding on real runc + conmon."""

from __future__ import annotations

import io
import signal
import socket
import subprocess
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kernelext import (
    Container,
    ContainerStateError,
    InvalidArgumentError,
    NetworkError,
    PortMapping,
    Protocol,
    Runtime,
)
from kernelext import ContainerStatus as S
from kernelext.core.ports import inspect_ports, parse_all, parse_publish, select
from kernelext.core.state import ContainerConfig

from conftest import Store, forwarders, needs_root, wait_until

PAGE = b"hello from the container\n"
HTTPD = f"mkdir -p /www && printf '{PAGE.decode().strip()}\\n' > /www/index.html && exec httpd -f -p 80 -h /www"
REQUESTS = 200
#: Requests in flight at once: far more than busybox httpd's listen backlog, not so many that its dropped
#: SYNs wait for the kernel's minute of retransmissions on a loaded machine.
IN_FLIGHT = 32


# ------------------------------------------------------------------ parsing
@pytest.mark.parametrize(("spec", "expected"), [
    ("8080:80", [PortMapping(80, 8080)]),
    ("80", [PortMapping(80, 0)]),
    ("127.0.0.1::80", [PortMapping(80, 0)]),
    ("127.0.0.1:0:80", [PortMapping(80, 0)]),
    ("127.0.0.1:8080:80/udp", [PortMapping(80, 8080, protocol=Protocol.UDP)]),
    ("8080-8081:80-81", [PortMapping(80, 8080), PortMapping(81, 8081)]),
    ("53/tcp,udp", [PortMapping(53, 0), PortMapping(53, 0, protocol=Protocol.UDP)]),
])
def test_publish_grammar(spec: str, expected: list[PortMapping]) -> None:
    assert parse_publish(spec) == expected


@pytest.mark.parametrize(("spec", "message"), [
    ("abc", 'parsing container port: invalid port number: strconv.Atoi: parsing "abc": invalid syntax'),
    ("70000", "parsing container port: port numbers must be between 1 and 65535 (inclusive), got 70000"),
    ("8080:", "must provide a non-empty container port to publish"),
    ("1:2:3:4", "invalid port format - format is [[hostIP:]hostPort:]containerPort"),
    ("80/tcp/udp", "invalid port format - protocol can only be specified once"),
    ("80/", "must provide a non-empty protocol to publish"),
    ("80/bogus", 'unrecognized protocol "bogus" in port mapping'),
    ("80/sctp", "protocol SCTP is not allowed for exposed ports"),
    ("8080-8081:80", "host and container port ranges have different lengths: 2 vs 1"),
    ("81-80", ("parsing container port: the end port of a range must be higher than the start port - "
              "80 is not higher than 81")),
    ("nohost:8080:80", 'cannot parse "nohost" as an IP address'),
    (":8080:80", "must provide a non-empty container host IP to publish"),
    ("10.1.2.3:8080:80", "cannot publish on host IP 10.1.2.3: only 127.0.0.1 (loopback) is allowed on this host"),
    ("0.0.0.0:8080:80", "cannot publish on host IP 0.0.0.0: only 127.0.0.1"),
    ("[::1]:8080:80", "cannot publish on host IP ::1: only 127.0.0.1"),
])
def test_invalid_publish_specs_give_podmans_messages(spec: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        parse_publish(spec)
    assert str(caught.value).startswith(message)


def test_one_host_port_for_two_container_ports_conflicts() -> None:
    with pytest.raises(InvalidArgumentError, match=r"^conflicting port mappings for host port 8080 \(protocol tcp\)$"):
        parse_all(["8080:80", "8080:81"])
    assert parse_all(["8080:80", "8080:80", "8080:80/udp"]) == [  # a repeat is one; udp is another port
        PortMapping(80, 8080), PortMapping(80, 8080, protocol=Protocol.UDP)]


def test_display_formats_are_podmans() -> None:
    mappings = [PortMapping(80, 8080), PortMapping(80, 8081), PortMapping(53, 5353, protocol=Protocol.UDP)]
    assert [str(m) for m in mappings] == ["80/tcp -> 127.0.0.1:8080", "80/tcp -> 127.0.0.1:8081",
                                          "53/udp -> 127.0.0.1:5353"]
    assert inspect_ports(mappings) == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"},
                                                  {"HostIp": "127.0.0.1", "HostPort": "8081"}],
                                       "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}]}
    assert select(mappings, "53/udp") == [mappings[2]]
    with pytest.raises(InvalidArgumentError, match='failed to find published port "81/tcp"'):
        select(mappings, "81")


def test_config_keeps_ports_and_reads_configs_from_before_them() -> None:
    config = ContainerConfig(id="x", name="n", image_id="i", image_name="busybox", command=["true"],
                             ports=[PortMapping(80, 8080, protocol=Protocol.UDP)])
    data = config.to_json()
    assert ContainerConfig.from_json(data) == config
    del data["ports"]
    assert ContainerConfig.from_json(data).ports == []


# --------------------------------------------------------------- forwarding
def fetch(port: int, timeout: float = 10.0) -> bytes:
    """One HTTP/1.0 GET through 127.0.0.1:port; the body."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    response = b"".join(chunks)
    assert response.startswith(b"HTTP/1.1 200 OK"), response[:200]
    return response.partition(b"\r\n\r\n")[2]


def serves(port: int) -> bool:
    try:
        return fetch(port, timeout=2) == PAGE
    except (OSError, AssertionError):
        return False


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:  # accepted by a forwarder on its way out: not refused yet
        return False
    return False


def web(rt: Runtime, publish: str = "127.0.0.1:0:80", **create: object) -> tuple[Container, int]:
    ctr = rt.run("busybox", ["sh", "-c", HTTPD], publish=[publish], **create)
    port = ctr.ports[0].host_port
    assert wait_until(lambda: serves(port), timeout=10), "the published port never served the page"
    return ctr, port


def test_published_port_serves_many_concurrent_requests(store: Store) -> None:
    ctr, port = web(store.runtime)
    assert port > 0 and ctr.inspect()["NetworkSettings"]["Ports"] == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        # A generous timeout: busybox httpd forks per request, and a loaded 2-core machine queues them.
        bodies = list(pool.map(lambda _: fetch(port, timeout=60.0), range(REQUESTS)))
    assert bodies == [PAGE] * REQUESTS
    assert len(forwarders()) >= 1  # one process for the container, whatever the number of connections


def test_stop_closes_the_port_and_its_connections_within_a_second(store: Store) -> None:
    ctr, port = web(store.runtime)
    idle = socket.create_connection(("127.0.0.1", port), timeout=5)  # httpd waits for a request on it
    started = time.monotonic()
    ctr.stop(timeout=0)
    assert wait_until(lambda: refused(port), timeout=1.0, interval=0.01)
    assert time.monotonic() - started < 1.0
    idle.settimeout(1.0)
    try:
        assert idle.recv(1) == b""
    except ConnectionResetError:
        pass  # closed either way
    idle.close()


def test_a_container_that_dies_takes_its_port_with_it(store: Store) -> None:
    """No kernelext call in between: the forwarder watches the container's process itself."""
    ctr, port = web(store.runtime)
    store.runtime.oci.kill_container(ctr.id, signal.SIGKILL)
    assert wait_until(lambda: refused(port), timeout=1.0, interval=0.01)


def test_reload_network_keeps_the_process_and_serves_again(store: Store) -> None:
    ctr, port = web(store.runtime)
    pid, forwarder = ctr.state.pid, ctr.state.forwarder_pid
    ctr.reload_network()
    assert ctr.state.forwarder_pid not in (0, forwarder)
    assert serves(port) and ctr.reload().state.pid == pid and ctr.status is S.RUNNING
    assert forwarder not in forwarders()


def test_reload_network_needs_a_configured_network(store: Store) -> None:
    ctr = store.runtime.create("busybox", ["sh", "-c", HTTPD], publish=["80"])
    with pytest.raises(ContainerStateError, match="cannot reload network unless container network has been "
                                                  "configured: container state improper"):
        ctr.reload_network()
    ctr.init()  # created in runc: podman's rule allows it, before the process runs
    ctr.reload_network()
    assert ctr.state.forwarder_pid in forwarders()
    ctr.remove(force=True)


def test_taken_host_port_fails_with_podmans_message_and_leaves_nothing(store: Store) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        proc = store.cli("run", "-d", "--name", "late", "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c", HTTPD)
        assert proc.returncode == 126  # podman's run: a container that cannot be started
        assert proc.stderr == (f"Error: cannot listen on the TCP port: listen tcp4 127.0.0.1:{port}: "
                               "bind: address already in use\n")
        ctr = store.runtime.get("late")  # podman's run leaves the created container
        assert ctr.status is S.CONFIGURED and ctr.state.forwarder_pid == 0
        assert store.runc_containers() == [] and not ctr.state.runtime_mounted
        with pytest.raises(NetworkError, match="address already in use"):
            ctr.start()
    ctr.start()  # the port is free again
    assert wait_until(lambda: serves(port))


@pytest.mark.parametrize(("argv", "message"), [
    (("-p", "99999:80"), "parsing host port: port numbers must be between 1 and 65535 (inclusive), got 99999"),
    (("-p", "192.168.1.1:8080:80"), "cannot publish on host IP 192.168.1.1: only 127.0.0.1 (loopback) is allowed"),
])
def test_refused_mappings_are_one_line_and_125(store: Store, argv: tuple[str, ...], message: str) -> None:
    proc = store.cli("run", "-d", *argv, "busybox", "true")
    assert proc.returncode == 125 and proc.stderr.startswith(f"Error: {message}")
    assert len(proc.stderr.splitlines()) == 1 and store.runtime.list() == []


def test_host_network_discards_ports_with_podmans_warning(store: Store) -> None:
    proc = store.cli("run", "--rm", "-p", "8080", "--net=host", "busybox", "echo", "ran")
    assert (proc.returncode, proc.stdout) == (0, "ran\n"), proc.stderr
    assert proc.stderr == ("Port mappings have been discarded as one of the Host, Container, Pod, and None "
                           "network modes are in use\n")
    bad = store.cli("run", "--rm", "-p", "99999:80", "--net=host", "busybox", "true")  # still checked
    assert bad.returncode == 125 and "port numbers must be between 1 and 65535" in bad.stderr
    ctr = store.runtime.create("busybox", ["true"], network="host", publish=["80"])
    assert ctr.ports == [] and ctr.warnings and ctr.inspect()["NetworkSettings"]["Ports"] == {}


def test_cli_port_and_network_reload(store: Store) -> None:
    proc = store.cli("run", "-d", "--name", "web", "-p", "127.0.0.1::80", "-p", "5353:53/udp", "busybox", "sh",
                     "-c", HTTPD)
    assert proc.returncode == 0, proc.stderr
    ctr = store.runtime.get("web")
    port = ctr.ports[0].host_port
    assert store.cli("port", "web").stdout == f"80/tcp -> 127.0.0.1:{port}\n53/udp -> 127.0.0.1:5353\n"
    assert store.cli("port", "web", "80").stdout == f"127.0.0.1:{port}\n"
    missing = store.cli("port", "web", "81")
    assert (missing.returncode, missing.stderr) == (125, 'Error: failed to find published port "81/tcp"\n')
    assert wait_until(lambda: serves(port))
    reload = store.cli("network", "reload", "web")
    assert (reload.returncode, reload.stdout) == (0, f"{ctr.id}\n")
    assert serves(port)


#: A UDP echo server (busybox has none): built static on the host and copied into the container.
UDP_ECHO_C = r"""
#include <netinet/in.h>
#include <sys/socket.h>
int main(void) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(53)}, peer;
    bind(s, (struct sockaddr *)&a, sizeof a);
    char buf[2048];
    for (;;) {
        socklen_t len = sizeof peer;
        long n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&peer, &len);
        if (n >= 0) sendto(s, buf, n, 0, (struct sockaddr *)&peer, len);
    }
}
"""


def test_udp_is_forwarded(store: Store, tmp_path: Path) -> None:
    source, binary = tmp_path / "udpecho.c", tmp_path / "udpecho"
    source.write_text(UDP_ECHO_C)
    subprocess.run(["cc", "-static", "-O2", "-o", str(binary), str(source)], check=True)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        tar.add(binary, arcname="udpecho")
    archive.seek(0)
    ctr = store.runtime.create("busybox", ["/udpecho"], publish=["127.0.0.1::53/udp"])
    ctr.put_archive("/", archive)
    ctr.start()
    port = ctr.ports[0].host_port
    clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]  # two flows, kept apart
    try:
        for client in clients:
            client.settimeout(0.5)

        def echoes(client: socket.socket, text: bytes) -> bool:
            client.sendto(text, ("127.0.0.1", port))
            try:
                return client.recv(100) == text
            except TimeoutError:
                return False
        assert wait_until(lambda: echoes(clients[0], b"ping"), timeout=10)
        assert echoes(clients[1], b"pong") and echoes(clients[0], b"ping again")
    finally:
        for client in clients:
            client.close()


# --------------------------------------------------------- checkpoint/restore
def _wait_for_go(path: str = "/www/go") -> str:
    """A web server that starts listening only once ``path`` exists: after a restore, in the new namespace."""
    return f"mkdir -p /www && printf '{PAGE.decode().strip()}\\n' > /www/index.html && " \
           f"while [ ! -e {path} ]; do sleep 0.05; done; exec httpd -f -p 80 -h /www"


@needs_root
def test_restore_forwards_the_same_host_port_into_the_new_namespace(store: Store) -> None:
    """A restore runs in a fresh network namespace (kernelext's, loopback up): the forwarder follows it there."""
    ctr = store.runtime.run("busybox", ["sh", "-c", _wait_for_go()], publish=["127.0.0.1::80"])
    port = ctr.ports[0].host_port
    ctr.checkpoint()
    assert ctr.status is S.EXITED and ctr.state.forwarder_pid == 0 and refused(port)
    ctr.restore()
    assert ctr.state.forwarder_pid in forwarders()
    ctr.exec_run(["touch", "/www/go"])
    assert wait_until(lambda: serves(port))


@needs_root
def test_checkpoint_restore_in_place_serves_on_the_same_port(store: Store) -> None:
    ctr, port = web(store.runtime)
    ctr.checkpoint()
    assert refused(port)
    ctr.restore()
    assert ctr.state.restored and wait_until(lambda: serves(port))


@needs_root
def test_exported_checkpoint_restores_under_a_new_name_with_its_ports(store: Store, tmp_path: Path) -> None:
    ctr, port = web(store.runtime)
    archive = tmp_path / "web.tar.zst"
    ctr.checkpoint(export=archive)
    ctr.remove()
    copy = store.runtime.restore_from_archive(archive, name="copy")
    assert copy.ports == [PortMapping(80, port)] and wait_until(lambda: serves(port))
    copy.remove(force=True)
    assert refused(port)
    cli = store.cli("container", "restore", "--import", str(archive), "--name", "moved", "-p", "127.0.0.1::80")
    assert cli.returncode == 0, cli.stderr
    moved = store.runtime.get("moved")
    new_port = moved.ports[0].host_port
    assert new_port != port and wait_until(lambda: serves(new_port)) and refused(port)


def test_restore_publish_needs_import(store: Store) -> None:
    proc = store.cli("container", "restore", "-p", "8080:80", "anything")
    assert (proc.returncode, proc.stderr) == (125, "Error: --publish can only be used with image or --import\n")
