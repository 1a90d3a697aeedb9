"""Who a container says it is and the files that tell it: ``--hostname``, ``--add-host``, ``--annotation``,
``--init``, ``--umask``, ``--tz``, ``/etc/hosts``, ``/etc/hostname`` and podman's ``/run/.containerenv``
(docs/architecture.md §13)."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kernelext.errors import InvalidArgumentError

#: Where podman bind-mounts its init (catatonit) in the container.
INIT_PATH = "/run/podman-init"
#: Debian's catatonit, the init podman uses for ``--init``.
CATATONIT = "/usr/bin/catatonit"
CONTAINERENV = "/run/.containerenv"
DEFAULT_UMASK = "0022"
_HOSTNAME = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,62})$")


def _namespace_mode(kind: str, value: str | None) -> str:
    if value in (None, "", "private"):
        return ""
    if value == "host":
        return "host"
    raise InvalidArgumentError(f"invalid --{kind} value {value!r}: kernelext supports host and private")


def find_init() -> str:
    path = shutil.which("catatonit") or CATATONIT
    if not Path(path).is_file():
        raise InvalidArgumentError(f"container-init binary not found on the host: stat {CATATONIT}: "
                                   "no such file or directory")
    return path


@dataclass(frozen=True)
class Identity:
    """Names, extra hosts, annotations and process settings given at create."""

    hostname: str = ""
    add_hosts: list[str] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)
    init: bool = False
    umask: str = DEFAULT_UMASK
    #: ``--tz``: a zone name under /usr/share/zoneinfo, or ``local`` (the host's); "": the image's.
    tz: str = ""
    #: ``--pid``, ``--ipc``, ``--uts``: "host" shares the host's namespace; "": a private one.
    pid: str = ""
    ipc: str = ""
    uts: str = ""
    #: ``--unsetenv NAME``: left out of podman's defaults and the image's environment; ``--unsetenv-all``:
    #: none of them at all (only ``--env`` and the engine's own HOSTNAME and HOME).
    unsetenv: list[str] = field(default_factory=list)
    unsetenv_all: bool = False

    @classmethod
    def build(cls, *, hostname: str | None = None, add_hosts: list[str] | None = None,
              annotations: dict[str, str] | None = None, init: bool = False, umask: str | None = None,
              tz: str | None = None, pid: str | None = None, ipc: str | None = None,
              uts: str | None = None, unsetenv: list[str] | None = None, unsetenv_all: bool = False) -> Identity:
        if hostname and not _HOSTNAME.match(hostname):
            raise InvalidArgumentError(f"invalid hostname {hostname!r}")
        for entry in add_hosts or []:
            host, sep, ip = entry.partition(":")
            if not sep or not host or not ip:
                raise InvalidArgumentError(f"invalid value for --add-host: {entry!r}: must be HOST:IP")
        if umask is not None and not re.fullmatch(r"0?[0-7]{3}", umask):
            raise InvalidArgumentError(f"invalid umask string {umask}")
        if tz and tz != "local" and not (Path("/usr/share/zoneinfo") / tz).is_file():
            raise InvalidArgumentError(f"finding timezone: unknown time zone {tz}")
        if init:
            find_init()
        modes = {kind: _namespace_mode(kind, value) for kind, value in (("pid", pid), ("ipc", ipc), ("uts", uts))}
        if hostname and modes["uts"]:
            raise InvalidArgumentError("cannot set hostname when running in the host UTS namespace")
        return cls(hostname=hostname or "", add_hosts=list(add_hosts or []), annotations=dict(annotations or {}),
                   init=init, umask=umask or DEFAULT_UMASK, tz=tz or "", unsetenv=list(unsetenv or []),
                   unsetenv_all=unsetenv_all, **modes)

    def private_namespaces(self) -> list[str]:
        """The namespaces runc makes for the container (besides mount and network)."""
        return [kind for kind in ("pid", "ipc", "uts") if not getattr(self, kind)]

    def hosts(self, hostname: str, name: str) -> str:
        """``/etc/hosts``: the ``--add-host`` entries first, as podman writes them."""
        lines = [f"{entry.partition(':')[2]}\t{entry.partition(':')[0]}" for entry in self.add_hosts]
        lines += ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
                  f"127.0.1.1\t{hostname} {name}"]
        return "\n".join(lines) + "\n"

    def timezone_source(self) -> Path | None:
        """The zone file to bind at /etc/localtime, or None."""
        if not self.tz:
            return None
        return Path("/etc/localtime").resolve() if self.tz == "local" else Path("/usr/share/zoneinfo") / self.tz

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Identity:
        return cls(**data)


def containerenv(*, engine: str, name: str, ctr_id: str, image: str, image_id: str, rootless: bool) -> str:
    """podman's ``/run/.containerenv``: what the engine tells the container about itself."""
    return (f'engine="{engine}"\nname="{name}"\nid="{ctr_id}"\nimage="{image}"\nimageid="{image_id}"\n'
            f"rootless={int(rootless)}\n")


def read_env_file(path: str | Path) -> list[str]:
    """podman's ``--env-file``: ``KEY=VALUE`` lines; ``#`` comments and blank lines skipped; a bare ``KEY``
    takes the host's value when it has one."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InvalidArgumentError(f"open {path}: {(exc.strerror or str(exc)).lower()}") from None
    env = []
    for line in text.splitlines():
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        key, sep, _ = line.partition("=")
        if not key or key != key.rstrip() or " " in key:
            raise InvalidArgumentError(f"name \"{key}\" has white spaces, poorly formatted name")
        if sep:
            env.append(line)
        elif key in os.environ:
            env.append(f"{key}={os.environ[key]}")
    return env
