"""Resolving a container's user from its own /etc/passwd and /etc/group.

The files are read as data through :mod:`kernelext.files.rootpath`, never
through the host's NSS (which would load libraries from the container root
into a host process: CVE-2019-14271).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from kernelext.errors import InvalidArgumentError
from kernelext.files.rootpath import read_file_in_root


@dataclass(frozen=True)
class ExecUser:
    uid: int
    gid: int
    additional_gids: list[int] = field(default_factory=list)
    home: str = "/"


def _entries(root: str | os.PathLike[str], path: str) -> list[list[str]]:
    data = read_file_in_root(root, path) or b""
    return [line.split(":") for line in data.decode(errors="replace").splitlines()
            if line and not line.startswith("#")]


def user_names(root: str | os.PathLike[str]) -> dict[int, str]:
    """UID to name, from the container root's /etc/passwd (the first entry of a UID wins)."""
    names: dict[int, str] = {}
    for entry in _entries(root, "/etc/passwd"):
        if len(entry) >= 3 and entry[2].isdigit():
            names.setdefault(int(entry[2]), entry[0])
    return names


def resolve_user(root: str | os.PathLike[str], spec: str, group_add: list[str] | tuple[str, ...] = ()) -> ExecUser:
    """``user[:group]`` (names or numbers) as seen inside the container root; ``group_add``: podman's
    ``--group-add`` groups (names or numbers), added to the supplementary ones."""
    user, _, group = (spec or "0").partition(":")
    passwd = [e for e in _entries(root, "/etc/passwd") if len(e) >= 4]
    entry = next((e for e in passwd if e[0] == user or (user.isdigit() and e[2] == user)), None)
    if entry is None and not user.isdigit():
        raise InvalidArgumentError(f"unable to find user {user}: no matching entries in passwd file")
    uid = int(user) if entry is None else int(entry[2])
    gid = 0 if entry is None else int(entry[3])
    home = "/" if entry is None or len(entry) < 6 or not entry[5] else entry[5]
    groups = [e for e in _entries(root, "/etc/group") if len(e) >= 3]
    if group:
        match = next((e for e in groups if e[0] == group or (group.isdigit() and e[2] == group)), None)
        if match is None and not group.isdigit():
            raise InvalidArgumentError(f"unable to find group {group}: no matching entries in group file")
        gid = int(group) if match is None else int(match[2])
    name = entry[0] if entry else None
    supplementary = {int(e[2]) for e in groups if name and len(e) >= 4 and name in e[3].split(",")}
    for added in group_add:
        match = next((e for e in groups if e[0] == added or (added.isdigit() and e[2] == added)), None)
        if match is None and not added.isdigit():
            raise InvalidArgumentError(f"unable to find group {added}: no matching entries in group file")
        supplementary.add(int(added) if match is None else int(match[2]))
    return ExecUser(uid=uid, gid=gid, additional_gids=sorted(supplementary - {gid}), home=home)
