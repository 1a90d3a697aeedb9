"""What a container is given besides its image: bind mounts, volumes and tmpfs (docs/architecture.md §10).

podman's grammar: ``-v [SRC:]DEST[:OPTIONS]``, ``--mount type=...,key=value``,
``--tmpfs DEST[:OPTIONS]`` and ``--volumes-from CTR[:ro|rw]``. Parsing is pure
(no I/O but the bind source check), so the rules are testable on their own; the
named volumes themselves live in :mod:`kernelext.storage.volumes`.
"""

from __future__ import annotations

import enum
import os
import posixpath
from dataclasses import dataclass, field, replace
from typing import Any

from kernelext.errors import InvalidArgumentError

_VOLUME_FORMAT = "incorrect volume format \"{}\", should be [host-dir:]ctr-dir[:option]"
#: podman's default options of a ``--tmpfs`` mount given none, and of ``type=tmpfs``.
TMPFS_DEFAULTS = ("rw", "noexec", "nosuid", "nodev")
#: runc's extension option that fills a tmpfs with the directory it covers, and podman's opt-out.
TMPFS_COPY_UP, TMPFS_NO_COPY_UP = "tmpcopyup", "notmpcopyup"
#: Bind propagation modes (podman's ``[r]shared``, ``[r]slave``, ``[r]private``, ``[r]unbindable``).
PROPAGATIONS = frozenset({"shared", "rshared", "slave", "rslave", "private", "rprivate", "unbindable",
                          "runbindable"})
#: podman's default propagation of a bind mount.
DEFAULT_PROPAGATION = "rprivate"
#: Option groups of which at most one member may be given (podman's ValidateVolumeOpts).
_EXCLUSIVE = (("rw", "ro"), ("z", "Z"), ("exec", "noexec"), ("dev", "nodev"), ("suid", "nosuid"),
              tuple(sorted(PROPAGATIONS)), ("copy", "nocopy"))
_EXCLUSIVE_TEXT = {"rw": "'rw' or 'ro'", "z": "'z' or 'Z'", "exec": "'noexec' or 'exec'",
                   "dev": "'nodev' or 'dev'", "suid": "'nosuid' or 'suid'",
                   "private": "'[r]shared', '[r]private', '[r]slave' or '[r]unbindable'",
                   "copy": "'copy' or 'nocopy'"}
#: Options accepted and ignored: SELinux labels (no SELinux here).
_IGNORED = frozenset({"z", "Z"})
#: Options that change what kernelext does but are not mount(2) flags.
_MARKERS = frozenset({"U", "copy", "nocopy"})
_VOLUME_OPTIONS = frozenset({o for group in _EXCLUSIVE for o in group}) | {"U"}


class MountType(enum.Enum):
    BIND = "bind"
    VOLUME = "volume"
    TMPFS = "tmpfs"


@dataclass(frozen=True)
class Mount:
    """One mount of a container, as configured.

    ``source``: the host path (bind) or the volume's name (volume; resolved to its
    ``_data`` directory when the spec is written), empty for tmpfs.
    ``anonymous``: a volume made for this container (``-v /path``, the image's
    ``Volumes``), removed with it by ``rm -v``.
    """

    type: MountType
    destination: str
    source: str = ""
    options: tuple[str, ...] = ()
    anonymous: bool = False

    @property
    def read_only(self) -> bool:
        return "ro" in self.options

    @property
    def chown(self) -> bool:
        """podman's ``U``: the source is chowned to the container's user."""
        return "U" in self.options

    @property
    def copy_up(self) -> bool:
        """A new volume is filled from the image (podman's default; ``nocopy`` says no)."""
        return "nocopy" not in self.options

    @property
    def propagation(self) -> str:
        return next((o for o in self.options if o in PROPAGATIONS), DEFAULT_PROPAGATION if self.type is not
                    MountType.TMPFS else "")

    @property
    def mode(self) -> str:
        """podman inspect's ``Mode``: the SELinux label option given, if any."""
        return next((o for o in self.options if o in _IGNORED), "")

    def __str__(self) -> str:
        """podman's ``-v`` form: ``SOURCE:DEST[:ro]`` (a volume by name, an anonymous one by short name)."""
        source = self.source[:12] if self.anonymous else self.source
        return f"{source}:{self.destination}" + (":ro" if self.read_only else "")

    def with_access(self, read_only: bool) -> Mount:
        """The same mount, read-only or read-write (``--volumes-from CTR:ro``)."""
        options = [o for o in self.options if o not in ("ro", "rw")]
        return replace(self, options=(*options, "ro" if read_only else "rw"))

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type.value, "destination": self.destination, "source": self.source,
                "options": list(self.options), "anonymous": self.anonymous}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Mount:
        return cls(MountType(data["type"]), data["destination"], data.get("source", ""),
                   tuple(data.get("options", ())), bool(data.get("anonymous", False)))


def _destination(path: str) -> str:
    if not path.startswith("/"):
        raise InvalidArgumentError(f"invalid container path \"{path}\", must be an absolute path")
    return posixpath.normpath(path)


def validate_volume_options(options: list[str]) -> tuple[str, ...]:
    """podman's checks of ``-v`` options: known ones, at most one of each group."""
    for option in options:
        if option not in _VOLUME_OPTIONS:
            raise InvalidArgumentError(f"invalid option type \"{option}\"")
    for group in _EXCLUSIVE:
        if sum(options.count(o) for o in group) > 1:
            key = next(k for k in _EXCLUSIVE_TEXT if k in group)
            raise InvalidArgumentError(f"invalid options \"{','.join(options)}\", can only specify 1 "
                                       f"{_EXCLUSIVE_TEXT[key]} option")
    return tuple(options)


def is_host_path(source: str) -> bool:
    """podman: a source starting with ``/`` or ``.`` is a host directory; anything else names a volume."""
    return source.startswith(("/", "."))


def bind_source(path: str, cwd: str | None = None, *, local: bool = True) -> str:
    """An absolute, existing host path; podman's ``statfs`` error otherwise. ``local=False``: a path on
    another machine (a remote engine's host), checked there, not here."""
    absolute = posixpath.normpath(os.path.join(cwd or os.getcwd(), path))
    if local and not os.path.exists(absolute):
        raise InvalidArgumentError(f"statfs {absolute}: no such file or directory")
    return absolute


def parse_volume(text: str, cwd: str | None = None, *, local: bool = True) -> Mount:
    """``-v [SRC:]DEST[:OPTIONS]``: a bind mount, a named volume or (no SRC) an anonymous volume."""
    parts = text.split(":")
    if not text or len(parts) > 3:
        raise InvalidArgumentError(_VOLUME_FORMAT.format(text))
    if len(parts) == 1:
        return Mount(MountType.VOLUME, _destination(parts[0]), anonymous=True)
    source, dest = parts[0], _destination(parts[1])
    options = validate_volume_options(parts[2].split(",") if len(parts) == 3 and parts[2] else [])
    if not source:
        raise InvalidArgumentError("host directory cannot be empty")
    if is_host_path(source):
        return Mount(MountType.BIND, dest, bind_source(source, cwd, local=local), options)
    return Mount(MountType.VOLUME, dest, source, options)


def parse_tmpfs(text: str) -> Mount:
    """``--tmpfs DEST[:OPTIONS]`` (podman's defaults rw,noexec,nosuid,nodev when none are given)."""
    dest, _, options = text.partition(":")
    return Mount(MountType.TMPFS, _destination(dest), "tmpfs",
                 tuple(options.split(",")) if options else TMPFS_DEFAULTS)


def _truthy(key: str, value: str | None) -> bool:
    if value is None or value.lower() == "true":
        return True
    if value.lower() == "false":
        return False
    raise InvalidArgumentError(f"{key}: invalid boolean value \"{value}\"")


def parse_mount(text: str, cwd: str | None = None, *, local: bool = True) -> Mount:
    """``--mount type=bind|volume|tmpfs,src=...,dst=...[,ro][,bind-propagation=...][,tmpfs-size=...]``."""
    fields: dict[str, str | None] = {}
    for item in text.split(","):
        name, sep, given = item.partition("=")
        fields[name.strip()] = given if sep else None
    kind = fields.pop("type", None)
    try:
        mount_type = MountType(kind)
    except ValueError:
        raise InvalidArgumentError("type must be specified" if kind is None else
                                   f"invalid filesystem type \"{kind}\"") from None
    source = next((fields.pop(k) or "" for k in ("source", "src") if k in fields), "")
    dest = next((fields.pop(k) or "" for k in ("destination", "dst", "target") if k in fields), "")
    if not dest:
        raise InvalidArgumentError("must set volume destination")
    options: list[str] = []
    for key, value in fields.items():
        if key in ("ro", "readonly"):
            options.append("ro" if _truthy(key, value) else "rw")
        elif key == "rw":
            options.append("rw" if _truthy(key, value) else "ro")
        elif key == "bind-propagation" and mount_type is MountType.BIND and value in PROPAGATIONS:
            options.append(str(value))
        elif key in ("U", "chown") and mount_type is not MountType.TMPFS:
            if _truthy(key, value):
                options.append("U")
        elif key in ("relabel", "z", "Z"):
            continue  # SELinux: accepted and ignored
        elif key == "volume-nocopy" and mount_type is MountType.VOLUME:
            if _truthy(key, value):
                options.append("nocopy")
        elif key == "tmpfs-size" and mount_type is MountType.TMPFS and value:
            options.append(f"size={value}")
        elif key == "tmpfs-mode" and mount_type is MountType.TMPFS and value:
            options.append(f"mode={value}")
        elif key in ("notmpcopyup", "tmpcopyup", "noexec", "exec", "nosuid", "suid", "nodev", "dev"):
            options.append(key)
        else:
            raise InvalidArgumentError(f"\"{key}\": invalid mount option")
    validate_volume_options([o for o in options if "=" not in o and o not in ("tmpcopyup", "notmpcopyup")])
    destination = _destination(dest)
    if mount_type is MountType.TMPFS:
        asked = {o.split("=")[0] for o in options}
        overridden = {"rw": "ro", "noexec": "exec", "nosuid": "suid", "nodev": "dev"}
        defaults = [o for o in TMPFS_DEFAULTS if o not in asked and overridden[o] not in asked]
        return Mount(MountType.TMPFS, destination, "tmpfs", (*defaults, *options))
    if mount_type is MountType.BIND:
        if not source:
            raise InvalidArgumentError("must set source for bind mount")
        return Mount(MountType.BIND, destination, bind_source(source, cwd, local=local), tuple(options))
    return Mount(MountType.VOLUME, destination, source, tuple(options), anonymous=not source)


def parse_volumes_from(text: str) -> tuple[str, bool | None]:
    """``--volumes-from CTR[:ro|rw]``: the container and the access asked (None: as in that container)."""
    name, sep, mode = text.partition(":")
    if sep and mode not in ("ro", "rw"):
        raise InvalidArgumentError(f"invalid options \"{mode}\", can only specify 'ro' or 'rw'")
    return name, (mode == "ro") if sep else None


@dataclass
class MountRequest:
    """Everything ``create`` was asked to mount, before volumes are made (see ``combine``)."""

    mounts: list[Mount] = field(default_factory=list)

    def add(self, mount: Mount) -> None:
        for existing in self.mounts:
            if existing == mount:  # the same mount twice is one (podman)
                return
            if existing.destination == mount.destination:
                raise InvalidArgumentError(f"{mount.destination}: duplicate mount destination")
        self.mounts.append(mount)


def combine(volumes: list[str | Mount], mounts: list[str | Mount], tmpfs: list[str] | dict[str, str],
            inherited: list[Mount], image_volumes: list[str], cwd: str | None = None) -> list[Mount]:
    """All of a new container's mounts, checked for duplicate destinations.

    ``inherited``: ``--volumes-from`` mounts, which the container's own ones override;
    ``image_volumes``: the image's ``Volumes``, anonymous volumes where nothing else is mounted.
    """
    request = MountRequest()
    for item in volumes:
        request.add(item if isinstance(item, Mount) else parse_volume(item, cwd))
    for item in mounts:
        request.add(item if isinstance(item, Mount) else parse_mount(item, cwd))
    tmpfs_items = [f"{k}:{v}" if v else k for k, v in tmpfs.items()] if isinstance(tmpfs, dict) else tmpfs
    for item in tmpfs_items:
        request.add(parse_tmpfs(item))
    taken = {m.destination for m in request.mounts}
    for mount in inherited:
        if mount.destination not in taken:
            request.mounts.append(mount)
            taken.add(mount.destination)
    for path in image_volumes:
        dest = posixpath.normpath(path)
        if dest.startswith("/") and dest not in taken:
            request.mounts.append(Mount(MountType.VOLUME, dest, anonymous=True))
            taken.add(dest)
    return request.mounts


def under(path: str, destination: str) -> bool:
    """Whether the container path ``path`` is ``destination`` or inside it."""
    return path == destination or path.startswith(destination.rstrip("/") + "/")


def made_by_mounts(mounts: list[Mount], path: str) -> bool:
    """Whether runc makes ``path`` itself when it mounts: a mount's destination, a path inside one, or one of
    a destination's parents (podman's ``isPathOnVolume``, which spares such a ``--workdir`` its check)."""
    path = posixpath.normpath(path)
    return any(under(path, m.destination) or under(m.destination, path) for m in mounts)


def spec_mounts(mounts: list[Mount], volume_source: Any) -> list[dict[str, Any]]:
    """The OCI ``mounts`` entries, parents before children (podman sorts by destination).

    ``volume_source(name)``: the host directory of a named volume.
    """
    entries = []
    for mount in sorted(mounts, key=lambda m: m.destination.count("/") if m.destination != "/" else 0):
        flags = [o for o in mount.options if o not in _IGNORED and o not in _MARKERS and o not in PROPAGATIONS]
        if mount.type is MountType.TMPFS:
            # podman's default: runc copies what the image has there into the tmpfs (``notmpcopyup``: not)
            copy_up = [] if TMPFS_NO_COPY_UP in mount.options else [TMPFS_COPY_UP]
            entries.append({"destination": mount.destination, "type": "tmpfs", "source": "tmpfs",
                            "options": [o for o in flags if o not in (TMPFS_COPY_UP, TMPFS_NO_COPY_UP)] + copy_up})
            continue
        source = mount.source if mount.type is MountType.BIND else str(volume_source(mount.source))
        entries.append({"destination": mount.destination, "type": "bind", "source": source,
                        "options": ["rbind", mount.propagation, *flags]})
    return entries


def _flag_options(mount: Mount) -> list[str]:
    return [o for o in mount.options if o not in ("ro", "rw") and o not in _IGNORED and o not in _MARKERS
            and o not in PROPAGATIONS]


def inspect_mounts(mounts: list[Mount], volume_source: Any) -> list[dict[str, Any]]:
    """podman inspect's ``Mounts`` (bind mounts and volumes; tmpfs mounts are in ``HostConfig.Tmpfs``)."""
    shown = []
    for mount in mounts:
        if mount.type is MountType.TMPFS:
            continue
        entry: dict[str, Any] = {"Type": mount.type.value}
        if mount.type is MountType.VOLUME:
            entry["Name"] = mount.source
        entry.update({"Source": mount.source if mount.type is MountType.BIND else str(volume_source(mount.source)),
                      "Destination": mount.destination,
                      "Driver": "local" if mount.type is MountType.VOLUME else "", "Mode": mount.mode,
                      "Options": ["rbind", *_flag_options(mount)], "RW": not mount.read_only,
                      "Propagation": mount.propagation})
        shown.append(entry)
    return shown


def binds(mounts: list[Mount]) -> list[str]:
    """podman inspect's ``HostConfig.Binds``: ``SRC:DEST:rw|ro,PROPAGATION,...,rbind``."""
    return [f"{m.source}:{m.destination}:" + ",".join(["ro" if m.read_only else "rw", m.propagation,
                                                       *_flag_options(m), "rbind"])
            for m in mounts if m.type is not MountType.TMPFS]


def tmpfs_options(mounts: list[Mount]) -> dict[str, str]:
    """podman inspect's ``HostConfig.Tmpfs``: destination to options."""
    return {m.destination: ",".join(m.options) for m in mounts if m.type is MountType.TMPFS}
