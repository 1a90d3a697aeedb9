"""podman's connections: named destinations of podman services, in podman's own store.

A connection is a name, a URL (``unix://``, ``ssh://user@host[:port]/path``, ``tcp://`` on
loopback only) and an SSH identity. podman 4 keeps them in ``containers.conf``
(``[engine] active_service`` and ``[engine.service_destinations.NAME]``); podman 5 in
``podman-connections.json``. kernelext reads both (as podman 5 does) and writes the one the
installed podman reads, so a connection made by either tool serves the other
(docs/architecture.md §16).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kernelext.errors import EngineUnreachableError, InvalidArgumentError

#: The schemes podman-py reaches a service by.
SCHEMES = ("unix", "ssh", "tcp")
#: podman 5's store of connections (and the variable that moves it).
CONNECTIONS_JSON = "podman-connections.json"
CONNECTIONS_ENV = "PODMAN_CONNECTIONS_CONF"
#: containers.conf: the variable that replaces it, and root's file (a user's is under XDG_CONFIG_HOME).
CONTAINERS_CONF_ENV = "CONTAINERS_CONF"
ROOT_CONTAINERS_CONF = Path("/etc/containers/containers.conf")
#: The first podman that keeps connections in podman-connections.json.
JSON_STORE_MAJOR = 5


@dataclass(frozen=True)
class Connection:
    """One destination: ``name`` is empty for a URL given on its own (``--url``, ``CONTAINER_HOST``)."""

    name: str
    uri: str
    identity: str = ""
    default: bool = False

    @property
    def label(self) -> str:
        """How a front end names the engine: the connection's name, else its URL."""
        return self.name or self.uri


def check_uri(uri: str) -> str:
    """A connection URL podman-py can use, as podman accepts it; ``tcp://`` only on loopback (the API has no
    authentication of its own: anyone who reaches the port is root on the remote)."""
    parts = urlsplit(uri)
    if parts.scheme not in SCHEMES:
        raise InvalidArgumentError(f'"{uri}": unsupported connection scheme "{parts.scheme}": use unix://, ssh:// '
                                   f"or tcp:// (loopback)")
    if parts.scheme == "unix" and not (parts.path or parts.netloc):
        raise InvalidArgumentError(f'"{uri}": a unix:// URL needs the socket\'s path')
    if parts.scheme == "ssh" and not parts.hostname:
        raise InvalidArgumentError(f'"{uri}": an ssh:// URL needs a host')
    if parts.scheme == "tcp":
        host = parts.hostname or ""
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise InvalidArgumentError(f'"{uri}": tcp:// connections are refused off loopback (the API is not '
                                       f"authenticated): use ssh://")
    return uri


# ------------------------------------------------------------------ the store
def _config_home() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


def containers_conf_path() -> Path:
    """The containers.conf podman 4 writes connections to: ``CONTAINERS_CONF``, root's, or the user's."""
    if os.environ.get(CONTAINERS_CONF_ENV):
        return Path(os.environ[CONTAINERS_CONF_ENV])
    return ROOT_CONTAINERS_CONF if os.geteuid() == 0 else _config_home() / "containers" / "containers.conf"


def connections_json_path() -> Path:
    """podman 5's podman-connections.json: ``PODMAN_CONNECTIONS_CONF``, else under the config home."""
    if os.environ.get(CONNECTIONS_ENV):
        return Path(os.environ[CONNECTIONS_ENV])
    return _config_home() / "containers" / CONNECTIONS_JSON


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgumentError(f"{path}: {exc}") from None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads(path.read_text() or "{}")
        return doc
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as exc:
        raise InvalidArgumentError(f"{path}: {exc}") from None


def podman_major() -> int | None:
    """The installed podman's major version (None without podman): which store it reads."""
    podman = shutil.which("podman")
    if podman is None:
        return None
    # without CONTAINERS_CONF: a missing or broken one makes podman refuse even --version
    env = {k: v for k, v in os.environ.items() if k != CONTAINERS_CONF_ENV}
    found = re.search(r"(\d+)\.\d+", subprocess.run([podman, "--version"], capture_output=True, text=True,
                                                     env=env).stdout)
    return int(found.group(1)) if found else None


class ConnectionStore:
    """podman's connections, both formats; writes go to ``json_store`` (podman 5) or containers.conf."""

    def __init__(self, conf: Path | None = None, json_path: Path | None = None,
                 json_store: bool | None = None) -> None:
        self.conf = conf or containers_conf_path()
        self.json_path = json_path or connections_json_path()
        self._json_store = json_store

    @property
    def json_store(self) -> bool:
        if self._json_store is None:
            major = podman_major()
            self._json_store = major is None or major >= JSON_STORE_MAJOR
        return self._json_store

    def list(self) -> list[Connection]:
        """Every connection, podman 5's first (they win over a containers.conf one of the same name)."""
        data = _read_json(self.json_path).get("Connection", {})
        default = data.get("Default", "")
        found: dict[str, Connection] = {
            name: Connection(name, entry.get("URI", ""), entry.get("Identity", ""), name == default)
            for name, entry in (data.get("Connections") or {}).items()}
        engine = _read_toml(self.conf).get("engine", {})
        active = engine.get("active_service", "")
        default = default or active
        for name, entry in (engine.get("service_destinations") or {}).items():
            found.setdefault(name, Connection(name, entry.get("uri", ""), entry.get("identity", ""),
                                              name == default))
        return sorted(found.values(), key=lambda c: c.name)

    def get(self, name: str) -> Connection:
        for connection in self.list():
            if connection.name == name:
                return connection
        raise InvalidArgumentError(f'connection "{name}" not found')

    def default(self) -> Connection | None:
        return next((c for c in self.list() if c.default), None)

    # -------------------------------------------------------------- writes
    def add(self, name: str, uri: str, identity: str = "", *, default: bool = False) -> Connection:
        """``system connection add``: the first connection becomes the default (podman's rule)."""
        check_uri(uri)
        first = not self.list()
        self._edit(lambda conns, active: ({**conns, name: {"uri": uri, "identity": identity}},
                                          name if default or first or not active else active))
        return Connection(name, uri, identity, default or first)

    def remove(self, name: str | None = None, *, all: bool = False) -> None:
        """``system connection rm NAME`` / ``--all``; removing the default leaves none."""
        if all:
            self._edit(lambda _conns, _active: ({}, ""))
            return
        assert name is not None
        self._edit(lambda conns, active: ({k: v for k, v in conns.items() if k != name},
                                          "" if active == name else active))

    def set_default(self, name: str) -> None:
        self.get(name)
        self._edit(lambda conns, _active: (conns, name))

    def rename(self, old: str, new: str) -> None:
        self.get(old)
        self._edit(lambda conns, active: ({(new if k == old else k): v for k, v in conns.items()},
                                          new if active == old else active))

    def _edit(self, change: Any) -> None:
        """Apply ``change(connections, default) -> (connections, default)`` to the store podman reads."""
        if self.json_store:
            doc = _read_json(self.json_path)
            section = doc.setdefault("Connection", {})
            conns = {k: {"uri": v.get("URI", ""), "identity": v.get("Identity", ""),
                         "machine": v.get("IsMachine", False)}
                     for k, v in (section.get("Connections") or {}).items()}
            conns, active = change(conns, section.get("Default", ""))
            section["Default"] = active
            section["Connections"] = {k: {"URI": v["uri"], "Identity": v.get("identity", ""),
                                          "IsMachine": v.get("machine", False)} for k, v in conns.items()}
            _write_atomically(self.json_path, json.dumps(doc, indent=4) + "\n")
            return
        doc = _read_toml(self.conf)
        engine = doc.setdefault("engine", {})
        conns = {k: dict(v) for k, v in (engine.get("service_destinations") or {}).items()}
        conns, active = change(conns, engine.get("active_service", ""))
        engine["service_destinations"] = {k: {key: value for key, value in v.items() if value}
                                          for k, v in conns.items()}
        if active:
            engine["active_service"] = active
        else:
            engine.pop("active_service", None)
        _write_atomically(self.conf, dump_toml(doc))


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    staging.write_text(text)
    os.replace(staging, path)


# ------------------------------------------------------------------ TOML out
def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise InvalidArgumentError(f"containers.conf: cannot write a value of type {type(value).__name__}")


def dump_toml(doc: Mapping[str, Any], prefix: str = "") -> str:
    """containers.conf back as TOML (podman rewrites the whole file too): plain keys, then sub-tables."""
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in doc.items() if not isinstance(v, Mapping)]
    text = "\n".join(lines) + ("\n" if lines else "")
    for key, value in doc.items():
        if isinstance(value, Mapping):
            name = f"{prefix}.{_toml_key(key)}" if prefix else _toml_key(key)
            text += f"\n[{name}]\n" + dump_toml(value, name)
    return text


# -------------------------------------------------------------- resolution
def resolve(connection: str | None = None, url: str | None = None, identity: str | None = None,
            store: ConnectionStore | None = None,
            environ: Mapping[str, str] | None = None) -> Connection | None:
    """The connection a command asks for, as podman picks it: ``--connection``, ``--url``,
    ``CONTAINER_CONNECTION``, ``CONTAINER_HOST`` (with ``CONTAINER_SSHKEY``); None: the local engine.
    ``--identity`` replaces a connection's own."""
    env = os.environ if environ is None else environ
    if connection and url:
        raise InvalidArgumentError("cannot use --connection and --url together")
    name = connection or (None if url else env.get("CONTAINER_CONNECTION"))
    if name:
        found = (store or ConnectionStore()).get(name)
        return Connection(found.name, check_uri(found.uri), identity or found.identity, found.default)
    uri = url or env.get("CONTAINER_HOST")
    if uri:
        return Connection("", check_uri(uri), identity or env.get("CONTAINER_SSHKEY", ""))
    return None


def unreachable(connection: Connection, reason: str) -> EngineUnreachableError:
    return EngineUnreachableError(f"unable to connect to Podman socket ({connection.label}): {reason}")
