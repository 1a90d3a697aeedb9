"""podman's connection store and URL rules (pure logic; tests/test_remote.py checks them against podman)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from kernelext.connections import Connection, ConnectionStore, check_uri, dump_toml, resolve
from kernelext.errors import InvalidArgumentError


@pytest.mark.parametrize("uri", ["unix:///run/podman/podman.sock", "ssh://root@host:2222/run/podman/podman.sock",
                                 "ssh://host/run/podman.sock", "tcp://127.0.0.1:8080", "tcp://localhost:1",
                                 "tcp://[::1]:8080"])
def test_urls_podman_accepts(uri: str) -> None:
    assert check_uri(uri) == uri


@pytest.mark.parametrize(("uri", "reason"), [("tcp://10.0.0.5:8080", "refused off loopback"),
                                             ("tcp://example.com:8080", "refused off loopback"),
                                             ("http://127.0.0.1:8080", "unsupported connection scheme"),
                                             ("unix://", "needs the socket's path"), ("ssh:///x.sock", "needs a host")])
def test_urls_refused_in_one_line(uri: str, reason: str) -> None:
    with pytest.raises(InvalidArgumentError, match=reason) as caught:
        check_uri(uri)
    assert "\n" not in str(caught.value)


def test_podman4_store_keeps_the_rest_of_containers_conf(tmp_path: Path) -> None:
    conf = tmp_path / "containers.conf"
    conf.write_text('[containers]\ndefault_ulimits = ["nofile=20000:20000"]\n[engine]\nruntime = "runc"\n'
                    '[engine.runtimes]\nrunc = ["/usr/bin/runc"]\n')
    store = ConnectionStore(conf, tmp_path / "none.json", json_store=False)
    store.add("a", "unix:///a.sock")
    store.add("b", "ssh://u@h:22/b.sock", "/key")
    doc = tomllib.loads(conf.read_text())
    assert doc["containers"]["default_ulimits"] == ["nofile=20000:20000"]
    assert doc["engine"]["runtime"] == "runc" and doc["engine"]["runtimes"] == {"runc": ["/usr/bin/runc"]}
    assert doc["engine"]["active_service"] == "a"  # the first connection is the default (podman's rule)
    assert doc["engine"]["service_destinations"] == {"a": {"uri": "unix:///a.sock"},
                                                     "b": {"uri": "ssh://u@h:22/b.sock", "identity": "/key"}}
    store.rename("a", "c")
    store.set_default("b")
    store.remove("c")
    assert store.list() == [Connection("b", "ssh://u@h:22/b.sock", "/key", True)]
    store.remove(all=True)
    assert store.list() == [] and "active_service" not in conf.read_text()
    with pytest.raises(InvalidArgumentError, match='connection "b" not found'):
        store.set_default("b")


def test_podman5_store_written_and_read(tmp_path: Path) -> None:
    path = tmp_path / "podman-connections.json"
    store = ConnectionStore(tmp_path / "containers.conf", path, json_store=True)
    store.add("x", "unix:///x.sock", default=True)
    store.add("y", "unix:///y.sock")
    doc = json.loads(path.read_text())
    assert doc["Connection"] == {"Default": "x", "Connections": {
        "x": {"URI": "unix:///x.sock", "Identity": "", "IsMachine": False},
        "y": {"URI": "unix:///y.sock", "Identity": "", "IsMachine": False}}}
    assert not (tmp_path / "containers.conf").exists()
    # a containers.conf connection is read too; podman 5's entry of the same name wins
    (tmp_path / "containers.conf").write_text('[engine.service_destinations.y]\nuri = "unix:///old.sock"\n'
                                              '[engine.service_destinations.z]\nuri = "unix:///z.sock"\n')
    assert [(c.name, c.uri, c.default) for c in store.list()] == [
        ("x", "unix:///x.sock", True), ("y", "unix:///y.sock", False), ("z", "unix:///z.sock", False)]


def test_resolution_order(tmp_path: Path) -> None:
    store = ConnectionStore(tmp_path / "c.conf", tmp_path / "c.json", json_store=True)
    store.add("named", "ssh://u@h/p.sock", "/named-key")
    env = {"CONTAINER_HOST": "unix:///env.sock", "CONTAINER_SSHKEY": "/env-key"}
    assert resolve(environ={}, store=store) is None  # nothing asked: the local engine
    assert resolve(environ=env, store=store) == Connection("", "unix:///env.sock", "/env-key")
    assert resolve(environ={**env, "CONTAINER_CONNECTION": "named"}, store=store).uri == "ssh://u@h/p.sock"
    assert resolve(url="unix:///flag.sock", environ={**env, "CONTAINER_CONNECTION": "named"},
                   store=store).uri == "unix:///flag.sock"
    assert resolve("named", identity="/flag-key", environ=env, store=store).identity == "/flag-key"
    with pytest.raises(InvalidArgumentError, match="cannot use --connection and --url together"):
        resolve("named", "unix:///x.sock", environ={}, store=store)


def test_toml_out_is_toml() -> None:
    doc = {"a": 1, "b": True, "c": "q\"uote", "d": [1, "x"], "t": {"x.y": {"k": 2.5}, "inline": 3}}
    assert tomllib.loads(dump_toml(doc)) == doc
